use super::*;

fn cmd(verb: u8, option: u8) -> [u8; 3] {
    [IAC, verb, option]
}

#[test]
fn iac_iac_is_data_and_commands_are_stripped() {
    let mut t = Telnet::server();
    let got = t.receive(&[b'a', IAC, IAC, b'b', IAC, NOP, b'c', IAC, AYT, IAC, GA]);
    assert_eq!(got, vec![b'a', 0xff, b'b', b'c']);
    assert_eq!(t.stats().commands, 3);
    assert!(!t.has_output());
}

#[test]
fn nvt_receive_end_of_line_rules() {
    let mut t = Telnet::server();
    // RFC 854: CR NUL -> CR; CR LF kept; lone CR followed by data kept.
    assert_eq!(t.receive(b"a\r\0b"), b"a\rb");
    assert_eq!(t.receive(b"a\r\nb"), b"a\r\nb");
    assert_eq!(t.receive(b"a\rb"), b"a\rb");
    // Split across calls.
    assert_eq!(t.receive(b"x\r"), b"x\r");
    assert_eq!(t.receive(b"\0y"), b"y");
    // A NUL not after CR is data.
    assert_eq!(t.receive(b"\0"), b"\0");
    // CR NUL NUL: the second NUL is data.
    assert_eq!(t.receive(b"\r\0\0"), b"\r\0");
}

#[test]
fn binary_receive_keeps_cr_nul() {
    let mut t = Telnet::server();
    t.receive(&cmd(WILL, opt::BINARY));
    assert_eq!(t.take_output(), cmd(DO, opt::BINARY));
    assert!(t.receiving_binary());
    assert_eq!(t.receive(b"\r\0\r\n"), b"\r\0\r\n");
    assert_eq!(t.receive(&[IAC, IAC, 0x7e]), vec![0xff, 0x7e]);
}

#[test]
fn nvt_send_rules() {
    let mut t = Telnet::server();
    assert_eq!(t.send(b"a\r\nb"), b"a\r\nb");
    assert_eq!(t.send(b"a\rb"), b"a\r\0b");
    assert_eq!(t.send(b"a\r"), b"a\r\0");
    assert_eq!(t.send(&[0xff]), vec![0xff, 0xff]);
}

#[test]
fn binary_send_only_doubles_iac() {
    let mut t = Telnet::server();
    t.enable_local(opt::BINARY).unwrap();
    assert_eq!(t.take_output(), cmd(WILL, opt::BINARY));
    // Not yet agreed: still NVT.
    assert_eq!(t.send(b"\r"), b"\r\0");
    t.receive(&cmd(DO, opt::BINARY));
    assert!(!t.has_output());
    assert_eq!(t.send(b"\r\xff"), b"\r\xff\xff");
}

#[test]
fn initial_negotiation_order() {
    let mut t = Telnet::server();
    t.initial_negotiation();
    let mut want = Vec::new();
    want.extend_from_slice(&cmd(WILL, opt::ECHO));
    want.extend_from_slice(&cmd(WILL, opt::SGA));
    want.extend_from_slice(&cmd(DO, opt::SGA));
    // send() emits the pending negotiation before the data.
    want.extend_from_slice(b"Hi");
    assert_eq!(t.send(b"Hi"), want);
    // Answers settle it without further output.
    t.receive(
        &[
            &cmd(DO, opt::ECHO)[..],
            &cmd(DO, opt::SGA),
            &cmd(WILL, opt::SGA),
        ]
        .concat(),
    );
    assert!(!t.has_output());
    assert!(t.is_local_enabled(opt::ECHO));
    assert!(t.is_local_enabled(opt::SGA));
    assert!(t.is_remote_enabled(opt::SGA));
    assert!(!t.negotiating());
}

