//! Progress of a long run, visible wherever stderr goes: an indicatif bar on a terminal; plain
//! lines when stderr is a file or pipe (nohup, Slurm), where a bar prints nothing useful.
//!
//! A line is `<label>: <done>/<total> <unit> (<pct>%), <rate>/s, ETA <h:mm:ss>[, <message>]`,
//! written at most every [`interval`] seconds (default 15, `BBED_PROGRESS_SECS` overrides; 0
//! writes one per update) and once at the end. Each line is one `write` to unbuffered stderr, so
//! a kill never loses a line already due. Rate and ETA count only this invocation's work (a
//! resumed run starts its clock at the resumed position).

use std::io::{IsTerminal, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Environment variable: seconds between progress lines when stderr is not a terminal.
pub const INTERVAL_ENV: &str = "BBED_PROGRESS_SECS";

/// Seconds between lines: `BBED_PROGRESS_SECS` when it parses, else 15.
pub fn interval() -> Duration {
    let secs = std::env::var(INTERVAL_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(15.0);
    Duration::from_secs_f64(secs)
}

struct Lines {
    label: String,
    unit: String,
    total: u64,
    done: u64,
    /// Position and time the clock started at (first update after creation or a jump).
    start: (u64, Instant),
    last: Option<Instant>,
    every: Duration,
    message: String,
}

impl Lines {
    fn line(&self) -> String {
        let elapsed = self.start.1.elapsed().as_secs_f64();
        let work = self.done.saturating_sub(self.start.0) as f64;
        let rate = if elapsed > 0.0 { work / elapsed } else { 0.0 };
        let left = self.total.saturating_sub(self.done) as f64;
        let eta = if rate > 0.0 {
            let s = (left / rate).round() as u64;
            format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        } else {
            "?".into()
        };
        let pct = if self.total > 0 {
            100.0 * self.done as f64 / self.total as f64
        } else {
            100.0
        };
        let mut s = format!(
            "{}: {}/{} {} ({pct:.1}%), {rate:.2}/s, ETA {eta}",
            self.label, self.done, self.total, self.unit
        );
        if !self.message.is_empty() {
            s.push_str(", ");
            s.push_str(&self.message);
        }
        s
    }

    fn emit(&mut self) {
        self.last = Some(Instant::now());
        let text = format!("{}\n", self.line());
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }

    fn maybe_emit(&mut self) {
        let due = match self.last {
            None => true,
            Some(t) => t.elapsed() >= self.every,
        };
        if due || self.done >= self.total {
            self.emit();
        }
    }
}

enum Kind {
    Hidden,
    Bar(indicatif::ProgressBar),
    Lines(Mutex<Lines>),
}

/// A progress display (module docs); all methods take `&self` like indicatif's.
pub struct Progress(Kind);

impl Progress {
    /// `enabled = false` shows nothing; otherwise a bar on a terminal, lines elsewhere.
    pub fn new(label: &str, unit: &str, total: u64, enabled: bool) -> Self {
        Self::with_mode(label, unit, total, enabled, std::io::stderr().is_terminal())
    }

    /// As [`Progress::new`] with the terminal test given (`terminal = false`: lines).
    pub fn with_mode(label: &str, unit: &str, total: u64, enabled: bool, terminal: bool) -> Self {
        Progress(match (enabled, terminal) {
            (false, _) => Kind::Hidden,
            (true, true) => Kind::Bar(indicatif::ProgressBar::new(total)),
            (true, false) => Kind::Lines(Mutex::new(Lines {
                label: label.into(),
                unit: unit.into(),
                total,
                done: 0,
                start: (0, Instant::now()),
                last: None,
                every: interval(),
                message: String::new(),
            })),
        })
    }

    fn lines(&self, f: impl FnOnce(&mut Lines)) {
        if let Kind::Lines(m) = &self.0 {
            if let Ok(mut l) = m.lock() {
                f(&mut l)
            }
        }
    }

    /// Jump to `pos` (a resumed run); the rate clock restarts there.
    pub fn set_position(&self, pos: u64) {
        if let Kind::Bar(b) = &self.0 {
            b.set_position(pos);
        }
        self.lines(|l| {
            l.done = pos;
            l.start = (pos, Instant::now());
        });
    }

    pub fn inc(&self, n: u64) {
        if let Kind::Bar(b) = &self.0 {
            b.inc(n);
        }
        self.lines(|l| {
            l.done = l.done.saturating_add(n);
            l.maybe_emit();
        });
    }

    /// Text shown after the counts (e.g. the current loss); does not print by itself.
    pub fn set_message(&self, msg: String) {
        match &self.0 {
            Kind::Bar(b) => b.set_message(msg),
            Kind::Lines(_) => self.lines(|l| l.message = msg),
            Kind::Hidden => {}
        }
    }

    /// Stop where it is (the run was interrupted): the bar stays, a last line is written.
    pub fn abandon(&self) {
        if let Kind::Bar(b) = &self.0 {
            b.abandon();
        }
        self.lines(|l| l.emit());
    }

    /// Done: the bar is cleared; a final line is written unless the last one already said all.
    pub fn finish_and_clear(&self) {
        if let Kind::Bar(b) = &self.0 {
            b.finish_and_clear();
        }
        self.lines(|l| {
            if l.last.is_none() || l.done < l.total {
                l.emit();
            }
        });
    }
}
