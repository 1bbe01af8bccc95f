//! PPP authentication through RADIUS and RADIUS accounting of PPP sessions
//! ([`modules::RadiusPpp`]), against small fake RADIUS servers on 127.0.0.1
//! (exact control over the replies) and against a real FreeRADIUS 3.2
//! (Debian `freeradius`) started with `crates/radius/tests/freeradius.sh`
//! (user alice/alicepass; PAP, CHAP and MS-CHAPv2; accounting written to
//! `DIR/acct/detail`).
//!
//! The PPP side is the real thing: a `ppp::auth::Peer` (the caller's client)
//! talks to a `ppp::auth::Authenticator` whose verdicts come from
//! `RadiusPpp::verify`, so an MS-CHAPv2 success also proves that the
//! authenticator response FreeRADIUS computed satisfies the peer.
//!
//! If FreeRADIUS is missing or does not start, the FreeRADIUS tests fail,
//! saying why (`scripts/test` installs it).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modules::radius_ppp::{
    AcctCounters, AcctSession, NasPortType, REJECT_TEXT, RadiusPpp, RadiusPppOptions,
    TerminateCause, UNAVAILABLE_TEXT,
};
use ppp::auth::crypto::{chap_md5_response, check_authenticator_response, generate_nt_response};
use ppp::auth::{
    AuthProtocol, Authenticator, AuthenticatorConfig, Credentials, Event, FailureReason, Peer,
    PeerConfig, Verdict,
};
use radius::{
    Attribute, Code, MsAttr, RawPacket, ServerConfig, encode_response, values,
    verify_access_request, verify_accounting_request,
};
use tokio::net::UdpSocket;

const SECRET: &[u8] = b"testing123";

/// Every test ends within this.
const TEST_LIMIT: Duration = Duration::from_secs(60);

fn server(addr: SocketAddr) -> ServerConfig {
    ServerConfig {
        addr,
        secret: SECRET.to_vec(),
    }
}

fn rp(auth: SocketAddr, acct: Option<SocketAddr>) -> RadiusPpp {
    RadiusPpp::new(
        tokio::runtime::Handle::current(),
        RadiusPppOptions {
            auth_servers: vec![server(auth)],
            acct_servers: acct.into_iter().map(server).collect(),
            timeout: Duration::from_millis(1500),
            retries: 1,
            ..RadiusPppOptions::default()
        },
    )
    .unwrap()
}

/// How a PPP authentication between our peer and our authenticator ended.
#[derive(Debug)]
struct Handshake {
    /// The verdicts `verify` gave, in order.
    verdicts: Vec<Verdict>,
    /// Peer side: `Ok` on success, else why it failed.
    peer: Result<(), FailureReason>,
    /// Authenticator side: succeeded?
    authenticator_ok: bool,
}

/// Runs a `Peer` (user/password) against an `Authenticator` whose verdicts
/// come from `rp.verify`, passing the packets in memory, until both end.
async fn handshake(
    rp: &RadiusPpp,
    protocol: AuthProtocol,
    user: &str,
    password: &str,
) -> Handshake {
    let now = Instant::now();
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let mut auth = Authenticator::new(protocol, AuthenticatorConfig::new(seed)).unwrap();
    rand::fill(&mut seed);
    let mut peer = Peer::new(protocol, PeerConfig::new(user.as_bytes(), password, seed)).unwrap();
    auth.start(now);
    peer.start(now);
    let mut verdicts = Vec::new();
    let mut peer_result = None;
    let mut auth_result = None;
    for _ in 0..100 {
        let mut moved = false;
        while let Some(p) = auth.poll_transmit() {
            let _ = peer.handle_packet(now, &p);
            moved = true;
        }
        while let Some(p) = peer.poll_transmit() {
            let _ = auth.handle_packet(now, &p);
            moved = true;
        }
        while let Some(e) = auth.poll_event() {
            moved = true;
            match e {
                Event::Verify(req) => {
                    let v = rp.verify(&req.credentials, Some("192.0.2.7")).await;
                    verdicts.push(v.clone());
                    auth.verified(now, req.id, v).unwrap();
                }
                Event::Succeeded { .. } => auth_result = Some(true),
                Event::Failed { .. } => auth_result = Some(false),
            }
        }
        while let Some(e) = peer.poll_event() {
            moved = true;
            match e {
                Event::Succeeded { .. } => peer_result = Some(Ok(())),
                Event::Failed { reason, .. } => peer_result = Some(Err(reason)),
                Event::Verify(_) => panic!("a peer never verifies"),
            }
        }
        if let (Some(p), Some(a)) = (&peer_result, auth_result)
            && !moved
        {
            return Handshake {
                verdicts,
                peer: p.clone(),
                authenticator_ok: a,
            };
        }
    }
    panic!(
        "the PPP authentication did not end: peer {peer_result:?}, authenticator {auth_result:?}"
    );
}