#[test]
fn refuses_unsupported_and_remote_echo() {
    let mut t = Telnet::server();
    // NAWS (31), TTYPE (24), remote ECHO.
    t.receive(&[&cmd(WILL, 31)[..], &cmd(DO, 24), &cmd(WILL, opt::ECHO)].concat());
    let want = [&cmd(DONT, 31)[..], &cmd(WONT, 24), &cmd(DONT, opt::ECHO)].concat();
    assert_eq!(t.take_output(), want);
    // WONT/DONT for something already off: silence.
    t.receive(&[&cmd(WONT, 31)[..], &cmd(DONT, 24), &cmd(DONT, opt::BINARY)].concat());
    assert!(!t.has_output());
    assert_eq!(t.stats().unsupported, 4);
    assert_eq!(t.enable_local(31), Err(TelnetError::Unsupported(31)));
    assert_eq!(
        t.enable_remote(opt::ECHO),
        Err(TelnetError::Refused(opt::ECHO))
    );
}

#[test]
fn no_loop_on_repeated_will() {
    let mut t = Telnet::server();
    t.receive(&cmd(WILL, opt::SGA));
    assert_eq!(t.take_output(), cmd(DO, opt::SGA));
    // A second WILL while already YES must not be acknowledged again.
    t.receive(&cmd(WILL, opt::SGA));
    assert!(!t.has_output());
}

#[test]
fn q_method_queue_opposite() {
    let mut t = Telnet::server();
    t.enable_remote(opt::BINARY).unwrap();
    assert_eq!(t.take_output(), cmd(DO, opt::BINARY));
    // Change our mind while waiting: nothing sent yet, queued.
    t.disable_remote(opt::BINARY);
    assert!(!t.has_output());
    // Peer agrees: we now ask to disable.
    t.receive(&cmd(WILL, opt::BINARY));
    assert_eq!(t.take_output(), cmd(DONT, opt::BINARY));
    assert_eq!(t.remote_state(opt::BINARY), OptionState::WantNo);
    t.receive(&cmd(WONT, opt::BINARY));
    assert_eq!(t.remote_state(opt::BINARY), OptionState::No);
    assert!(!t.has_output());
}

#[test]
fn subnegotiation_is_discarded() {
    let mut t = Telnet::server();
    let mut input = vec![b'a', IAC, SB, 24, 0];
    input.extend_from_slice(b"xterm");
    input.extend_from_slice(&[IAC, IAC, IAC, SE, b'b']);
    assert_eq!(t.receive(&input), b"ab");
    assert_eq!(t.stats().subnegotiations, 1);
    assert_eq!(t.stats().oversize_subnegotiations, 0);
}

#[test]
fn oversize_subnegotiation_is_dropped_until_se() {
    let mut t = Telnet::server();
    let mut input = vec![IAC, SB, 31];
    input.extend(std::iter::repeat_n(b'z', 10_000));
    input.extend_from_slice(&[IAC, SE, b'k']);
    assert_eq!(t.receive(&input), b"k");
    assert_eq!(t.stats().oversize_subnegotiations, 1);
    assert_eq!(t.stats().subnegotiations, 1);
}

#[test]
fn unterminated_subnegotiation_ends_at_next_command() {
    let mut t = Telnet::server();
    let mut input = vec![IAC, SB, 24, b'x'];
    input.extend_from_slice(&cmd(DO, opt::ECHO));
    input.push(b'y');
    assert_eq!(t.receive(&input), b"y");
    assert_eq!(t.take_output(), cmd(WILL, opt::ECHO));
}

#[test]
fn split_written_maps_back_to_input() {
    let mut t = Telnet::server();
    let data = b"a\xffb\r";
    // encoding: a ff ff b \r \0
    assert_eq!(t.send(data).len(), 6);
    assert_eq!(t.split_written(data, 0), (0, 0));
    assert_eq!(t.split_written(data, 1), (1, 0));
    assert_eq!(t.split_written(data, 2), (2, 1));
    assert_eq!(t.split_written(data, 3), (2, 0));
    assert_eq!(t.split_written(data, 5), (4, 1));
    assert_eq!(t.split_written(data, 6), (4, 0));
}

#[test]
fn malformed_iac_sequences_do_not_produce_data() {
    let mut t = Telnet::server();
    assert_eq!(t.receive(&[IAC, 7, b'a', IAC, SE, b'b']), b"ab");
    assert_eq!(t.stats().malformed, 2);
}
