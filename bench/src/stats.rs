//! Latency samples and the small statistics the report needs.

use std::time::Duration;

/// Latency samples in microseconds, merged from many callers.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    us: Vec<u32>,
    sorted: bool,
}

impl Samples {
    /// An empty set.
    pub fn new() -> Samples {
        Samples::default()
    }

    /// Adds one sample (saturating at about 71 minutes).
    pub fn push(&mut self, d: Duration) {
        self.us
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        self.sorted = false;
    }

    /// Moves every sample of `other` into `self`.
    pub fn merge(&mut self, other: &mut Samples) {
        self.us.append(&mut other.us);
        self.sorted = false;
    }

    /// The `q` quantile (0.0..=1.0) by the nearest-rank method, in
    /// microseconds; `None` without samples.
    pub fn quantile(&mut self, q: f64) -> Option<u32> {
        if self.us.is_empty() {
            return None;
        }
        if !self.sorted {
            self.us.sort_unstable();
            self.sorted = true;
        }
        let n = self.us.len();
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
        let idx = rank.clamp(1, n) - 1;
        self.us.get(idx).copied()
    }
}

/// The median of some values (mean of the two middle ones for an even
/// count); `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mid = n / 2;
    if n % 2 == 1 {
        v.get(mid).copied()
    } else {
        Some((v.get(mid - 1)? + v.get(mid)?) / 2.0)
    }
}

/// Microseconds as a short human figure: `850 µs`, `1.25 ms`, `3.2 s`.
pub fn fmt_us(us: Option<f64>) -> String {
    match us {
        None => "-".into(),
        Some(u) if u < 1_000.0 => format!("{u:.0} µs"),
        Some(u) if u < 1_000_000.0 => format!("{:.2} ms", u / 1_000.0),
        Some(u) => format!("{:.2} s", u / 1_000_000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut s = Samples::new();
        assert_eq!(s.quantile(0.5), None);
        for us in (1..=100).rev() {
            s.push(Duration::from_micros(us));
        }
        assert_eq!(s.quantile(0.5), Some(50));
        assert_eq!(s.quantile(0.99), Some(99));
        assert_eq!(s.quantile(1.0), Some(100));
        assert_eq!(s.quantile(0.0), Some(1));
        let mut one = Samples::new();
        one.push(Duration::from_micros(7));
        assert_eq!(one.quantile(0.99), Some(7));
    }

    #[test]
    fn merge_and_saturate() {
        let mut a = Samples::new();
        let mut b = Samples::new();
        a.push(Duration::from_micros(3));
        b.push(Duration::from_secs(10_000));
        a.merge(&mut b);
        assert_eq!(b.quantile(0.5), None);
        assert_eq!(a.quantile(1.0), Some(u32::MAX));
        assert_eq!(a.quantile(0.5), Some(3));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_us(None), "-");
        assert_eq!(fmt_us(Some(850.0)), "850 µs");
        assert_eq!(fmt_us(Some(1_250.0)), "1.25 ms");
        assert_eq!(fmt_us(Some(3_200_000.0)), "3.20 s");
    }
}
