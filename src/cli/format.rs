//! Shared output formats of `bbed` subcommands: an aligned text table, JSON (the subcommand's
//! serde value, pretty-printed), CSV (RFC 4180 quoting) and a Markdown table. A subcommand
//! builds one [`Tabular`] for the text formats and hands its typed value for JSON.

use std::fmt::Write as _;

use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
    Md,
}

/// Rows of strings under a header, for the table/csv/md formats.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tabular {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

fn is_numeric(s: &str) -> bool {
    let t = s.trim_end_matches('%');
    !t.is_empty() && t.parse::<f64>().is_ok()
}

impl Tabular {
    pub fn new(headers: &[&str]) -> Self {
        Tabular {
            headers: headers.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(
            row.len(),
            self.headers.len(),
            "row width must match the header"
        );
        self.rows.push(row);
    }

    /// Space-aligned columns; numbers right-aligned.
    pub fn to_text(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, &w)| {
                    if is_numeric(c) {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", parts.join("  ").trim_end());
        };
        line(&mut out, &self.headers);
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        let _ = writeln!(out, "{}", rule.join("  "));
        for r in &self.rows {
            line(&mut out, r);
        }
        out
    }

    pub fn to_csv(&self) -> String {
        let field = |s: &String| {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.clone()
            }
        };
        let mut out = String::new();
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            let _ = writeln!(out, "{}", r.iter().map(field).collect::<Vec<_>>().join(","));
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let cell = |s: &String| s.replace('|', "\\|");
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| {} |",
            self.headers
                .iter()
                .map(cell)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(
            out,
            "|{}|",
            self.headers
                .iter()
                .map(|_| "---")
                .collect::<Vec<_>>()
                .join("|")
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} |",
                r.iter().map(cell).collect::<Vec<_>>().join(" | ")
            );
        }
        out
    }
}

/// Renders `table` (text formats) or `value` (JSON).
pub fn render<T: Serialize + ?Sized>(format: Format, table: &Tabular, value: &T) -> String {
    match format {
        Format::Table => table.to_text(),
        Format::Csv => table.to_csv(),
        Format::Md => table.to_markdown(),
        Format::Json => {
            let mut s =
                serde_json::to_string_pretty(value).expect("report types serialize to JSON");
            s.push('\n');
            s
        }
    }
}
