//! dialgate's configuration loader (`dialgate::config::parse`, what
//! `dialgate serve --config` runs) on arbitrary text: it returns a checked
//! `Config` or an error located in the file, and never panics. Asserted on
//! an error: it names the file, says something, and its line and column
//! (when given) lie inside the text. Asserted on a configuration it
//! accepts: at least one group, unique group names, caller caps within
//! 1..=100000, and for every `ppp` hand-off a `[network]`, a pool of host
//! addresses inside the network (first <= last; neither the server's own
//! address, nor the network or broadcast address), pools that do not
//! overlap, non-empty RADIUS secrets.
//!
//! The text is parsed with no source path, so a `secret_file` is looked up
//! relative to the working directory (the fuzzer's); nothing is written.
#![no_main]

use std::net::Ipv4Addr;
use std::path::Path;

use dialgate::config::{Handoff, ModuleConfig, parse};
use libfuzzer_sys::fuzz_target;

fn secrets_ok(m: &ModuleConfig) {
    match m {
        ModuleConfig::Radius { servers, .. } => {
            assert!(!servers.is_empty());
            assert!(
                servers.iter().all(|(_, s)| !s.expose().is_empty()),
                "empty RADIUS secret"
            );
        }
        ModuleConfig::Chain { steps } => steps.iter().for_each(secrets_ok),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let c = match parse(text, "fuzz.toml", Path::new("/nonexistent/dialgate"), None) {
        Ok(c) => c,
        Err(e) => {
            assert_eq!(e.file, "fuzz.toml");
            assert!(!e.message.trim().is_empty(), "an empty error message");
            if let Some((line, col)) = e.at {
                assert!(line >= 1 && col >= 1, "{e}");
                assert!(
                    line <= text.split('\n').count(),
                    "line {line} past the end: {e}"
                );
            }
            assert!(e.to_string().contains("fuzz.toml"));
            return;
        }
    };
    assert!(!c.groups.is_empty());
    let mut pools: Vec<(u32, u32)> = Vec::new();
    for (i, g) in c.groups.iter().enumerate() {
        assert!(
            c.groups[..i].iter().all(|o| o.name != g.name),
            "two groups named {:?}",
            g.name
        );
        assert!((1..=100_000).contains(&g.max_callers), "{}", g.max_callers);
        if let Some(m) = &g.module {
            secrets_ok(m);
        }
        if let Handoff::Ppp(p) = &g.handoff {
            let n = c
                .network
                .as_ref()
                .expect("a ppp hand-off without [network]");
            assert!((1..=30).contains(&n.prefix_len), "prefix {}", n.prefix_len);
            let mask = u32::MAX << (32 - u32::from(n.prefix_len));
            let base = u32::from(n.address) & mask;
            let (first, last) = (u32::from(p.pool.0), u32::from(p.pool.1));
            assert!(first <= last, "pool {:?}", p.pool);
            assert_eq!(first & mask, base, "pool outside the network");
            assert_eq!(last & mask, base, "pool outside the network");
            for a in [u32::from(n.address), base, base | !mask] {
                assert!(
                    !(first..=last).contains(&a),
                    "pool {:?} holds {}",
                    p.pool,
                    Ipv4Addr::from(a)
                );
            }
            assert!(
                pools.iter().all(|&(f, l)| last < f || l < first),
                "pools overlap"
            );
            pools.push((first, last));
            if let Some(r) = &p.radius {
                assert!(!r.servers.is_empty());
                assert!(
                    r.servers
                        .iter()
                        .chain(&r.accounting)
                        .all(|(_, s)| !s.expose().is_empty())
                );
            }
        }
    }
});
