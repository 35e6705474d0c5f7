//! Results: samples, rows, the table and the JSON file.

use std::fmt::Write as _;

/// Values of one measured step (wall times in seconds, or peak RSS in MiB for
/// a [`Target::Mib`] row): a warm-up run, then the counted runs.
#[derive(Debug, Clone)]
pub struct Sample {
    pub warmup: f64,
    pub runs: Vec<f64>,
}

impl Sample {
    pub fn empty() -> Sample {
        Sample { warmup: 0.0, runs: Vec::new() }
    }

    /// Run `i` of a measurement: run 0 is the warm-up, the rest count.
    pub fn record(&mut self, i: usize, value: f64) {
        if i == 0 {
            self.warmup = value;
        } else {
            self.runs.push(value);
        }
    }

    pub fn median(&self) -> f64 {
        let mut v = self.runs.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
}

/// What a row is held to.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// ws median / baseline median at most this.
    Ratio(f64),
    /// ws median − baseline median at most this many milliseconds.
    AddedMs(f64),
    /// ws median (a peak RSS in MiB, no baseline) at most this.
    Mib(f64),
    /// A ratio reported, held to nothing (the figure is what was asked for).
    Report,
}

impl Target {
    fn max(self) -> f64 {
        match self {
            Target::Ratio(m) | Target::AddedMs(m) | Target::Mib(m) => m,
            Target::Report => f64::INFINITY,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Target::Ratio(_) => "ratio",
            Target::AddedMs(_) => "added_ms",
            Target::Mib(_) => "mib",
            Target::Report => "report",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub fs: String,
    pub measurement: String,
    pub ws: Sample,
    pub baseline_name: String,
    /// None for a [`Target::Mib`] row.
    pub baseline: Option<Sample>,
    pub target: Target,
}

impl Row {
    fn baseline_median(&self) -> f64 {
        self.baseline.as_ref().map_or(f64::NAN, Sample::median)
    }

    pub fn ratio(&self) -> f64 {
        self.ws.median() / self.baseline_median()
    }

    /// What the target bounds: the ratio, the added milliseconds or the MiB.
    pub fn value(&self) -> f64 {
        match self.target {
            Target::Ratio(_) | Target::Report => self.ratio(),
            Target::AddedMs(_) => (self.ws.median() - self.baseline_median()) * 1000.0,
            Target::Mib(_) => self.ws.median(),
        }
    }

    pub fn pass(&self) -> bool {
        self.value() <= self.target.max()
    }

    /// A median as the table shows it: seconds, milliseconds or MiB.
    fn show(&self, x: f64) -> String {
        match self.target {
            _ if x.is_nan() => "-".into(),
            Target::Ratio(_) | Target::Report => format!("{x:.3} s"),
            Target::AddedMs(_) => format!("{:.2} ms", x * 1000.0),
            Target::Mib(_) => format!("{x:.1} MiB"),
        }
    }
}

pub fn table(rows: &[Row]) -> String {
    let header = ["fs", "measurement", "ws", "baseline", "baseline time", "ws vs baseline", "target", "result"];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.fs.clone(),
                r.measurement.clone(),
                r.show(r.ws.median()),
                r.baseline_name.clone(),
                r.show(r.baseline_median()),
                match r.target {
                    Target::Ratio(_) | Target::Report => format!("{:.3}×", r.ratio()),
                    Target::AddedMs(_) => format!("{:+.2} ms", r.value()),
                    Target::Mib(_) => "-".into(),
                },
                match r.target {
                    Target::Ratio(m) => format!("≤ {m:?}×"),
                    Target::AddedMs(m) => format!("≤ {m} ms added"),
                    Target::Mib(m) => format!("≤ {m} MiB"),
                    Target::Report => "-".into(),
                },
                match r.target {
                    Target::Report => "-",
                    _ if r.pass() => "PASS",
                    _ => "MISS",
                }
                .to_string(),
            ]
        })
        .collect();
    let mut width = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Numbers right-aligned, text left-aligned.
    let right = [false, false, true, false, true, true, false, false];
    let mut out = String::new();
    let mut line = |cols: &[String]| {
        let mut l = String::new();
        for (i, c) in cols.iter().enumerate() {
            let pad = width[i].saturating_sub(c.chars().count());
            if i > 0 {
                l.push_str("  ");
            }
            if right[i] {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    line(&width.map(|w| "-".repeat(w)));
    for row in &cells {
        line(row);
    }
    out
}

pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(x: f64) -> String {
    if x.is_finite() { format!("{x:.6}") } else { "null".into() }
}

fn json_sample(s: &Sample) -> String {
    let runs: Vec<String> = s.runs.iter().map(|&x| json_num(x)).collect();
    format!(
        "{{\"median\": {}, \"warmup\": {}, \"runs\": [{}]}}",
        json_num(s.median()),
        json_num(s.warmup),
        runs.join(", ")
    )
}

/// Everything about the run that is not a row.
#[derive(Debug)]
pub struct Meta {
    pub quick: bool,
    pub runs: usize,
    pub small_files: usize,
    pub dirs: usize,
    pub big_files: usize,
    pub big_size: u64,
    pub ws_bin: String,
    pub kernel: String,
    /// Counted runs of the sandbox group, if it ran.
    pub sandbox_runs: Option<usize>,
}

pub fn json(meta: &Meta, rows: &[Row], errors: &[String], notes: &[String]) -> String {
    let mut out = String::from("{\n");
    let _ = writeln!(out, "  \"quick\": {},", meta.quick);
    let _ = writeln!(out, "  \"runs\": {},", meta.runs);
    let _ = writeln!(
        out,
        "  \"tree\": {{\"small_files\": {}, \"dirs\": {}, \"big_files\": {}, \"big_file_bytes\": {}}},",
        meta.small_files, meta.dirs, meta.big_files, meta.big_size
    );
    let _ = writeln!(out, "  \"ws_bin\": {},", json_str(&meta.ws_bin));
    let _ = writeln!(out, "  \"kernel\": {},", json_str(&meta.kernel));
    let _ = writeln!(out, "  \"sandbox_runs\": {},", meta.sandbox_runs.map_or("null".into(), |n| n.to_string()));
    out.push_str("  \"results\": [");
    for (i, r) in rows.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        // Times in seconds; a Mib row has its MiB in "ws_mib" and no baseline.
        let ws_key = if matches!(r.target, Target::Mib(_)) { "ws_mib" } else { "ws_seconds" };
        let _ = write!(
            out,
            "    {{\"fs\": {}, \"measurement\": {}, \"{ws_key}\": {}, \"baseline\": {}, \"baseline_seconds\": {}, \
             \"ratio\": {}, \"target_kind\": \"{}\", \"target\": {}, \"value\": {}, \"pass\": {}, \"ws\": {}, \
             \"baseline_samples\": {}}}",
            json_str(&r.fs),
            json_str(&r.measurement),
            json_num(r.ws.median()),
            json_str(&r.baseline_name),
            json_num(r.baseline_median()),
            json_num(r.ratio()),
            r.target.kind(),
            json_num(r.target.max()),
            json_num(r.value()),
            r.pass(),
            json_sample(&r.ws),
            r.baseline.as_ref().map_or("null".into(), json_sample),
        );
    }
    out.push_str("\n  ],\n");
    let list = |v: &[String]| v.iter().map(|s| json_str(s)).collect::<Vec<_>>().join(", ");
    let _ = writeln!(out, "  \"errors\": [{}],", list(errors));
    let _ = writeln!(out, "  \"notes\": [{}]", list(notes));
    out.push_str("}\n");
    out
}
