//! The `radius` module driven through a real `securityhost::Port`, against
//! small fake RADIUS servers on 127.0.0.1 (exact control over replies: bad
//! authenticators, missing Message-Authenticator, endless challenges,
//! failover) and against a real FreeRADIUS 3.2 (Debian `freeradius`) started
//! by the test: with `crates/radius/tests/freeradius.sh` (users alice and
//! bob) and with a config of this file's own (`carol`: two challenge rounds).
//!
//! If FreeRADIUS is missing or does not start, the FreeRADIUS tests fail,
//! saying why (`scripts/test` installs it).

mod common;

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Driver, count};
use modules::{
    END_ABORTED, ERROR_RADIUS_BAD_USER_NAME, ERROR_RADIUS_NO_ANSWER,
    ERROR_RADIUS_TOO_MANY_CHALLENGES, RadiusModule, RadiusOptions,
};
use radius::{
    Attribute, Code, RawPacket, ServerConfig, encode_response, unhide_password, values,
    verify_access_request,
};
use securityhost::consts::NO_ERROR;
use securityhost::{AbortCause, Outcome, Verdict};
use tokio::net::UdpSocket;

const SECRET: &[u8] = b"testing123";

fn module(o: RadiusOptions) -> Arc<RadiusModule> {
    Arc::new(RadiusModule::new(tokio::runtime::Handle::current(), o).unwrap())
}

fn server(addr: SocketAddr) -> ServerConfig {
    ServerConfig {
        addr,
        secret: SECRET.to_vec(),
    }
}

fn opts(servers: &[SocketAddr]) -> RadiusOptions {
    RadiusOptions {
        servers: servers.iter().copied().map(server).collect(),
        timeout: Duration::from_millis(300),
        retries: 1,
        nas_identifier: "dial-test".into(),
        ..RadiusOptions::default()
    }
}

fn error(code: u32) -> Outcome {
    Outcome::Verdict(Verdict::Error { code })
}

fn failure(user: &str) -> Outcome {
    Outcome::Verdict(Verdict::Failure {
        user: user.into(),
        domain: String::new(),
    })
}

// ---------------------------------------------------------------- fakes

/// An Access-Request as a fake server saw it (its Message-Authenticator
/// verified, its User-Password unhidden).
#[derive(Clone, Debug)]
struct Seen {
    identifier: u8,
    authenticator: [u8; 16],
    attrs: Vec<Attribute>,
    password: Vec<u8>,
}

impl Seen {
    fn user(&self) -> Vec<u8> {
        self.find(|a| match a {
            Attribute::UserName(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_default()
    }

    fn state(&self) -> Option<Vec<u8>> {
        self.find(|a| match a {
            Attribute::State(s) => Some(s.clone()),
            _ => None,
        })
    }

    fn find<T>(&self, f: impl FnMut(&Attribute) -> Option<T>) -> Option<T> {
        self.attrs.iter().find_map(f)
    }

    /// A correctly signed reply (with a Message-Authenticator if `ma`).
    fn reply(&self, code: Code, attrs: &[Attribute], ma: bool) -> Vec<u8> {
        encode_response(
            code,
            self.identifier,
            &self.authenticator,
            attrs,
            SECRET,
            ma,
        )
        .unwrap()
    }
}

type Script = Box<dyn FnMut(&Seen) -> Option<Vec<u8>> + Send>;

/// A fake RADIUS server on 127.0.0.1 answering with `script` (None: no
/// answer). Stops when dropped.
struct Fake {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    async fn start(mut script: Script) -> Fake {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                let raw = RawPacket::parse(&buf[..n]).expect("the module sent a malformed packet");
                assert_eq!(raw.code(), Code::AccessRequest);
                verify_access_request(&raw, SECRET, true)
                    .expect("the module's Message-Authenticator is wrong or missing");
                let attrs = raw.to_packet().attributes;
                let password = attrs
                    .iter()
                    .find_map(|a| match a {
                        Attribute::UserPassword(h) => {
                            Some(unhide_password(h, SECRET, &raw.authenticator()).unwrap())
                        }
                        _ => None,
                    })
                    .unwrap_or_default();
                let mut password = password;
                while password.last() == Some(&0) {
                    password.pop();
                }
                let seen = Seen {
                    identifier: raw.identifier(),
                    authenticator: raw.authenticator(),
                    attrs,
                    password,
                };
                s2.lock().unwrap().push(seen.clone());
                if let Some(reply) = script(&seen) {
                    sock.send_to(&reply, from).await.unwrap();
                }
            }
        });
        Fake { addr, seen, task }
    }

