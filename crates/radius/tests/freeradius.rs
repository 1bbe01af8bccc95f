//! The sans-IO client against a real FreeRADIUS 3.2 (Debian `freeradius`) on
//! 127.0.0.1, started and stopped by `tests/freeradius.sh`.
//!
//! If FreeRADIUS is missing or does not start, the tests fail, saying why
//! (`scripts/test` installs it).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use radius::*;

const SECRET: &[u8] = b"testing123";

/// A running server; stopped (and its directory removed) on drop, also
/// when a test assertion panics.
struct Server {
    pid: String,
    dir: PathBuf,
    auth: SocketAddr,
    acct: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(&self.pid)
            .arg(&self.dir)
            .status();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/freeradius.sh")
}

fn free_port_pair() -> (u16, u16) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// Starts FreeRADIUS signing its replies, or returns why it could not.
fn start(require_ma: bool) -> Result<Server, String> {
    start_signing(require_ma, true)
}

/// Starts FreeRADIUS, signing its Access-* replies with a
/// Message-Authenticator or not (stock 3.2.1), or returns why it could not.
fn start_signing(require_ma: bool, sign: bool) -> Result<Server, String> {
    let mut last = String::new();
    // Ports picked by binding port 0 can be taken again before the server
    // binds them; retry a few times.
    for _ in 0..3 {
        let (auth, acct) = free_port_pair();
        let out = Command::new(script())
            .arg("start")
            .arg(auth.to_string())
            .arg(acct.to_string())
            .env("REQUIRE_MA", if require_ma { "yes" } else { "no" })
            .env("SIGN_REPLIES", if sign { "yes" } else { "no" })
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
        if out.status.success() {
            let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let (pid, dir) = line
                .split_once(' ')
                .ok_or_else(|| format!("unexpected output from freeradius.sh: {line:?}"))?;
            return Ok(Server {
                pid: pid.to_string(),
                dir: PathBuf::from(dir),
                auth: SocketAddr::from(([127, 0, 0, 1], auth)),
                acct: SocketAddr::from(([127, 0, 0, 1], acct)),
            });
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    Err(format!("FreeRADIUS did not start: {last}"))
}

/// Starts a server, or fails the calling test saying why it could not: a
/// test that cannot run fails, it never passes.
fn start_or_fail(require_ma: bool) -> Server {
    start(require_ma).unwrap_or_else(|e| {
        panic!(
            "{e}\nthis FreeRADIUS test cannot run: install the Debian package `freeradius` \
             (`bash scripts/test` installs it when run as root)"
        )
    })
}

/// 16 unpredictable octets without an RNG dependency: SipHash with the
/// process's random keys over a counter.
fn random16() -> [u8; 16] {
    let s = RandomState::new();
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = s.build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    out
}

/// A small blocking UDP driver for the sans-IO client: runs until the
/// request finishes (bounded by the client's own timeouts and a hard 20 s cap).
fn run(client: &mut Client, request: Request) -> Outcome {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rid = client
        .send_request(Instant::now(), request, random16())
        .unwrap();
    let hard_stop = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    loop {
        while let Some((to, pkt)) = client.poll_transmit() {
            sock.send_to(&pkt, to).unwrap();
        }
        while let Some((id, outcome)) = client.poll_event() {
            if id == rid {
                return outcome;
            }
        }
        let now = Instant::now();
        assert!(now < hard_stop, "driver hard stop: no outcome after 20 s");
        let wake = client
            .poll_timeout()
            .unwrap_or(now + Duration::from_millis(100));
        let wait = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        sock.set_read_timeout(Some(wait)).unwrap();
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => client.handle_datagram(Instant::now(), from, &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => panic!("recv: {e}"),
        }
        client.handle_timeout(Instant::now());
    }
}

fn client_for(servers: &[SocketAddr], require_ma: bool, timeout_ms: u64) -> Client {
    Client::new(ClientConfig {
        servers: servers
            .iter()
            .map(|a| ServerConfig {
                addr: *a,
                secret: SECRET.to_vec(),
            })
            .collect(),
        timeout: Duration::from_millis(timeout_ms),
        retries: 1,
        require_message_authenticator: if require_ma {
            RequireMessageAuthenticator::Always
        } else {
            RequireMessageAuthenticator::Never
        },
    })
    .unwrap()
}

fn pap(user: &str, password: &str, extra: Vec<Attribute>) -> Request {
    let mut attrs = vec![
        Attribute::UserName(user.as_bytes().to_vec()),
        Attribute::NasIdentifier(b"dialgate-test".to_vec()),
        Attribute::NasPort(1),
        Attribute::NasPortType(values::nas_port_type::ASYNC),
        Attribute::ServiceType(values::service_type::LOGIN),
    ];
    attrs.extend(extra);
    Request::access(attrs).with_password(password.as_bytes())
}

#[test]
fn against_real_freeradius() {
    let server = start_or_fail(false);
    let mut c = client_for(&[server.auth], false, 1000);

    // PAP Accept with the users-file reply items.
    match run(&mut c, pap("alice", "alicepass", vec![])) {
        Outcome::Accept { attrs } => {
            assert!(attrs.contains(&Attribute::ReplyMessage(b"Hello, alice".to_vec())));
            assert!(attrs.contains(&Attribute::FramedIpAddress([10, 99, 0, 2].into())));
            assert!(attrs.contains(&Attribute::SessionTimeout(3600)));
        }
        other => panic!("alice: expected Accept, got {other:?}"),
    }

    // PAP Reject.
    match run(&mut c, pap("alice", "wrong", vec![])) {
        Outcome::Reject { reply_message, .. } => {
            assert_eq!(reply_message.as_deref(), Some("Login incorrect"));
        }
        other => panic!("alice/wrong: expected Reject, got {other:?}"),
    }

    // Two rounds: password, then an Access-Challenge for the PIN with State
    // and Prompt = No-Echo, answered with the State.
    let state = match run(&mut c, pap("bob", "bobpass", vec![])) {
        Outcome::Challenge {
            state,
            reply_message,
            prompt_echo,
            ..
        } => {
            assert_eq!(reply_message.as_deref(), Some("Enter PIN:"));
            assert!(!prompt_echo);
            state.expect("challenge without State")
        }
        other => panic!("bob: expected Challenge, got {other:?}"),
    };
    match run(
        &mut c,
        pap("bob", "4321", vec![Attribute::State(state.clone())]),
    ) {
        Outcome::Accept { attrs } => {
            assert!(attrs.contains(&Attribute::ReplyMessage(b"Hello, bob".to_vec())));
        }
        other => panic!("bob PIN: expected Accept, got {other:?}"),
    }
    // The State is single-use on the server.
    assert!(matches!(
        run(&mut c, pap("bob", "4321", vec![Attribute::State(state)])),
        Outcome::Reject { .. }
    ));

    // CHAP with CHAP-Challenge.
    let challenge = random16();
    let chap = |password: &[u8]| {
        Request::access(vec![
            Attribute::UserName(b"alice".to_vec()),
            Attribute::ChapChallenge(challenge.to_vec()),
            Attribute::ChapPassword {
                ident: 7,
                response: chap_response(7, password, &challenge),
            },
        ])
    };
    assert!(matches!(
        run(&mut c, chap(b"alicepass")),
        Outcome::Accept { .. }
    ));
    assert!(matches!(run(&mut c, chap(b"nope")), Outcome::Reject { .. }));

    // Nothing was dropped: every reply passed the authenticator checks.
    let s = c.stats();
    assert_eq!(
        (
            s.dropped_bad_authenticator,
            s.dropped_bad_message_authenticator,
            s.dropped_malformed
        ),
        (0, 0, 0)
    );

    // Accounting Start / Stop, visible in the detail file.
    let mut acct = client_for(&[server.acct], false, 1000);
    let session = format!("sess-{}", hex::encode(&random16()[..4]));
    let common = |status: u32| {
        vec![
            Attribute::AcctStatusType(status),
            Attribute::AcctSessionId(session.as_bytes().to_vec()),
            Attribute::UserName(b"alice".to_vec()),
            Attribute::NasIdentifier(b"dialgate-test".to_vec()),
            Attribute::NasPort(1),
            Attribute::FramedIpAddress([10, 99, 0, 2].into()),
        ]
    };
    assert!(matches!(
        run(
            &mut acct,
            Request::accounting(common(values::acct_status_type::START))
        ),
        Outcome::AccountingResponse { .. }
    ));
    let mut stop = common(values::acct_status_type::STOP);
    stop.extend([
        Attribute::AcctSessionTime(42),
        Attribute::AcctInputOctets(1000),
        Attribute::AcctOutputOctets(2000),
        Attribute::AcctInputGigawords(1),
        Attribute::AcctOutputGigawords(2),
        Attribute::AcctInputPackets(10),
        Attribute::AcctOutputPackets(20),
        Attribute::AcctDelayTime(0),
        Attribute::AcctTerminateCause(values::terminate_cause::USER_REQUEST),
    ]);
    assert!(matches!(
        run(&mut acct, Request::accounting(stop)),
        Outcome::AccountingResponse { .. }
    ));
    let detail = std::fs::read_to_string(server.dir.join("acct/detail")).unwrap();
    let session_line = format!("Acct-Session-Id = \"{session}\"");
    assert_eq!(detail.matches(&session_line).count(), 2, "{detail}");
    for needle in [
        "Acct-Status-Type = Start",
        "Acct-Status-Type = Stop",
        "Acct-Session-Time = 42",
        "Acct-Input-Octets = 1000",
        "Acct-Output-Octets = 2000",
        "Acct-Input-Gigawords = 1",
        "Acct-Output-Gigawords = 2",
        "Acct-Input-Packets = 10",
        "Acct-Output-Packets = 20",
        "Acct-Terminate-Cause = User-Request",
    ] {
        assert!(
            detail.contains(needle),
            "{needle:?} not in detail:\n{detail}"
        );
    }

    // Failover: a silent first server, then the real one.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut fo = client_for(&[silent.local_addr().unwrap(), server.auth], false, 200);
    assert!(matches!(
        run(&mut fo, pap("alice", "alicepass", vec![])),
        Outcome::Accept { .. }
    ));
    assert_eq!(fo.stats().failovers, 1);
    assert_eq!(fo.stats().retransmissions, 1);

    // Requiring a Message-Authenticator in replies: this server is told to
    // sign them, so they pass (a stock 3.2.1 does not: see
    // hole_5_default_client_refuses_unsigned_freeradius_replies).
    let mut strict = client_for(&[server.auth], true, 200);
    match run(&mut strict, pap("alice", "alicepass", vec![])) {
        Outcome::Accept { attrs } => assert!(
            attrs
                .iter()
                .any(|a| matches!(a, Attribute::MessageAuthenticator(_)))
        ),
        other => panic!("strict: unexpected {other:?}"),
    }

    // Server down: Timeout after the retries.
    let mut down = client_for(&[silent.local_addr().unwrap()], false, 100);
    assert_eq!(
        run(&mut down, pap("alice", "alicepass", vec![])),
        Outcome::Timeout
    );
    assert_eq!(down.stats().retransmissions, 1);
}

/// FreeRADIUS with `require_message_authenticator = yes` drops requests
/// without a valid Message-Authenticator, so an Accept proves ours is right.
#[test]
fn freeradius_requiring_message_authenticator_accepts_ours() {
    let server = start_or_fail(true);
    let mut c = client_for(&[server.auth], false, 1000);
    assert!(matches!(
        run(&mut c, pap("alice", "alicepass", vec![])),
        Outcome::Accept { .. }
    ));
    // A request whose Message-Authenticator was made with another secret is
    // silently dropped by the server: the client times out.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bad = encode_access_request(
        9,
        &random16(),
        &[Attribute::UserName(b"alice".to_vec())],
        Some(b"alicepass"),
        b"not-the-secret",
    )
    .unwrap();
    sock.send_to(&bad, server.auth).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "server answered a forged request"
    );
}

