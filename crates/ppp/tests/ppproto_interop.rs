//! Interop with an independent PPP implementation: the `ppproto` crate
//! (embassy-rs, a PPP-over-serial client doing LCP, PAP and IPv4CP) as the
//! client, against our server role. Bytes cross through our framing layer
//! on our side and ppproto's own on its side.

mod common;

use std::time::{Duration, Instant};

use common::{CLIENT_IP, DNS_IP, Rng, SERVER_IP, ip_packet, server_config};
use ppp::auth::AuthProtocol;
use ppp::{Event, Link};
use ppproto::pppos::{PPPoS, PPPoSAction};
use ppproto::{Config, Phase};

struct Harness<'a> {
    client: PPPoS<'a>,
    server: Link,
    now: Instant,
    tx_buf: Vec<u8>,
    rx_buf: Vec<u8>,
    client_rx: Vec<Vec<u8>>,
    server_events: Vec<Event>,
    password: &'static str,
}

impl Harness<'_> {
    /// Runs ppproto's poll until it has nothing more to do, forwarding what
    /// it transmits to our server.
    fn poll_client(&mut self) {
        for _ in 0..32 {
            match self.client.poll(&mut self.tx_buf, &mut self.rx_buf) {
                PPPoSAction::None => break,
                PPPoSAction::Transmit(n) => {
                    let bytes = self.tx_buf[..n].to_vec();
                    if std::env::var("PPP_DEBUG").is_ok() {
                        eprintln!("C->S {}", hex::encode(&bytes));
                    }
                    self.server.handle_input(self.now, &bytes);
                }
                PPPoSAction::Received(range) => self.client_rx.push(self.rx_buf[range].to_vec()),
            }
        }
    }

    /// Moves our server's output into ppproto, and answers verification
    /// requests.
    fn pump_server(&mut self) -> bool {
        let mut moved = false;
        while let Some(e) = self.server.poll_event() {
            moved = true;
            if let Event::Verify(v) = &e {
                let verdict = v
                    .credentials
                    .verify_password(self.password, "Login incorrect");
                self.server.verified(self.now, v.id, verdict).unwrap();
            }
            self.server_events.push(e);
        }
        let mut budget = 200;
        while let Some(bytes) = self.server.poll_transmit() {
            moved = true;
            budget -= 1;
            assert!(
                budget > 0,
                "endless exchange: {:?} / {:?}",
                self.server,
                self.client.status()
            );
            if std::env::var("PPP_DEBUG").is_ok() {
                eprintln!("S->C {}", hex::encode(&bytes));
            }
            let mut data = &bytes[..];
            while !data.is_empty() {
                let n = self.client.consume(data, &mut self.rx_buf);
                data = &data[n..];
                self.poll_client();
            }
        }
        moved
    }

    fn run(&mut self, max_iter: usize, done: impl Fn(&Self) -> bool) -> bool {
        for _ in 0..max_iter {
            if done(self) {
                return true;
            }
            self.poll_client();
            if !self.pump_server() {
                // Nothing in flight: let our timers run.
                match self.server.poll_timeout() {
                    Some(t) => {
                        self.now = self.now.max(t);
                        self.server.handle_timeout(self.now);
                    }
                    None => return done(self),
                }
            }
        }
        done(self)
    }
}

fn harness(password: &'static str, client_password: &'static [u8]) -> Harness<'static> {
    let mut client = PPPoS::new(Config {
        username: b"alice",
        password: client_password,
    });
    client.open().unwrap();
    let mut cfg = server_config(vec![AuthProtocol::Pap]);
    cfg.ipcp.dns = [Some(DNS_IP), None];
    cfg.echo_interval = Some(Duration::from_secs(5));
    let now = Instant::now();
    let server = Link::new(cfg, now, Rng::source(99)).unwrap();
    Harness {
        client,
        server,
        now,
        tx_buf: vec![0; 4096],
        rx_buf: vec![0; 4096],
        client_rx: Vec::new(),
        server_events: Vec::new(),
        password,
    }
}

#[test]
fn ppproto_client_pap_ipcp_and_ip_both_ways() {
    let mut h = harness("s3cret", b"s3cret");
    let up = h.run(500, |h| {
        h.server.is_up() && h.client.status().phase == Phase::Open
    });
    assert!(
        up,
        "server {:?} client {:?} events {:?}",
        h.server,
        h.client.status(),
        h.server_events
    );
    h.pump_server();
    let st = h.client.status();
    let v4 = st.ipv4.expect("ppproto IPv4 status");
    assert_eq!(v4.address.map(|a| a.octets()), Some(CLIENT_IP.octets()));
    assert_eq!(
        v4.peer_address.map(|a| a.octets()),
        Some(SERVER_IP.octets())
    );
    assert_eq!(v4.dns_servers[0].map(|a| a.octets()), Some(DNS_IP.octets()));
    assert!(h.server_events.iter().any(
        |e| matches!(e, Event::Authenticated { user, protocol: AuthProtocol::Pap } if user == b"alice")
    ));
    assert!(
        h.server_events
            .iter()
            .any(|e| matches!(e, Event::Up { peer, .. } if *peer == CLIENT_IP))
    );

    // Client to server.
    let pkt = ip_packet(CLIENT_IP, SERVER_IP, b"hello from ppproto \x7e\x7d\x11");
    let n = h.client.send(&pkt, &mut h.tx_buf).unwrap();
    let bytes = h.tx_buf[..n].to_vec();
    h.server.handle_input(h.now, &bytes);
    h.pump_server();
    assert!(h.server_events.contains(&Event::IpPacket(pkt)));

    // Server to client.
    let pkt = ip_packet(SERVER_IP, CLIENT_IP, b"hello from dialgate \x7e\x7d\x03");
    h.server.send_ip(&pkt).unwrap();
    h.pump_server();
    assert_eq!(h.client_rx, vec![pkt]);

    // Keepalive: ppproto answers our Echo-Requests for a minute.
    let end = h.now + Duration::from_secs(60);
    h.run(1000, |h| h.now >= end);
    assert!(h.server.is_up(), "{:?}", h.server.down_cause());
}

#[test]
fn ppproto_client_wrong_password_is_refused() {
    let mut h = harness("s3cret", b"wrong-pw");
    let down = h.run(2000, |h| h.server.is_dead());
    assert!(down, "{:?}", h.server);
    assert!(matches!(
        h.server.down_cause(),
        Some(ppp::DownCause::AuthFailed(_))
    ));
    assert!(
        !h.server_events
            .iter()
            .any(|e| matches!(e, Event::Up { .. }))
    );
}