    /// A server that never answers (it only counts).
    async fn silent() -> Fake {
        Fake::start(Box::new(|_| None)).await
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// An address where nothing listens.
fn closed_port() -> SocketAddr {
    let s = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

// ------------------------------------------------------- tests with fakes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_sends_the_request_attributes_and_grants_the_servers_name() {
    let fake = Fake::start(Box::new(|s: &Seen| {
        let ok = s.user() == b"alice" && s.password == b"secret pw";
        Some(if ok {
            s.reply(
                Code::AccessAccept,
                &[Attribute::UserName(b"Alice.Smith".to_vec())],
                true,
            )
        } else {
            s.reply(Code::AccessReject, &[], true)
        })
    }))
    .await;
    let m = module(RadiusOptions {
        domain: "LAB".into(),
        ..opts(&[fake.addr])
    });
    let mut d = Driver::start_default(m.clone()).await;
    d.expect("Username: ").await;
    d.type_slowly(b"alice\r").await;
    d.expect("Password: ").await;
    d.type_slowly(b"secret pw\r\n").await;
    assert_eq!(d.finish().await.granted(), Some(("Alice.Smith", "LAB")));
    assert_eq!(d.end_codes, vec![NO_ERROR]);
    assert_eq!(d.text(), "Username: alice\r\nPassword: \r\n");

    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    let a = &seen[0].attrs;
    assert!(a.contains(&Attribute::NasIdentifier(b"dial-test".to_vec())));
    // The test driver's device is not `tcp ...`: an Async port.
    assert!(a.contains(&Attribute::NasPortType(values::nas_port_type::ASYNC)));
    assert!(a.contains(&Attribute::CallingStationId(b"test 127.0.0.1:1".to_vec())));
    assert!(a.contains(&Attribute::ServiceType(values::service_type::FRAMED)));
    assert!(a.contains(&Attribute::FramedProtocol(values::framed_protocol::PPP)));
    assert!(matches!(
        a.first(),
        Some(Attribute::MessageAuthenticator(_))
    ));
    assert_eq!(seen[0].state(), None);
    let st = m.stats();
    assert_eq!((st.accepted, st.rejected, st.no_answer), (1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_without_user_name_grants_the_typed_name() {
    let fake = Fake::start(Box::new(|s: &Seen| {
        Some(s.reply(Code::AccessAccept, &[], true))
    }))
    .await;
    let mut d = Driver::start_default(module(opts(&[fake.addr]))).await;
    d.send(b"bob\rpw\r").await;
    assert_eq!(d.finish().await.granted(), Some(("bob", "")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_name_that_cannot_be_granted_is_an_error() {
    let fake = Fake::start(Box::new(|s: &Seen| {
        Some(s.reply(
            Code::AccessAccept,
            &[Attribute::UserName(b"bad\xffname".to_vec())],
            true,
        ))
    }))
    .await;
    let mut d = Driver::start_default(module(opts(&[fake.addr]))).await;
    d.send(b"bob\rpw\r").await;
    assert_eq!(d.finish().await, error(ERROR_RADIUS_BAD_USER_NAME));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_show_the_reply_message_or_a_neutral_text() {
    let fake = Fake::start(Box::new(|s: &Seen| {
        Some(if s.user() == b"first" {
            s.reply(Code::AccessReject, &[], true)
        } else {
            s.reply(
                Code::AccessReject,
                &[
                    Attribute::ReplyMessage(b"Account locked\n".to_vec()),
                    Attribute::ReplyMessage(b"Call \x1b[31mthe desk".to_vec()),
                ],
                true,
            )
        })
    }))
    .await;
    let m = module(RadiusOptions {
        tries: 2,
        ..opts(&[fake.addr])
    });
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"first\rpw1\r").await;
    d.expect("Login incorrect\r\n").await;
    d.expect_count("Username: ", 2).await;
    d.send(b"second\rpw2\r").await;
    assert_eq!(d.finish().await, failure("second"));
    let text = d.text();
    // The two Reply-Messages concatenated, CR LF line ends, no escape.
    assert!(
        text.ends_with("Password: \r\nAccount locked\r\nCall [31mthe desk\r\n"),
        "{text:?}"
    );
    assert_eq!(count(&d.output, b"Login incorrect"), 1);
    assert_eq!(m.stats().rejected, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_prompt_with_their_message_and_echo_and_return_the_state() {
    let fake = Fake::start(Box::new(|s: &Seen| {
        let reply = match (s.state().as_deref(), s.password.as_slice()) {
            (None, b"pw") => s.reply(
                Code::AccessChallenge,
                &[
                    Attribute::ReplyMessage(b"Token 7\nSerial:".to_vec()),
                    Attribute::Prompt(values::prompt::ECHO),
                    Attribute::State(b"round-1".to_vec()),
                ],
                true,
            ),
            (Some(b"round-1"), b"SN-1") => s.reply(
                Code::AccessChallenge,
                // No Reply-Message, no Prompt: the default prompt, no echo.
                &[Attribute::State(b"round-2".to_vec())],
                true,
            ),
            (Some(b"round-2"), b"123456") => s.reply(Code::AccessAccept, &[], true),
            _ => s.reply(Code::AccessReject, &[], true),
        };
        Some(reply)
    }))
    .await;
    let m = module(opts(&[fake.addr]));
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"carol\r\npw\r\n").await;
    d.expect("Token 7\r\nSerial: ").await;
    d.type_slowly(b"SN-1\r").await;
    d.expect("Response: ").await;
    d.type_slowly(b"123456\n").await;
    assert_eq!(d.finish().await.granted(), Some(("carol", "")));
    assert_eq!(
        d.text(),
        "Username: carol\r\nPassword: \r\nToken 7\r\nSerial: SN-1\r\nResponse: \r\n"
    );
    let seen = fake.seen();
    let states: Vec<_> = seen.iter().map(Seen::state).collect();
    assert_eq!(
        states,
        vec![None, Some(b"round-1".to_vec()), Some(b"round-2".to_vec())]
    );
    assert!(seen.iter().all(|s| s.user() == b"carol"));
    assert_eq!(m.stats().challenges, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_challenges_end_as_an_error() {
    let fake = Fake::start(Box::new(|s: &Seen| {
        Some(s.reply(
            Code::AccessChallenge,
            &[
                Attribute::ReplyMessage(b"Again:".to_vec()),
                Attribute::State(b"s".to_vec()),
            ],
            true,
        ))
    }))
    .await;
    let m = module(RadiusOptions {
        max_challenge_rounds: 2,
        ..opts(&[fake.addr])
    });
    let mut d = Driver::start_default(m).await;
    d.send(b"u\rp\r").await;
    d.expect("Again: ").await;
    d.send(b"1\r").await;
    d.expect_count("Again: ", 2).await;
    d.send(b"2\r").await;
    assert_eq!(d.finish().await, error(ERROR_RADIUS_TOO_MANY_CHALLENGES));
    assert_eq!(fake.seen().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_with_a_wrong_authenticator_is_dropped() {
    let fake = Fake::start(Box::new(|s: &Seen| {
        let mut r = s.reply(Code::AccessAccept, &[], false);
        r[4] ^= 0x5a; // corrupt the Response Authenticator
        Some(r)
    }))
    .await;
    let m = module(opts(&[fake.addr]));
    let mut d = Driver::start_default(m.clone()).await;
    let t0 = Instant::now();
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await, error(ERROR_RADIUS_NO_ANSWER));
    // 2 transmissions of 300 ms each.
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let st = m.stats();
    assert_eq!(st.client.dropped_bad_authenticator, 2);
    assert_eq!(st.no_answer, 1);
    assert_eq!(fake.seen().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_message_authenticator_is_dropped() {
    let fake = Fake::start(Box::new(|s: &Seen| {
        let mut r = s.reply(Code::AccessAccept, &[], true);
        // The Message-Authenticator is the only attribute: corrupt its last
        // byte (which also breaks the Response Authenticator over it).
        let last = r.len() - 1;
        r[last] ^= 1;
        Some(r)
    }))
    .await;
    let m = module(opts(&[fake.addr]));
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await, error(ERROR_RADIUS_NO_ANSWER));
    let c = m.stats().client;
    assert_eq!(
        c.dropped_bad_authenticator + c.dropped_bad_message_authenticator,
        2
    );
}

/// Issue 12 hole 5: on the module's default options, an Access-Accept
/// without a Message-Authenticator (what a BlastRADIUS forgery looks like,
/// and what a stock FreeRADIUS 3.2.1 sends) is not a grant: no valid answer,
/// ERROR. Only an explicit `Never` believes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_5_unsigned_accept_is_no_grant_on_the_defaults() {
    let bare = Fake::start(Box::new(|s: &Seen| {
        Some(s.reply(Code::AccessAccept, &[], false))
    }))
    .await;
    let defaults = RadiusOptions {
        servers: vec![server(bare.addr)],
        timeout: Duration::from_millis(300),
        retries: 1,
        ..RadiusOptions::default()
    };
    let m = module(defaults.clone());
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await, error(ERROR_RADIUS_NO_ANSWER));
    assert_eq!(m.stats().client.dropped_missing_message_authenticator, 2);

    let m = module(RadiusOptions {
        require_message_authenticator: modules::RequireMessageAuthenticator::Never,
        ..defaults
    });
    let mut d = Driver::start_default(m).await;
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await.granted(), Some(("alice", "")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_message_authenticator_must_be_there() {
    // Replies without Message-Authenticator: dropped when it is required.
    let bare = Fake::start(Box::new(|s: &Seen| {
        Some(s.reply(Code::AccessAccept, &[], false))
    }))
    .await;
    let strict = |addr| RadiusOptions {
        require_message_authenticator: modules::RequireMessageAuthenticator::Always,
        ..opts(&[addr])
    };
    let m = module(strict(bare.addr));
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await, error(ERROR_RADIUS_NO_ANSWER));
    assert_eq!(m.stats().client.dropped_missing_message_authenticator, 2);

    // With one: granted.
    let signed = Fake::start(Box::new(|s: &Seen| {
        Some(s.reply(Code::AccessAccept, &[], true))
    }))
    .await;
    let mut d = Driver::start_default(module(strict(signed.addr))).await;
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await.granted(), Some(("alice", "")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_down_end_as_an_error_after_the_retries() {
    let a = Fake::silent().await;
    let b = closed_port();
    let m = module(RadiusOptions {
        timeout: Duration::from_millis(200),
        retries: 2,
        ..opts(&[a.addr, b])
    });
    let mut d = Driver::start_default(m.clone()).await;
    let t0 = Instant::now();
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await, error(ERROR_RADIUS_NO_ANSWER));
    let took = t0.elapsed();
    // 2 servers x 3 transmissions x 200 ms.
    assert!(
        took >= Duration::from_millis(1100) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(a.seen().len(), 3);
    let c = m.stats().client;
    assert_eq!(
        (c.transmissions, c.retransmissions, c.failovers, c.timeouts),
        (2, 4, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_is_shared_by_later_dialogs() {
    let dead = Fake::silent().await;
    let live = Fake::start(Box::new(|s: &Seen| {
        Some(s.reply(Code::AccessAccept, &[], true))
    }))
    .await;
    let m = module(RadiusOptions {
        timeout: Duration::from_millis(200),
        retries: 0,
        ..opts(&[dead.addr, live.addr])
    });
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await.granted(), Some(("alice", "")));
    assert_eq!((dead.seen().len(), live.seen().len()), (1, 1));
    // The next call goes straight to the server that answered.
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await.granted(), Some(("alice", "")));
    assert_eq!((dead.seen().len(), live.seen().len()), (1, 2));
    assert_eq!(m.stats().client.failovers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_while_waiting_for_the_server_cancels_the_request() {
    let silent = Fake::silent().await;
    let m = module(RadiusOptions {
        timeout: Duration::from_millis(200),
        retries: 0,
        ..opts(&[silent.addr])
    });
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\ralicepass\r").await;
    let t0 = Instant::now();
    while silent.seen().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    d.abort(AbortCause::PortDisabled).await;
    assert_eq!(
        d.finish().await,
        Outcome::Aborted {
            cause: AbortCause::PortDisabled,
            late: None
        }
    );
    assert_eq!(d.end_codes, vec![END_ABORTED]);
    assert_eq!(m.active_dialogs(), 0);
    // Past the request's timeout: it was cancelled, never timed out.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = m.stats().client;
    assert_eq!((c.timeouts, c.retransmissions), (0, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_answers_are_not_sent() {
    let fake = Fake::start(Box::new(|s: &Seen| {
        Some(s.reply(Code::AccessAccept, &[], true))
    }))
    .await;
    let mut d = Driver::start_default(module(opts(&[fake.addr]))).await;
    // A 200-byte password: more than RADIUS can carry (128).
    let mut input = b"alice\r".to_vec();
    input.extend(std::iter::repeat_n(b'p', 200));
    input.push(b'\r');
    d.send(&input).await;
    assert_eq!(d.finish().await, failure("alice"));
    assert!(d.text().contains("Login incorrect"));
    assert!(fake.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_dialogs_share_the_client() {
    let fake = Fake::start(Box::new(|s: &Seen| {
        let ok = s.password == s.user();
        Some(s.reply(
            if ok {
                Code::AccessAccept
            } else {
                Code::AccessReject
            },
            &[],
            true,
        ))
    }))
    .await;
    let m = module(opts(&[fake.addr]));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            let mut d = Driver::start_default(m).await;
            let name = format!("user{i}");
            let pw = if i % 2 == 0 { name.clone() } else { "x".into() };
            d.send(format!("{name}\r{pw}\r").as_bytes()).await;
            (i, d.finish().await)
        }));
    }
    for t in tasks {
        let (i, outcome) = t.await.unwrap();
        let name = format!("user{i}");
        if i % 2 == 0 {
            assert_eq!(outcome.granted(), Some((name.as_str(), "")));
        } else {
            assert_eq!(outcome, failure(&name));
        }
    }
    assert_eq!(fake.seen().len(), 20);
}

// --------------------------------------------------- a real FreeRADIUS

fn freeradius_bin() -> PathBuf {
    std::env::var_os("FREERADIUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/freeradius"))
}

/// The script another part of the project keeps (users alice and bob).
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../radius/tests/freeradius.sh")
}

fn free_ports() -> (u16, u16) {
    let a = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    let b = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// A FreeRADIUS started by `freeradius.sh`; stopped on drop.
struct ScriptServer {
    pid: String,
    dir: PathBuf,
    auth: SocketAddr,
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(&self.pid)
            .arg(&self.dir)
            .status();
    }
}

/// `sign`: the server signs its Access-* replies (`SIGN_REPLIES`), as
/// FreeRADIUS 3.2.5 and later do; stock 3.2.1 does not.
fn start_script(require_ma: bool, sign: bool) -> Result<ScriptServer, String> {
    if !freeradius_bin().exists() {
        return Err(format!("{} not found", freeradius_bin().display()));
    }
    let mut last = String::new();
    // A port picked by binding port 0 can be taken again before the server
    // binds it: retry a few times.
    for _ in 0..3 {
        let (auth, acct) = free_ports();
        let out = Command::new(script())
            .arg("start")
            .arg(auth.to_string())
            .arg(acct.to_string())
            .env("RADIUS_SECRET", "testing123")
            .env("REQUIRE_MA", if require_ma { "yes" } else { "no" })
            .env("SIGN_REPLIES", if sign { "yes" } else { "no" })
            .env("FREERADIUS_MAX_SECONDS", "120")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
        if out.status.success() {
            let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let (pid, dir) = line
                .split_once(' ')
                .ok_or_else(|| format!("unexpected output from freeradius.sh: {line:?}"))?;
            return Ok(ScriptServer {
                pid: pid.into(),
                dir: dir.into(),
                auth: SocketAddr::from(([127, 0, 0, 1], auth)),
            });
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    Err(format!("FreeRADIUS did not start: {last}"))
}

/// Fails the calling test unless FreeRADIUS is installed: a test that
/// cannot run fails, it never passes. (A FreeRADIUS that is installed but
/// does not start fails it too, in `start_script`/`start_own`.)
fn require_freeradius() {
    assert!(
        freeradius_bin().exists(),
        "{} not found, so this FreeRADIUS test cannot run: install the Debian package \
         `freeradius` (`bash scripts/test` installs it when run as root)",
        freeradius_bin().display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeradius_accept_reject_and_pin_challenge() {
    require_freeradius();
    let srv = tokio::task::spawn_blocking(|| start_script(false, true))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let m = module(RadiusOptions {
        timeout: Duration::from_secs(2),
        ..opts(&[srv.auth])
    });

    // Accept.
    let mut d = Driver::start_default(m.clone()).await;
    d.expect("Username: ").await;
    d.type_slowly(b"alice\r").await;
    d.expect("Password: ").await;
    d.type_slowly(b"alicepass\r").await;
    assert_eq!(d.finish().await.granted(), Some(("alice", "")));
    assert_eq!(d.text(), "Username: alice\r\nPassword: \r\n");

    // Reject: FreeRADIUS's Reply-Message is shown.
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\rwrong\r").await;
    assert_eq!(d.finish().await, failure("alice"));
    assert!(
        d.text().ends_with("Password: \r\nLogin incorrect\r\n"),
        "{:?}",
        d.text()
    );

    // bob: password, then "Enter PIN:" with Prompt = No-Echo and a State.
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"bob\rbobpass\r").await;
    d.expect("Enter PIN: ").await;
    d.type_slowly(b"4321\r").await;
    assert_eq!(d.finish().await.granted(), Some(("bob", "")));
    assert_eq!(d.text(), "Username: bob\r\nPassword: \r\nEnter PIN: \r\n");

    // A wrong PIN is a Reject.
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"bob\rbobpass\r").await;
    d.expect("Enter PIN: ").await;
    d.send(b"1111\r").await;
    assert_eq!(d.finish().await, failure("bob"));

    let st = m.stats();
    assert_eq!((st.accepted, st.rejected, st.challenges), (2, 2, 2));
    let c = st.client;
    assert_eq!(
        c.dropped_bad_authenticator
            + c.dropped_bad_message_authenticator
            + c.dropped_missing_message_authenticator
            + c.timeouts,
        0,
        "{c:?}"
    );
}

/// The script's FreeRADIUS with `require_message_authenticator = yes`: it
/// verifies ours (an Accept proves it right, the wrong secret gets no
/// answer), and signs its replies, so the module's default (required)
/// takes them. A stock FreeRADIUS 3.2.1 does not sign its PAP replies: the
/// module on its defaults drops them, NO_ANSWER, each reply counted (the
/// BlastRADIUS protection working against a real, unsigned server), and
/// only `require_message_authenticator = false` lets them through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeradius_requiring_message_authenticators() {
    require_freeradius();
    let srv = tokio::task::spawn_blocking(|| start_script(true, true))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let m = module(RadiusOptions {
        timeout: Duration::from_secs(2),
        ..opts(&[srv.auth])
    });
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await.granted(), Some(("alice", "")));
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"bob\rbobpass\r").await;
    d.expect("Enter PIN: ").await;
    d.send(b"4321\r").await;
    assert_eq!(d.finish().await.granted(), Some(("bob", "")));

    let c = m.stats().client;
    assert_eq!(c.dropped_missing_message_authenticator, 0, "{c:?}");

    // A server that does not sign: the module's defaults drop the unsigned
    // Accepts.
    let stock = tokio::task::spawn_blocking(|| start_script(true, false))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let strict = module(opts(&[stock.auth]));
    let mut d = Driver::start_default(strict.clone()).await;
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await, error(ERROR_RADIUS_NO_ANSWER));
    let c = strict.stats().client;
    assert_eq!(
        (c.dropped_missing_message_authenticator, c.timeouts),
        (2, 1),
        "{c:?}"
    );
    let lax = module(RadiusOptions {
        require_message_authenticator: modules::RequireMessageAuthenticator::Never,
        ..opts(&[stock.auth])
    });
    let mut d = Driver::start_default(lax).await;
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await.granted(), Some(("alice", "")));

    // The wrong secret: the server drops our requests (their
    // Message-Authenticator does not verify), so no answer.
    let m = module(RadiusOptions {
        servers: vec![ServerConfig {
            addr: srv.auth,
            secret: b"not-the-secret".to_vec(),
        }],
        ..opts(&[])
    });
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\ralicepass\r").await;
    assert_eq!(d.finish().await, error(ERROR_RADIUS_NO_ANSWER));
    assert_eq!(m.stats().client.dropped_bad_authenticator, 0);
}

/// Our own FreeRADIUS config (same shape as `freeradius.sh`'s): user carol,
/// password `carolpass`, then a challenge "Token serial" + "Serial:" with
/// Prompt = Echo, then "One-time PIN:" with Prompt = No-Echo, each round
/// with a new State; the Accept names her `Carol`. Every reply carries a
/// Message-Authenticator (a zero placeholder FreeRADIUS signs; 3.2.1 does
/// not add one to PAP replies by itself).
const CAROL_CONF: &str = r#"
name       = radiusd
libdir     = /usr/lib/freeradius
logdir     = ${confdir}/log
radacctdir = ${confdir}/acct
run_dir    = ${confdir}/run
pidfile    = ${run_dir}/radiusd.pid
max_request_time = 30
cleanup_delay    = 5
max_requests     = 1024
hostname_lookups = no
log {
	destination = stdout
	colourise   = no
	auth        = yes
}
security {
	allow_core_dumps = no
	max_attributes   = 200
	reject_delay     = 0
	status_server    = yes
}
thread pool {
	start_servers     = 2
	max_servers       = 4
	min_spare_servers = 1
	max_spare_servers = 2
}
client localhost {
	ipaddr = 127.0.0.1
	secret = "testing123"
	require_message_authenticator = yes
}
modules {
	pap {
	}
	files {
		filename = ${confdir}/users
	}
	always ok {
		rcode = ok
	}
	always reject {
		rcode = reject
	}
	always handled {
		rcode = handled
	}
}
server default {
	listen {
		type   = auth
		ipaddr = 127.0.0.1
		port   = @AUTH_PORT@
	}
	authorize {
		files
		if (&request:State) {
			if (&session-state:Tmp-String-0 == "await-serial") {
				update control {
					&Auth-Type := SERIAL
				}
				ok
				return
			}
			if (&session-state:Tmp-String-0 == "await-pin") {
				update control {
					&Auth-Type := OTP
				}
				ok
				return
			}
			reject
		}
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
			if (ok) {
				update session-state {
					&Tmp-String-0 := "await-serial"
					&User-Name    := &request:User-Name
				}
				update {
					&reply: !* ANY
				}
				update reply {
					&Reply-Message := "Token serial\nSerial:"
					&Prompt        := Echo
					&Message-Authenticator := 0x00000000000000000000000000000000
				}
				update control {
					&Response-Packet-Type := Access-Challenge
				}
				handled
			}
		}
		Auth-Type SERIAL {
			if ((&User-Name == &session-state:User-Name) && \
			    (&User-Password == "SN-77")) {
				update session-state {
					&Tmp-String-0 := "await-pin"
				}
				update reply {
					&Reply-Message := "One-time PIN:"
					&Prompt        := No-Echo
					&Message-Authenticator := 0x00000000000000000000000000000000
				}
				update control {
					&Response-Packet-Type := Access-Challenge
				}
				handled
			}
			else {
				reject
			}
		}
		Auth-Type OTP {
			if ((&User-Name == &session-state:User-Name) && \
			    (&User-Password == "998877")) {
				update reply {
					&User-Name := "Carol"
					&Message-Authenticator := 0x00000000000000000000000000000000
				}
				ok
			}
			else {
				reject
			}
		}
	}
	post-auth {
		Post-Auth-Type REJECT {
			update reply {
				&Reply-Message := "Denied"
				&Message-Authenticator := 0x00000000000000000000000000000000
			}
		}
	}
}
"#;

/// A FreeRADIUS with [`CAROL_CONF`], run under `timeout` (so it dies by
/// itself if the test process is killed); SIGTERM and removed on drop.
struct OwnServer {
    child: Child,
    /// Removed after the server is stopped (fields drop after `drop`).
    _dir: tempfile::TempDir,
    auth: SocketAddr,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        // `timeout` passes SIGTERM on to FreeRADIUS.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `dir` is removed after this, with the server gone.
    }
}

fn start_own() -> Result<OwnServer, String> {
    let bin = freeradius_bin();
    if !bin.exists() {
        return Err(format!("{} not found", bin.display()));
    }
    let mut last = String::new();
    for _ in 0..3 {
        let dir = tempfile::Builder::new()
            .prefix("radius-module-test.")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let (port, _) = free_ports();
        let conf = CAROL_CONF.replace("@AUTH_PORT@", &port.to_string());
        std::fs::write(dir.path().join("radiusd.conf"), conf).map_err(|e| e.to_string())?;
        std::fs::write(
            dir.path().join("users"),
            "carol\tCleartext-Password := \"carolpass\"\n",
        )
        .map_err(|e| e.to_string())?;
        let log_path = dir.path().join("radiusd.out");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("timeout")
            .arg("120")
            .arg(&bin)
            .arg("-f")
            .arg("-X")
            .arg("-d")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut srv = OwnServer {
            child,
            _dir: dir,
            auth: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            let out = std::fs::read_to_string(&log_path).unwrap_or_default();
            if out.contains("Ready to process requests") {
                return Ok(srv);
            }
            if let Ok(Some(_)) = srv.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = out.lines().rev().take(15).collect();
        last = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        drop(srv);
    }
    Err(format!("FreeRADIUS did not start; log tail:\n{last}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeradius_two_challenge_rounds_with_echo_then_no_echo() {
    require_freeradius();
    let srv = tokio::task::spawn_blocking(start_own)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let m = module(RadiusOptions {
        timeout: Duration::from_secs(2),
        require_message_authenticator: modules::RequireMessageAuthenticator::Always,
        ..opts(&[srv.auth])
    });
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"carol\rcarolpass\r").await;
    d.expect("Token serial\r\nSerial: ").await;
    d.type_slowly(b"SN-77\r").await;
    d.expect("One-time PIN: ").await;
    d.type_slowly(b"998877\r").await;
    assert_eq!(d.finish().await.granted(), Some(("Carol", "")));
    assert_eq!(
        d.text(),
        "Username: carol\r\nPassword: \r\nToken serial\r\nSerial: SN-77\r\nOne-time PIN: \r\n"
    );
    assert_eq!(m.stats().challenges, 2);
    // Required, and there: FreeRADIUS signed every reply.
    assert_eq!(m.stats().client.dropped_missing_message_authenticator, 0);

    // A wrong second answer: Reject with the server's message.
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"carol\rcarolpass\r").await;
    d.expect("Serial: ").await;
    d.send(b"SN-77\r").await;
    d.expect("One-time PIN: ").await;
    d.send(b"000000\r").await;
    assert_eq!(d.finish().await, failure("carol"));
    assert!(d.text().ends_with("Denied\r\n"), "{:?}", d.text());
}
