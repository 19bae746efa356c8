//! What the bench prints: one table per scenario as it finishes, the
//! targets at the end, and a single JSON line with every figure.

use serde_json::{Map, Value};

/// A table of text cells; the first column is left-aligned, the others
/// right-aligned.
pub struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Table {
            title: title.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len(), "row width");
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let width = |i: usize| {
            self.rows
                .iter()
                .chain(std::iter::once(&self.header))
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        let line = |cells: &[String]| {
            let mut out = String::from("|");
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i == 0 {
                    out += &format!(" {cell}{} |", " ".repeat(pad));
                } else {
                    out += &format!(" {}{cell} |", " ".repeat(pad));
                }
            }
            out
        };
        println!("\n{}\n", self.title);
        println!("{}", line(&self.header));
        // A Markdown rule, so a table pastes into a README as it is.
        let mut rule = String::from("|");
        for (i, w) in widths.iter().enumerate() {
            let end = if i == 0 { '-' } else { ':' };
            rule += &format!("{}{end}|", "-".repeat(w + 1));
        }
        println!("{rule}");
        for r in &self.rows {
            println!("{}", line(r));
        }
    }
}

/// A target from the issue, checked against one run's figures.
pub struct Target {
    pub name: &'static str,
    pub measured: f64,
    pub limit: &'static str,
    pub met: bool,
}

/// Everything a run found.
#[derive(Default)]
pub struct Report {
    figures: Map<String, Value>,
    targets: Vec<Target>,
}

impl Report {
    /// Records a scenario's figures under its name in the JSON line.
    pub fn figures(&mut self, scenario: &str, figures: Value) {
        self.figures.insert(scenario.to_owned(), figures);
    }

    pub fn target(&mut self, target: Target) {
        self.targets.push(target);
    }

    /// The targets table and the JSON line.
    pub fn finish(mut self, header: Value) {
        if !self.targets.is_empty() {
            let mut t = Table::new("Targets", &["target", "measured", "limit", "met"]);
            for target in &self.targets {
                t.row(vec![
                    target.name.to_owned(),
                    format!("{:.3}", target.measured),
                    target.limit.to_owned(),
                    if target.met { "yes" } else { "NO" }.to_owned(),
                ]);
            }
            t.print();
        }
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "measured": round(t.measured, 4),
                    "limit": t.limit,
                    "met": t.met,
                })
            })
            .collect();
        let mut line = Map::new();
        if let Value::Object(h) = header {
            line.extend(h);
        }
        line.append(&mut self.figures);
        line.insert("targets".into(), Value::Array(targets));
        println!();
        println!("{}", Value::Object(line));
    }
}

/// `x` rounded to `digits` decimals, for the JSON line.
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// A duration in microseconds, written with a sensible unit.
pub fn time_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e4 {
        format!("{:.1} ms", us / 1e3)
    } else if us >= 1e3 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.0} µs")
    }
}

/// A rate, with thousands grouped.
pub fn per_sec(x: f64) -> String {
    let n = x.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as MiB.
pub fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

/// A ratio.
pub fn ratio(x: f64) -> String {
    format!("{x:.2}x")
}
