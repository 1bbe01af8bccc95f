//! Property tests of the dialog line reader (spec section 7).

use modules::line::{LineEvent, LineReader};
use proptest::prelude::*;

const TERMS: [&[u8]; 3] = [b"\r", b"\n", b"\r\n"];

/// A line: printable text (any Unicode without control characters), short
/// enough for the reader.
fn content() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<char>().prop_filter("no control chars", |c| !c.is_control()),
        0..40,
    )
    .prop_map(|cs| cs.into_iter().collect::<String>().into_bytes())
}

/// Lines with their terminators. An empty line ended by LF right after a
/// line ended by CR is indistinguishable from CR LF, so that pair is not
/// generated.
fn script() -> impl Strategy<Value = Vec<(Vec<u8>, usize)>> {
    prop::collection::vec((content(), 0..3usize), 1..8).prop_map(|mut lines| {
        for i in 1..lines.len() {
            if lines[i - 1].1 == 0 && lines[i].0.is_empty() && lines[i].1 == 1 {
                lines[i].1 = 0;
            }
        }
        lines
    })
}

/// Feeds `chunks` in order, re-feeding the unconsumed rest after each
/// event, switching echo after each line; returns the events and echo.
fn run(r: &mut LineReader, chunks: &[&[u8]]) -> (Vec<LineEvent>, Vec<u8>) {
    let mut events = Vec::new();
    let mut echo = Vec::new();
    for chunk in chunks {
        let mut rest = *chunk;
        while !rest.is_empty() {
            let fed = r.feed(rest, &mut echo);
            assert!(fed.consumed >= 1 && fed.consumed <= rest.len());
            assert!(fed.event.is_some() || fed.consumed == rest.len());
            rest = &rest[fed.consumed..];
            if let Some(e) = fed.event {
                events.push(e);
                let on = r.echo();
                r.set_echo(!on);
            }
        }
    }
    (events, echo)
}

fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn yields_exactly_the_lines_for_any_split(
        lines in script(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut bytes = Vec::new();
        for (c, t) in &lines {
            bytes.extend_from_slice(c);
            bytes.extend_from_slice(TERMS[*t]);
        }
        let expected: Vec<Vec<u8>> = lines.iter().map(|(c, _)| c.clone()).collect();

        let mut r = LineReader::new(256);
        let (events, _) = run(&mut r, &split(&bytes, &cuts));
        let got: Vec<Vec<u8>> = events
            .into_iter()
            .map(|e| match e {
                LineEvent::Line(l) => l.to_vec(),
                LineEvent::TooLong(_) => panic!("too long"),
            })
            .collect();
        prop_assert_eq!(&got, &expected);

        // One byte at a time, too.
        let mut r = LineReader::new(256);
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        let (events, _) = run(&mut r, &singles);
        prop_assert_eq!(events.len(), expected.len());
        prop_assert_eq!(r.pending_len(), 0);
    }

    #[test]
    fn echo_on_shows_the_text_and_a_newline(c in content(), t in 0..3usize) {
        let mut bytes = c.clone();
        bytes.extend_from_slice(TERMS[t]);
        let mut r = LineReader::new(256);
        let mut echo = Vec::new();
        let fed = r.feed(&bytes, &mut echo);
        let mut expected = c.clone();
        expected.extend_from_slice(b"\r\n");
        prop_assert_eq!(echo, expected);
        prop_assert_eq!(fed.event, Some(LineEvent::Line(zeroize::Zeroizing::new(c))));
    }

    #[test]
    fn never_panics_and_stays_bounded(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..12),
        max in 1usize..300,
    ) {
        let mut r = LineReader::new(max);
        let cap = r.capacity();
        let mut echo = Vec::new();
        for chunk in &chunks {
            let mut rest = chunk.as_slice();
            while !rest.is_empty() {
                echo.clear();
                let fed = r.feed(rest, &mut echo);
                prop_assert!(fed.consumed >= 1 && fed.consumed <= rest.len());
                prop_assert!(echo.len() <= 4 * fed.consumed + 3 * max);
                match &fed.event {
                    Some(LineEvent::Line(l)) => prop_assert!(l.len() <= max),
                    Some(LineEvent::TooLong(l)) => prop_assert_eq!(l.len(), max),
                    None => {}
                }
                rest = &rest[fed.consumed..];
                prop_assert!(r.pending_len() <= max);
                prop_assert_eq!(r.capacity(), cap);
            }
        }
    }

    #[test]
    fn backspace_undoes_the_last_char(c in content(), extra in any::<char>().prop_filter("", |c| !c.is_control())) {
        let mut bytes = c.clone();
        let mut buf = [0u8; 4];
        bytes.extend_from_slice(extra.encode_utf8(&mut buf).as_bytes());
        bytes.extend_from_slice(b"\x7f\r");
        let mut r = LineReader::new(256);
        let mut echo = Vec::new();
        let fed = r.feed(&bytes, &mut echo);
        prop_assert_eq!(fed.event, Some(LineEvent::Line(zeroize::Zeroizing::new(c))));
    }
}
