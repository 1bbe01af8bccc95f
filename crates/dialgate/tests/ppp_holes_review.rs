//! Review of issue 12 holes 1-3, end to end: `dialgate serve` in a
//! network namespace, a caller over a real TCP port that passes the
//! `users` dialog and then runs our PPP stack in the client role. Needs
//! root (tun, netns).

mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ppp::link::{Event, Link, LinkConfig};
use support::*;

const T: Duration = Duration::from_secs(15);

fn setup(extra: &str) -> Setup {
    let cfg = format!(
        r#"[network]
tun = "dgp0"
address = "10.250.1.1/24"
dns = ["10.250.1.1"]

[[group]]
name = "ppp0"
kind = "tcp"
listen = "127.0.0.1:0"

[group.module]
kind = "users"
tries = 1

[group.handoff]
kind = "ppp"
auth = ["pap"]
pool = "10.250.1.10-10.250.1.11"
{extra}
"#
    );
    let s = Setup::new(&cfg);
    s.add_user("alice", "s3cret");
    s.add_user("bob", "b0bpw");
    s
}

fn dial(addr: SocketAddr, user: &str, password: &str) -> TcpStream {
    let mut c = Caller::connect(addr);
    assert!(c.expect("Username: ", T));
    c.send(format!("{user}\r").as_bytes());
    assert!(c.expect("Password: ", T));
    c.send(format!("{password}\r").as_bytes());
    c.s.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    c.s
}

fn pap_client(user: &[u8], password: &str) -> Link {
    let mut cfg = LinkConfig::client(Some((user, password)));
    cfg.lcp.accept_auth = vec![ppp::auth::AuthProtocol::Pap];
    Link::new(cfg, Instant::now(), Box::new(|b: &mut [u8]| rand::fill(b))).unwrap()
}

/// alice is up; the caller renegotiates LCP and logs in as bob with bob's
/// right password. The session (its address, its accounting, its record)
/// is alice's: bob is refused and the session ends as an authentication
/// failure, its record still alice's.
#[test]
fn hole_1_a_renegotiation_cannot_change_the_user_through_a_port() {
    if !in_netns("hole_1_a_renegotiation_cannot_change_the_user_through_a_port") {
        return;
    }
    let s = setup("same_user = false\n");
    let srv = s.start();
    let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
    let mut a = pap_client(b"alice", "s3cret");
    let evs = pump(&mut a, &mut line, T, |e, _| matches!(e, Event::Up { .. }));
    assert!(
        evs.iter().any(|e| matches!(e, Event::Up { .. })),
        "alice is up: {evs:#?}"
    );
    drop(a);
    let mut b = pap_client(b"bob", "b0bpw");
    let evs = pump(&mut b, &mut line, T, |e, _| {
        matches!(
            e,
            Event::Authenticated { .. } | Event::AuthFailed(_) | Event::Up { .. }
        )
    });
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Event::Authenticated { .. } | Event::Up { .. })),
        "bob took over alice's session: {evs:#?}"
    );
    assert!(
        evs.iter().any(|e| matches!(e, Event::AuthFailed(_))),
        "{evs:#?}"
    );
    pump(&mut b, &mut line, Duration::from_secs(3), |_, _| false);
    drop(line);
    let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["outcome"], "ppp-auth-failed", "{}", r[0]);
    assert_eq!(r[0]["ppp"]["user"], "alice", "{}", r[0]);
    assert_eq!(
        r[0]["ppp"]["cause"], "authentication failed: UserChanged",
        "{}",
        r[0]
    );
    drop(srv);
}