/// Issue 12 hole 5 against the real thing: a client on the default
/// configuration gets nothing through from a FreeRADIUS 3.2.1 that does not
/// sign its replies (stock Debian: the request times out, every reply is
/// counted as missing its Message-Authenticator), `auto` believes such a
/// server (it never signed), and the same server told to sign is accepted.
#[test]
fn hole_5_default_client_refuses_unsigned_freeradius_replies() {
    let cannot = |e: String| -> Server {
        panic!("{e}\nthis FreeRADIUS test cannot run: install the Debian package `freeradius`")
    };
    let stock = start_signing(false, false).unwrap_or_else(cannot);
    let mut cfg = ClientConfig::new(vec![ServerConfig {
        addr: stock.auth,
        secret: SECRET.to_vec(),
    }]);
    cfg.timeout = Duration::from_millis(300);
    cfg.retries = 1;
    let mut c = Client::new(cfg.clone()).unwrap();
    assert_eq!(
        run(&mut c, pap("alice", "alicepass", vec![])),
        Outcome::Timeout
    );
    assert_eq!(c.stats().dropped_missing_message_authenticator, 2);
    let mut auto_cfg = cfg.clone();
    auto_cfg.require_message_authenticator = RequireMessageAuthenticator::Auto;
    let mut auto = Client::new(auto_cfg).unwrap();
    assert!(matches!(
        run(&mut auto, pap("alice", "alicepass", vec![])),
        Outcome::Accept { .. }
    ));
    assert_eq!(auto.stats().accepted_without_message_authenticator, 1);
    drop(stock);

    let signing = start_signing(false, true).unwrap_or_else(cannot);
    cfg.servers[0].addr = signing.auth;
    let mut c = Client::new(cfg).unwrap();
    assert!(matches!(
        run(&mut c, pap("alice", "alicepass", vec![])),
        Outcome::Accept { .. }
    ));
    assert!(matches!(
        run(&mut c, pap("alice", "wrong", vec![])),
        Outcome::Reject { .. }
    ));
    assert_eq!(c.stats().dropped_missing_message_authenticator, 0);
}
