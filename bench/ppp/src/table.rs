//! The results table: one row per figure, one column per run, and the median.

/// Figures by name, in the order first added.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Row>,
}

#[derive(Debug)]
struct Row {
    name: String,
    unit: &'static str,
    values: Vec<f64>,
}

/// The median of `v` (the mean of the middle two for an even count);
/// `None` when empty or when a value is not a number.
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() || v.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[mid]
    } else {
        (s[mid - 1] + s[mid]) / 2.0
    })
}

fn fmt(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

impl Table {
    /// Adds a run's value to the row `name` (made on first use).
    pub fn add(&mut self, name: &str, unit: &'static str, value: f64) {
        match self.rows.iter_mut().find(|r| r.name == name) {
            Some(r) => r.values.push(value),
            None => self.rows.push(Row {
                name: name.to_string(),
                unit,
                values: vec![value],
            }),
        }
    }

    /// The median of row `name`.
    pub fn median(&self, name: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| median(&r.values))
    }

    fn runs(&self) -> usize {
        self.rows.iter().map(|r| r.values.len()).max().unwrap_or(0)
    }

    /// Plain text, aligned.
    pub fn text(&self) -> String {
        let runs = self.runs();
        let width = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut out = format!("{:<width$}  {:<10}", "figure", "unit");
        for i in 1..=runs {
            out.push_str(&format!(" {:>9}", format!("run {i}")));
        }
        out.push_str(&format!(" {:>9}\n", "median"));
        for r in &self.rows {
            out.push_str(&format!("{:<width$}  {:<10}", r.name, r.unit));
            for i in 0..runs {
                let v = r.values.get(i).map_or("-".to_string(), |v| fmt(*v));
                out.push_str(&format!(" {v:>9}"));
            }
            let m = median(&r.values).map_or("-".to_string(), fmt);
            out.push_str(&format!(" {m:>9}\n"));
        }
        out
    }

    /// A Markdown table.
    pub fn markdown(&self) -> String {
        let runs = self.runs();
        let mut out = String::from("| figure | unit |");
        for i in 1..=runs {
            out.push_str(&format!(" run {i} |"));
        }
        out.push_str(" median |\n|---|---|");
        for _ in 0..=runs {
            out.push_str("---:|");
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&format!("| {} | {} |", r.name, r.unit));
            for i in 0..runs {
                let v = r.values.get(i).map_or("-".to_string(), |v| fmt(*v));
                out.push_str(&format!(" {v} |"));
            }
            let m = median(&r.values).map_or("-".to_string(), fmt);
            out.push_str(&format!(" **{m}** |\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn rows_keep_order_and_runs() {
        let mut t = Table::default();
        t.add("b", "x", 1.0);
        t.add("a", "y", 2.0);
        t.add("b", "x", 3.0);
        assert_eq!(t.median("b"), Some(2.0));
        assert_eq!(t.median("a"), Some(2.0));
        assert_eq!(t.median("c"), None);
        let text = t.text();
        let b = text.find("\nb ").expect("row b");
        let a = text.find("\na ").expect("row a");
        assert!(b < a, "{text}");
        assert!(
            t.markdown()
                .contains("| b | x | 1.000 | 3.000 | **2.000** |")
        );
    }
}
