//! Properties of records built from arbitrary (caller-controlled) text.

use eventlog::{Kind, MAX_TEXT_LEN, Outcome, PppInfo, Record, parse_time_arg};
use proptest::prelude::*;
use time::OffsetDateTime;

fn any_time() -> impl Strategy<Value = OffsetDateTime> {
    // 1970..2100, with nanoseconds (normalisation drops below microseconds).
    (0i64..4_102_444_800, 0u32..1_000_000_000).prop_map(|(s, ns)| {
        OffsetDateTime::from_unix_timestamp(s).unwrap() + time::Duration::nanoseconds(ns.into())
    })
}

fn any_record() -> impl Strategy<Value = Record> {
    let text = || any::<String>();
    let opt = || proptest::option::of(any::<String>());
    (
        (
            any::<bool>(),
            any_time(),
            any_time(),
            text(),
            text(),
            text(),
        ),
        (opt(), opt(), opt(), opt(), opt()),
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
        ),
        proptest::option::of((opt(), opt(), any::<u64>(), any::<u64>(), opt())),
        prop_oneof![
            Just(Outcome::Success),
            Just(Outcome::CallerHungUp),
            "[a-z][a-z0-9-]{0,20}".prop_map(|s| s.parse::<Outcome>().unwrap()),
        ],
    )
        .prop_map(
            |((ppp_kind, t1, t2, port, device, module), opts, codes, ppp, outcome)| {
                let kind = if ppp_kind {
                    Kind::PppSession
                } else {
                    Kind::Dialog
                };
                let mut r = Record::new(kind, t1, t2, port, device, module, outcome);
                (r.remote, r.user, r.domain, r.detail, r.handoff) = opts;
                (r.msg_id, r.error_code) = codes;
                r.ppp = ppp.map(|(user, method, bytes_in, packets_out, cause)| PppInfo {
                    user,
                    method,
                    address: Some("10.0.0.2".into()),
                    bytes_in,
                    bytes_out: 1,
                    packets_in: 2,
                    packets_out,
                    cause,
                });
                r
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever a caller typed, the human line is one line with no control
    /// characters (no forged lines, no terminal escapes).
    #[test]
    fn human_line_is_one_clean_line(r in any_record()) {
        let line = r.human_line();
        prop_assert!(!line.chars().any(char::is_control), "{line:?}");
        prop_assert!(line.contains(r.outcome.as_str()));
    }

    #[test]
    fn json_round_trips(r in any_record()) {
        let line = r.to_json_line();
        prop_assert!(!line.contains('\n'));
        let back = Record::from_json_line(&line).unwrap();
        prop_assert_eq!(back, r);
    }

    #[test]
    fn normalize_bounds_every_text_field(mut r in any_record(), big in "\\PC{0,50}") {
        let huge = big.repeat(MAX_TEXT_LEN / big.len().max(1) + 2);
        r.detail = Some(huge.clone());
        r.user = Some(huge);
        r.normalize();
        prop_assert!(r.detail.as_ref().unwrap().len() <= MAX_TEXT_LEN);
        prop_assert!(r.user.as_ref().unwrap().len() <= MAX_TEXT_LEN);
    }

    /// Arbitrary CLI input never panics, and what parses is in range.
    #[test]
    fn parse_time_arg_never_panics(s in "\\PC{0,40}|[0-9smhdw-]{0,12}|20[0-9]{2}-[0-9]{2}-[0-9]{2}[T ][0-9:.]{0,15}[Zz+-]?[0-9:]{0,5}") {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        if let Ok(t) = parse_time_arg(&s, now) {
            prop_assert_eq!(t.offset(), time::UtcOffset::UTC);
            prop_assert_eq!(t.nanosecond() % 1000, 0);
        }
    }
}