fn rejected_with(h: &Handshake) -> Option<&str> {
    match h.verdicts.last() {
        Some(Verdict::Reject { message, .. }) => Some(message),
        _ => None,
    }
}

// ---------------------------------------------------------------- fakes

/// A request as a fake server saw it.
#[derive(Clone, Debug)]
struct Seen {
    code: Code,
    attrs: Vec<Attribute>,
}

type Script = Box<dyn FnMut(&Seen) -> Option<(Code, Vec<Attribute>)> + Send>;

/// A fake RADIUS server on 127.0.0.1 that checks every request's
/// authenticators and answers as `script` says (None: no answer).
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
    async fn start(script: Script) -> Fake {
        Fake::start_signing(script, true).await
    }

    /// `sign`: Access-* replies carry a Message-Authenticator.
    async fn start_signing(mut script: Script, sign: bool) -> Fake {
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
                let raw = RawPacket::parse(&buf[..n]).expect("a malformed request");
                match raw.code() {
                    Code::AccessRequest => verify_access_request(&raw, SECRET, true)
                        .expect("bad Message-Authenticator"),
                    Code::AccountingRequest => verify_accounting_request(&raw, SECRET)
                        .expect("bad accounting Request Authenticator"),
                    c => panic!("unexpected request code {c:?}"),
                }
                let s = Seen {
                    code: raw.code(),
                    attrs: raw.to_packet().attributes,
                };
                s2.lock().unwrap().push(s.clone());
                if let Some((code, attrs)) = script(&s) {
                    let reply = encode_response(
                        code,
                        raw.identifier(),
                        &raw.authenticator(),
                        &attrs,
                        SECRET,
                        sign && code != Code::AccountingResponse,
                    )
                    .unwrap();
                    sock.send_to(&reply, from).await.unwrap();
                }
            }
        });
        Fake { addr, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn closed_port() -> SocketAddr {
    let s = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

fn mschapv2_creds(user: &str, password: &str) -> (Credentials, [u8; 24], [u8; 16], [u8; 16]) {
    let mut ac = [0u8; 16];
    let mut pc = [0u8; 16];
    rand::fill(&mut ac);
    rand::fill(&mut pc);
    let nt = generate_nt_response(&ac, &pc, user.as_bytes(), password);
    (
        Credentials::MsChapV2 {
            user: user.as_bytes().to_vec(),
            id: 42,
            authenticator_challenge: ac,
            peer_challenge: pc,
            nt_response: nt,
            flags: 0,
        },
        nt,
        pc,
        ac,
    )
}

// ------------------------------------------------------- tests with fakes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_the_protocol_attributes() {
    tokio::time::timeout(TEST_LIMIT, async {
        let fake = Fake::start(Box::new(|_| Some((Code::AccessAccept, vec![])))).await;
        let r = rp(fake.addr, None);
        let pap = Credentials::Pap {
            user: b"alice".to_vec(),
            password: b"alicepass".to_vec(),
        };
        assert_eq!(
            r.verify(&pap, Some("198.51.100.4")).await,
            Verdict::Accept {
                authenticator_response: None
            }
        );
        let chap = Credentials::ChapMd5 {
            user: b"alice".to_vec(),
            id: 9,
            challenge: vec![1, 2, 3, 4, 5],
            response: chap_md5_response(9, b"alicepass", &[1, 2, 3, 4, 5]),
        };
        assert_eq!(
            r.verify(&chap, Some("/dev/ttyS0")).await,
            Verdict::Accept {
                authenticator_response: None
            }
        );
        let (ms, nt, pc, ac) = mschapv2_creds("alice", "alicepass");
        // An Accept without MS-CHAP2-Success cannot satisfy the peer.
        assert_eq!(r.verify(&ms, None).await, Verdict::reject(REJECT_TEXT));

        let seen = fake.seen();
        assert_eq!(seen.len(), 3);
        let common = [
            Attribute::UserName(b"alice".to_vec()),
            Attribute::NasIdentifier(b"dialgate".to_vec()),
            Attribute::ServiceType(values::service_type::FRAMED),
            Attribute::FramedProtocol(values::framed_protocol::PPP),
        ];
        for s in &seen {
            for a in &common {
                assert!(s.attrs.contains(a), "{a:?} missing from {:?}", s.attrs);
            }
        }
        let a = &seen[0].attrs;
        assert!(a.iter().any(|a| matches!(a, Attribute::UserPassword(_))));
        assert!(a.contains(&Attribute::NasPortType(values::nas_port_type::VIRTUAL)));
        assert!(a.contains(&Attribute::CallingStationId(b"198.51.100.4".to_vec())));
        let a = &seen[1].attrs;
        assert!(a.contains(&Attribute::ChapPassword {
            ident: 9,
            response: chap_md5_response(9, b"alicepass", &[1, 2, 3, 4, 5]),
        }));
        assert!(a.contains(&Attribute::ChapChallenge(vec![1, 2, 3, 4, 5])));
        assert!(a.contains(&Attribute::NasPortType(values::nas_port_type::ASYNC)));
        assert!(a.contains(&Attribute::CallingStationId(b"/dev/ttyS0".to_vec())));
        assert!(!a.iter().any(|a| matches!(a, Attribute::UserPassword(_))));
        let a = &seen[2].attrs;
        assert!(a.contains(&Attribute::Microsoft(MsAttr::ChapChallenge(ac.to_vec()))));
        assert!(a.contains(&Attribute::Microsoft(MsAttr::Chap2Response {
            ident: 42,
            flags: 0,
            peer_challenge: pc,
            nt_response: nt,
        })));
        assert!(
            !a.iter()
                .any(|a| matches!(a, Attribute::CallingStationId(_)))
        );
        let st = r.stats();
        assert_eq!((st.accepted, st.rejected, st.no_answer), (2, 1, 0));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mschapv2_success_and_error_texts_are_used() {
    tokio::time::timeout(TEST_LIMIT, async {
        let s_text = format!("S={}", "A".repeat(40));
        let s2 = s_text.clone();
        let fake = Fake::start(Box::new(move |s| {
            let name = s.attrs.iter().find_map(|a| match a {
                Attribute::UserName(n) => Some(n.clone()),
                _ => None,
            });
            match name.as_deref() {
                Some(b"good") => Some((
                    Code::AccessAccept,
                    vec![Attribute::Microsoft(MsAttr::Chap2Success {
                        ident: 42,
                        message: format!("{s2} M=Welcome").into_bytes(),
                    })],
                )),
                Some(b"bad-success") => Some((
                    Code::AccessAccept,
                    vec![Attribute::Microsoft(MsAttr::Chap2Success {
                        ident: 42,
                        message: b"S=XYZ".to_vec(),
                    })],
                )),
                Some(b"error") => Some((
                    Code::AccessReject,
                    vec![Attribute::Microsoft(MsAttr::ChapError {
                        ident: 42,
                        message: b"E=691 R=1 C=00112233445566778899AABBCCDDEEFF V=3 M=Password expired\x07".to_vec(),
                    })],
                )),
                Some(b"challenge") => Some((
                    Code::AccessChallenge,
                    vec![Attribute::State(b"s".to_vec())],
                )),
                _ => Some((
                    Code::AccessReject,
                    vec![Attribute::ReplyMessage(b"Go away".to_vec())],
                )),
            }
        }))
        .await;
        let r = rp(fake.addr, None);
        let (good, ..) = mschapv2_creds("good", "x");
        assert_eq!(
            r.verify(&good, None).await,
            Verdict::accept_mschapv2_text(&s_text).unwrap()
        );
        let (bad, ..) = mschapv2_creds("bad-success", "x");
        assert_eq!(r.verify(&bad, None).await, Verdict::reject(REJECT_TEXT));
        let (err, ..) = mschapv2_creds("error", "x");
        assert_eq!(
            r.verify(&err, None).await,
            Verdict::reject("Password expired")
        );
        let (ch, ..) = mschapv2_creds("challenge", "x");
        assert_eq!(r.verify(&ch, None).await, Verdict::reject(REJECT_TEXT));
        let pap = Credentials::Pap {
            user: b"other".to_vec(),
            password: b"pw".to_vec(),
        };
        assert_eq!(r.verify(&pap, None).await, Verdict::reject("Go away"));

        // What RADIUS cannot carry is refused without asking.
        let n = fake.seen().len();
        let long = Credentials::Pap {
            user: b"u".to_vec(),
            password: vec![b'p'; 129],
        };
        assert_eq!(r.verify(&long, None).await, Verdict::reject(REJECT_TEXT));
        let nobody = Credentials::Pap {
            user: Vec::new(),
            password: b"p".to_vec(),
        };
        assert_eq!(r.verify(&nobody, None).await, Verdict::reject(REJECT_TEXT));
        let no_challenge = Credentials::ChapMd5 {
            user: b"u".to_vec(),
            id: 1,
            challenge: Vec::new(),
            response: [0; 16],
        };
        assert_eq!(
            r.verify(&no_challenge, None).await,
            Verdict::reject(REJECT_TEXT)
        );
        assert_eq!(fake.seen().len(), n);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_means_service_unavailable_and_failed_accounting() {
    tokio::time::timeout(TEST_LIMIT, async {
        let r = RadiusPpp::new(
            tokio::runtime::Handle::current(),
            RadiusPppOptions {
                auth_servers: vec![server(closed_port())],
                acct_servers: vec![server(closed_port())],
                timeout: Duration::from_millis(100),
                retries: 1,
                ..RadiusPppOptions::default()
            },
        )
        .unwrap();
        let pap = Credentials::Pap {
            user: b"alice".to_vec(),
            password: b"alicepass".to_vec(),
        };
        let t0 = Instant::now();
        assert_eq!(
            r.verify(&pap, None).await,
            Verdict::reject(UNAVAILABLE_TEXT)
        );
        let s = AcctSession::new(b"alice", None, "tcp 127.0.0.1:4000");
        assert!(!r.start(&s).await);
        assert!(
            !r.stop(&s, &AcctCounters::default(), TerminateCause::LostCarrier)
                .await
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
        let st = r.stats();
        assert_eq!((st.no_answer, st.acct_ok, st.acct_failed), (1, 0, 2));
        assert_eq!(st.auth_client.timeouts, 1);

        // Without accounting servers, accounting is a no-op.
        let fake = Fake::start(Box::new(|_| None)).await;
        let r = rp(fake.addr, None);
        assert!(!r.accounting());
        assert!(r.start(&s).await);
        assert!(fake.seen().is_empty());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_requests_carry_the_session() {
    tokio::time::timeout(TEST_LIMIT, async {
        let fake = Fake::start(Box::new(|_| Some((Code::AccountingResponse, vec![])))).await;
        let auth = Fake::start(Box::new(|_| None)).await;
        let r = rp(auth.addr, Some(fake.addr));
        assert!(r.accounting());
        let mut s = AcctSession::new(
            b"alice",
            Some(Ipv4Addr::new(10, 9, 8, 7)),
            "tcp 192.0.2.1:999",
        );
        s.class = vec![b"cls".to_vec()];
        assert_eq!(s.nas_port_type, NasPortType::Virtual);
        assert!(r.start(&s).await);
        let c = AcctCounters {
            octets_in: 3 * (1 << 32) + 17,
            octets_out: 1000,
            packets_in: 1 << 40,
            packets_out: 5,
            session_time: Duration::from_millis(61_900),
        };
        assert!(r.interim(&s, &c).await);
        assert!(r.stop(&s, &c, TerminateCause::IdleTimeout).await);
        let seen = fake.seen();
        assert_eq!(seen.len(), 3);
        for (i, status) in [
            values::acct_status_type::START,
            values::acct_status_type::INTERIM_UPDATE,
            values::acct_status_type::STOP,
        ]
        .into_iter()
        .enumerate()
        {
            let a = &seen[i].attrs;
            assert_eq!(seen[i].code, Code::AccountingRequest);
            for want in [
                Attribute::AcctStatusType(status),
                Attribute::AcctSessionId(s.session_id.clone().into_bytes()),
                Attribute::UserName(b"alice".to_vec()),
                Attribute::FramedIpAddress(Ipv4Addr::new(10, 9, 8, 7)),
                Attribute::CallingStationId(b"192.0.2.1".to_vec()),
                Attribute::NasPortType(values::nas_port_type::VIRTUAL),
                Attribute::Class(b"cls".to_vec()),
            ] {
                assert!(a.contains(&want), "{want:?} missing from {a:?}");
            }
            let has_counters = a.contains(&Attribute::AcctInputOctets(17));
            assert_eq!(has_counters, i > 0, "{a:?}");
        }
        let a = &seen[2].attrs;
        for want in [
            Attribute::AcctInputGigawords(3),
            Attribute::AcctOutputOctets(1000),
            Attribute::AcctInputPackets(u32::MAX),
            Attribute::AcctOutputPackets(5),
            Attribute::AcctSessionTime(61),
            Attribute::AcctTerminateCause(values::terminate_cause::IDLE_TIMEOUT),
        ] {
            assert!(a.contains(&want), "{want:?} missing from {a:?}");
        }
        assert!(
            !a.iter()
                .any(|a| matches!(a, Attribute::AcctOutputGigawords(_)))
        );
        assert_eq!(r.stats().acct_ok, 3);
    })
    .await
    .unwrap();
}

// --------------------------------------------------- a real FreeRADIUS

fn freeradius_bin() -> PathBuf {
    std::env::var_os("FREERADIUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/freeradius"))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../radius/tests/freeradius.sh")
}

/// A FreeRADIUS started by `freeradius.sh`; stopped on drop.
struct FreeRadius {
    pid: String,
    dir: PathBuf,
    auth: SocketAddr,
    acct: SocketAddr,
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(&self.pid)
            .arg(&self.dir)
            .status();
    }
}

fn start_freeradius() -> Result<FreeRadius, String> {
    let mut last = String::new();
    // A port picked by binding port 0 can be taken again before the server
    // binds it: retry a few times.
    for _ in 0..3 {
        let (a, b) = (
            StdUdpSocket::bind("127.0.0.1:0").unwrap(),
            StdUdpSocket::bind("127.0.0.1:0").unwrap(),
        );
        let auth = a.local_addr().unwrap().port();
        let acct = b.local_addr().unwrap().port();
        drop((a, b));
        let out = Command::new(script())
            .arg("start")
            .arg(auth.to_string())
            .arg(acct.to_string())
            .env("RADIUS_SECRET", "testing123")
            .env("FREERADIUS_MAX_SECONDS", "120")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
        if out.status.success() {
            let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let (pid, dir) = line
                .split_once(' ')
                .ok_or_else(|| format!("unexpected output from freeradius.sh: {line:?}"))?;
            return Ok(FreeRadius {
                pid: pid.into(),
                dir: dir.into(),
                auth: SocketAddr::from(([127, 0, 0, 1], auth)),
                acct: SocketAddr::from(([127, 0, 0, 1], acct)),
            });
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    Err(format!("FreeRADIUS did not start: {last}"))
}

/// Fails the calling test unless FreeRADIUS is installed: a test that
/// cannot run fails, it never passes.
fn require_freeradius() {
    assert!(
        freeradius_bin().exists(),
        "{} not found, so this FreeRADIUS test cannot run: install the Debian package \
         `freeradius` (`bash scripts/test` installs it when run as root)",
        freeradius_bin().display()
    );
}

async fn freeradius() -> FreeRadius {
    tokio::task::spawn_blocking(start_freeradius)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeradius_pap_chap_and_mschapv2() {
    require_freeradius();
    let srv = freeradius().await;
    tokio::time::timeout(TEST_LIMIT, async {
        let r = rp(srv.auth, None);
        for protocol in [
            AuthProtocol::Pap,
            AuthProtocol::ChapMd5,
            AuthProtocol::MsChapV2,
        ] {
            // Accept: both sides succeed (for MS-CHAPv2 the peer checked
            // the authenticator response FreeRADIUS computed).
            let h = handshake(&r, protocol, "alice", "alicepass").await;
            assert_eq!(h.peer, Ok(()), "{protocol}: {h:?}");
            assert!(h.authenticator_ok, "{protocol}: {h:?}");
            assert_eq!(h.verdicts.len(), 1);
            if protocol == AuthProtocol::MsChapV2 {
                assert!(matches!(
                    h.verdicts[0],
                    Verdict::Accept {
                        authenticator_response: Some(_)
                    }
                ));
            }
            // Reject: the peer sees FreeRADIUS's Reply-Message.
            let h = handshake(&r, protocol, "alice", "wrongpass").await;
            assert!(!h.authenticator_ok, "{protocol}: {h:?}");
            assert_eq!(rejected_with(&h), Some("Login incorrect"), "{protocol}");
            match &h.peer {
                Err(FailureReason::Rejected { message, .. }) => {
                    assert!(
                        message.contains("Login incorrect"),
                        "{protocol}: {message:?}"
                    )
                }
                other => panic!("{protocol}: peer ended with {other:?}"),
            }
            let h = handshake(&r, protocol, "mallory", "alicepass").await;
            assert_eq!(rejected_with(&h), Some("Login incorrect"), "{protocol}");
        }

        // MS-CHAPv2 by hand: the S= text checks out against the password.
        let (creds, nt, pc, ac) = mschapv2_creds("alice", "alicepass");
        let res = r.authenticate(&creds, Some("192.0.2.7")).await;
        let Verdict::Accept {
            authenticator_response: Some(ar),
        } = res.verdict
        else {
            panic!("{res:?}");
        };
        assert!(check_authenticator_response(
            "alicepass",
            &nt,
            &pc,
            &ac,
            b"alice",
            &ar
        ));
        assert!(!check_authenticator_response(
            "other", &nt, &pc, &ac, b"alice", &ar
        ));
        // What alice's Accept brings.
        assert_eq!(res.info.framed_ip, Some(Ipv4Addr::new(10, 99, 0, 2)));
        assert_eq!(res.info.session_timeout, Some(3600));

        let st = r.stats();
        assert_eq!(
            (st.accepted, st.rejected, st.no_answer),
            (4, 6, 0),
            "{st:?}"
        );
        let c = st.auth_client;
        assert_eq!(
            c.dropped_bad_authenticator + c.dropped_bad_message_authenticator + c.timeouts,
            0,
            "{c:?}"
        );
    })
    .await
    .unwrap();
}

/// The records of a FreeRADIUS detail file: blank-line separated, a date
/// line, then `\tName = value` lines.
fn detail_records(text: &str) -> Vec<Vec<(String, String)>> {
    text.split("\n\n")
        .map(|rec| {
            rec.lines()
                .filter_map(|l| l.strip_prefix('\t'))
                .filter_map(|l| l.split_once(" = "))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect::<Vec<_>>()
        })
        .filter(|r| !r.is_empty())
        .collect()
}

fn field<'a>(rec: &'a [(String, String)], name: &str) -> Option<&'a str> {
    rec.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeradius_accounting_start_and_stop_in_the_detail_file() {
    require_freeradius();
    let srv = freeradius().await;
    tokio::time::timeout(TEST_LIMIT, async {
        let r = rp(srv.auth, Some(srv.acct));
        let res = r
            .authenticate(
                &Credentials::Pap {
                    user: b"alice".to_vec(),
                    password: b"alicepass".to_vec(),
                },
                Some("198.51.100.9"),
            )
            .await;
        assert_eq!(
            res.verdict,
            Verdict::Accept {
                authenticator_response: None
            }
        );
        let mut small = AcctSession::new(b"alice", res.info.framed_ip, "tcp 198.51.100.9:4242");
        small.class = res.info.class.clone();
        let big = AcctSession::new(b"alice", Some(Ipv4Addr::new(10, 99, 0, 3)), "/dev/ttyS1");
        assert_ne!(small.session_id, big.session_id);
        assert!(r.start(&small).await);
        assert!(r.start(&big).await);
        let small_c = AcctCounters {
            octets_in: 12_345,
            octets_out: 67_890,
            packets_in: 100,
            packets_out: 120,
            session_time: Duration::from_secs(42),
        };
        let big_c = AcctCounters {
            octets_in: 5 * (1u64 << 32) + 7,
            octets_out: (1u64 << 32) + 1,
            packets_in: 4_000_000,
            packets_out: 3_000_000,
            session_time: Duration::from_secs(7200),
        };
        assert!(r.interim(&big, &big_c).await);
        assert!(r.stop(&small, &small_c, TerminateCause::UserRequest).await);
        assert!(r.stop(&big, &big_c, TerminateCause::SessionTimeout).await);

        let path = srv.dir.join("acct/detail");
        let mut records = Vec::new();
        for _ in 0..50 {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            records = detail_records(&text);
            if records.len() >= 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(records.len(), 5, "{records:?}");
        let find = |id: &str, status: &str| {
            records
                .iter()
                .find(|r| {
                    field(r, "Acct-Session-Id") == Some(id)
                        && field(r, "Acct-Status-Type") == Some(status)
                })
                .unwrap_or_else(|| panic!("no {status} for {id} in {records:?}"))
                .clone()
        };
        let start = find(&small.session_id, "Start");
        assert_eq!(field(&start, "User-Name"), Some("alice"));
        assert_eq!(field(&start, "Framed-IP-Address"), Some("10.99.0.2"));
        assert_eq!(field(&start, "Calling-Station-Id"), Some("198.51.100.9"));
        assert_eq!(field(&start, "NAS-Port-Type"), Some("Virtual"));
        assert_eq!(field(&start, "NAS-Identifier"), Some("dialgate"));
        assert_eq!(field(&start, "Acct-Input-Octets"), None);
        let stop = find(&small.session_id, "Stop");
        assert_eq!(field(&stop, "Acct-Input-Octets"), Some("12345"));
        assert_eq!(field(&stop, "Acct-Output-Octets"), Some("67890"));
        assert_eq!(field(&stop, "Acct-Input-Packets"), Some("100"));
        assert_eq!(field(&stop, "Acct-Output-Packets"), Some("120"));
        assert_eq!(field(&stop, "Acct-Session-Time"), Some("42"));
        assert_eq!(field(&stop, "Acct-Terminate-Cause"), Some("User-Request"));
        assert_eq!(field(&stop, "Acct-Input-Gigawords"), None);

        let start = find(&big.session_id, "Start");
        assert_eq!(field(&start, "NAS-Port-Type"), Some("Async"));
        assert_eq!(field(&start, "Calling-Station-Id"), Some("/dev/ttyS1"));
        let interim = find(&big.session_id, "Interim-Update");
        assert_eq!(field(&interim, "Acct-Input-Gigawords"), Some("5"));
        assert_eq!(field(&interim, "Acct-Terminate-Cause"), None);
        let stop = find(&big.session_id, "Stop");
        assert_eq!(field(&stop, "Framed-IP-Address"), Some("10.99.0.3"));
        assert_eq!(field(&stop, "Acct-Input-Octets"), Some("7"));
        assert_eq!(field(&stop, "Acct-Input-Gigawords"), Some("5"));
        assert_eq!(field(&stop, "Acct-Output-Octets"), Some("1"));
        assert_eq!(field(&stop, "Acct-Output-Gigawords"), Some("1"));
        assert_eq!(field(&stop, "Acct-Session-Time"), Some("7200"));
        assert_eq!(
            field(&stop, "Acct-Terminate-Cause"),
            Some("Session-Timeout")
        );
        assert_eq!(r.stats().acct_ok, 5);
    })
    .await
    .unwrap();
}

/// Issue 12 item 13 (MS-CHAPv2 error codes): an Access-Reject whose
/// MS-CHAP-Error says why (RFC 2548 §2.1.5: E=648 password expired, 649 no
/// dial-in permission, 646 restricted logon hours, 647 account disabled)
/// reaches the caller's PPP client as that `E=` code, not 691; a code
/// outside RFC 2759's list, or none, stays 691.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_13_mschapv2_error_code_from_radius_reaches_the_peer() {
    tokio::time::timeout(TEST_LIMIT, async {
        let fake = Fake::start(Box::new(|s| {
            let name = s.attrs.iter().find_map(|a| match a {
                Attribute::UserName(n) => Some(n.clone()),
                _ => None,
            })?;
            let error: &[u8] = match name.as_slice() {
                b"u648" => b"E=648 R=0 V=3",
                b"u649" => b"E=649 R=0 V=3 M=No dial-in permission",
                b"u646" => b"E=646 R=0 V=3",
                b"u647" => b"E=647 R=0 V=3",
                b"u999" => b"E=999 R=0 V=3",
                _ => b"E=691 R=0 V=3",
            };
            Some((
                Code::AccessReject,
                vec![Attribute::Microsoft(MsAttr::ChapError {
                    ident: 1,
                    message: error.to_vec(),
                })],
            ))
        }))
        .await;
        let r = rp(fake.addr, None);
        for (user, want) in [
            ("u648", 648),
            ("u649", 649),
            ("u646", 646),
            ("u647", 647),
            ("u999", 691),
            ("plain", 691),
        ] {
            let h = handshake(&r, AuthProtocol::MsChapV2, user, "pw").await;
            assert!(!h.authenticator_ok, "{user}");
            match &h.peer {
                Err(FailureReason::Rejected { code, .. }) => {
                    assert_eq!(*code, Some(want), "{user}: {h:?}")
                }
                other => panic!("{user}: {other:?}"),
            }
            // One Access-Request and one verdict each.
            assert_eq!(h.verdicts.len(), 1, "{user}: {h:?}");
        }
    })
    .await
    .unwrap();
}

/// Issue 12 hole 5 for PPP through RADIUS: on the default options an
/// unsigned Access-Accept is no Accept (no valid answer: service
/// unavailable); `Never` believes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_5_unsigned_accept_is_no_ppp_accept_on_the_defaults() {
    tokio::time::timeout(TEST_LIMIT, async {
        let fake =
            Fake::start_signing(Box::new(|_| Some((Code::AccessAccept, vec![]))), false).await;
        let opts = RadiusPppOptions {
            auth_servers: vec![server(fake.addr)],
            timeout: Duration::from_millis(300),
            retries: 1,
            ..RadiusPppOptions::default()
        };
        let strict = RadiusPpp::new(tokio::runtime::Handle::current(), opts.clone()).unwrap();
        let pap = Credentials::Pap {
            user: b"alice".to_vec(),
            password: b"pw".to_vec(),
        };
        assert_eq!(
            strict.verify(&pap, None).await,
            Verdict::reject(UNAVAILABLE_TEXT)
        );
        assert_eq!(
            strict
                .stats()
                .auth_client
                .dropped_missing_message_authenticator,
            2
        );
        let lax = RadiusPpp::new(
            tokio::runtime::Handle::current(),
            RadiusPppOptions {
                require_message_authenticator: radius::RequireMessageAuthenticator::Never,
                ..opts
            },
        )
        .unwrap();
        assert!(matches!(
            lax.verify(&pap, None).await,
            Verdict::Accept { .. }
        ));
    })
    .await
    .unwrap();
}
