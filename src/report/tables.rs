//! Tables shaped like the paper's Tables 4-6, rendered as Markdown, CSV (RFC 4180 quoting), LaTeX
//! (`booktabs` rules: `\toprule`, `\midrule`, `\bottomrule`; text escaped for LaTeX's special
//! characters) and HTML. Accuracies are printed in percent with two decimals, as in the paper.
//!
//! - Table 4 (FGSM): one row per variant, clean accuracy, then one column per eps.
//! - Table 5 (PGD): one row per (variant, eps), one column per iteration count.
//! - Table 6 (GenAttack): one row per (variant, eps, N) from its longest run, one `OA/TA` column
//!   per generation (see [`super::metrics::genattack_rows`]).
//!
//! A cell of the grid that was not run is shown as `-`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::metrics::{CellMetrics, GenAttackRow};

/// A rectangular table of strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

fn pct(v: f32) -> String {
    format!("{:.2}", 100.0 * v)
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Escape text for LaTeX (text mode): the ten special characters `\ & % $ # _ { } ~ ^` and the
/// `< > |` that the default OT1 font encoding would print as other glyphs.
pub fn latex_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                o.push('\\');
                o.push(c);
            }
            '~' => o.push_str("\\textasciitilde{}"),
            '^' => o.push_str("\\textasciicircum{}"),
            '<' => o.push_str("\\textless{}"),
            '>' => o.push_str("\\textgreater{}"),
            '|' => o.push_str("\\textbar{}"),
            c => o.push(c),
        }
    }
    o
}

/// True for cells shown as numbers: numbers, "a/b" pairs of them, and "-" for "not run".
fn numeric_cell(c: &str) -> bool {
    c.split('/').all(|p| p == "-" || p.parse::<f64>().is_ok())
}

/// Escape text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

impl Table {
    pub fn to_markdown(&self) -> String {
        let line = |cells: &[String]| {
            format!(
                "| {} |\n",
                cells
                    .iter()
                    .map(|c| md_cell(c))
                    .collect::<Vec<_>>()
                    .join(" | ")
            )
        };
        let mut s = format!("**{}**\n\n", md_cell(&self.title));
        s += &line(&self.header);
        s += &format!("|{}\n", "---|".repeat(self.header.len()));
        for r in &self.rows {
            s += &line(r);
        }
        s
    }

    pub fn to_csv(&self) -> String {
        let mut s = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            s += &r.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",");
            s += "\r\n";
        }
        s
    }

    /// A `table` float with a `booktabs` `tabular`: columns whose cells are all numeric are
    /// right-aligned, others left-aligned; `label` becomes `\label{tab:<label>}` (characters
    /// other than ASCII letters, digits and ':' as '-').
    pub fn to_latex(&self, label: &str) -> String {
        let align: String = (0..self.header.len())
            .map(|j| {
                let numeric = !self.rows.is_empty()
                    && self
                        .rows
                        .iter()
                        .all(|r| r.get(j).is_some_and(|c| numeric_cell(c)));
                if numeric {
                    'r'
                } else {
                    'l'
                }
            })
            .collect();
        let line = |cells: &[String]| {
            format!(
                "{} \\\\\n",
                cells
                    .iter()
                    .map(|c| latex_escape(c))
                    .collect::<Vec<_>>()
                    .join(" & ")
            )
        };
        let mut s = format!(
            "% Needs \\usepackage{{booktabs}}.\n\\begin{{table}}[t]\n\\centering\n\\caption{{{}}}\n\
             \\label{{tab:{}}}\n\\begin{{tabular}}{{{align}}}\n\\toprule\n",
            latex_escape(&self.title),
            // Labels are keys, not text: keep letters, digits, '-' and ':' only.
            label
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == ':' { c } else { '-' })
                .collect::<String>()
        );
        s += &line(&self.header);
        s += "\\midrule\n";
        for r in &self.rows {
            s += &line(r);
        }
        s += "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
        s
    }

    pub fn to_html(&self, id: &str) -> String {
        let mut s = format!(
            "<table id=\"{}\">\n<caption>{}</caption>\n<thead><tr>",
            html_escape(id),
            html_escape(&self.title)
        );
        for h in &self.header {
            s += &format!("<th>{}</th>", html_escape(h));
        }
        s += "</tr></thead>\n<tbody>\n";
        for r in &self.rows {
            s += "<tr>";
            for c in r {
                // Numbers (and "a/b" pairs, "-") align right.
                let class = if numeric_cell(c) {
                    " class=\"num\""
                } else {
                    ""
                };
                s += &format!("<td{class}>{}</td>", html_escape(c));
            }
            s += "</tr>\n";
        }
        s += "</tbody>\n</table>\n";
        s
    }
}

fn sorted_f32(values: impl Iterator<Item = f32>) -> Vec<f32> {
    let set: BTreeSet<u32> = values.map(f32::to_bits).collect();
    let mut v: Vec<f32> = set.into_iter().map(f32::from_bits).collect();
    v.sort_by(f32::total_cmp);
    v
}

/// Mean clean accuracy of a variant over the given cells.
fn clean_of(cells: &[&CellMetrics]) -> f32 {
    cells.iter().map(|c| c.clean_accuracy).sum::<f32>() / cells.len().max(1) as f32
}

/// Table 4: accuracy [%] after FGSM per eps.
pub fn fgsm_table(cells: &[CellMetrics]) -> Table {
    let fgsm: Vec<&CellMetrics> = cells.iter().filter(|c| c.attack == "fgsm").collect();
    let eps = sorted_f32(fgsm.iter().filter_map(|c| c.setting.eps));
    let mut by_variant: BTreeMap<&str, Vec<&CellMetrics>> = BTreeMap::new();
    for c in &fgsm {
        by_variant.entry(&c.variant).or_default().push(c);
    }
    let mut header = vec!["Variant".to_string(), "Nat. Acc [%]".to_string()];
    header.extend(eps.iter().map(|e| format!("eps={e}")));
    let rows = by_variant
        .iter()
        .map(|(v, cs)| {
            let mut row = vec![v.to_string(), pct(clean_of(cs))];
            for e in &eps {
                let hit: Vec<&&CellMetrics> =
                    cs.iter().filter(|c| c.setting.eps == Some(*e)).collect();
                row.push(if hit.is_empty() {
                    "-".into()
                } else {
                    pct(hit.iter().map(|c| c.accuracy).sum::<f32>() / hit.len() as f32)
                });
            }
            row
        })
        .collect();
    Table {
        title: "Accuracy [%] after FGSM (cf. paper Table 4)".into(),
        header,
        rows,
    }
}

/// Table 5: accuracy [%] after PGD per eps (rows) and iterations (columns).
pub fn pgd_table(cells: &[CellMetrics]) -> Table {
    let pgd: Vec<&CellMetrics> = cells.iter().filter(|c| c.attack == "pgd").collect();
    let iters: BTreeSet<usize> = pgd.iter().filter_map(|c| c.setting.iterations).collect();
    let mut groups: BTreeMap<(&str, u32), Vec<&CellMetrics>> = BTreeMap::new();
    for c in &pgd {
        if let Some(e) = c.setting.eps {
            groups.entry((&c.variant, e.to_bits())).or_default().push(c);
        }
    }
    let mut keys: Vec<(&str, u32)> = groups.keys().copied().collect();
    keys.sort_by(|a, b| {
        a.0.cmp(b.0)
            .then(f32::from_bits(a.1).total_cmp(&f32::from_bits(b.1)))
    });
    let mut header = vec!["Variant".into(), "Nat. Acc [%]".into(), "eps".into()];
    header.extend(iters.iter().map(|i| format!("i={i}")));
    let rows = keys
        .iter()
        .map(|k| {
            let cs = &groups[k];
            let mut row = vec![
                k.0.to_string(),
                pct(clean_of(cs)),
                f32::from_bits(k.1).to_string(),
            ];
            for i in &iters {
                row.push(
                    cs.iter()
                        .find(|c| c.setting.iterations == Some(*i))
                        .map_or("-".into(), |c| pct(c.accuracy)),
                );
            }
            row
        })
        .collect();
    Table {
        title: "Accuracy [%] after PGD (cf. paper Table 5)".into(),
        header,
        rows,
    }
}

/// Table 6: OA/TA [%] after GenAttack per generation.
pub fn genattack_table(rows_in: &[GenAttackRow]) -> Table {
    let gens: BTreeSet<usize> = rows_in
        .iter()
        .flat_map(|r| r.rows.iter().map(|g| g.generation))
        .collect();
    let mut header = vec![
        "Variant".into(),
        "Nat. Acc [%]".into(),
        "eps".into(),
        "N".into(),
    ];
    header.extend(gens.iter().map(|g| format!("i={g} OA/TA")));
    let rows = rows_in
        .iter()
        .map(|r| {
            let mut row = vec![
                r.variant.clone(),
                pct(r.clean_accuracy),
                r.setting.eps.map_or("-".into(), |e| e.to_string()),
                r.setting.population.map_or("-".into(), |n| n.to_string()),
            ];
            for g in &gens {
                row.push(
                    r.rows
                        .iter()
                        .find(|x| x.generation == *g)
                        .map_or("-".into(), |x| {
                            format!("{}/{}", pct(x.oa), x.ta.map_or("-".to_string(), pct))
                        }),
                );
            }
            row
        })
        .collect();
    Table {
        title: "OA/TA [%] after GenAttack (cf. paper Table 6; OA = original label, TA = target)"
            .into(),
        header,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_markdown_and_html_escaping() {
        let t = Table {
            title: "T|1".into(),
            header: vec!["a,b".into(), "q\"x".into()],
            rows: vec![vec!["x|y".into(), "<b>&".into()]],
        };
        // RFC 4180: fields with commas or quotes are quoted, quotes doubled, CRLF line ends.
        assert_eq!(t.to_csv(), "\"a,b\",\"q\"\"x\"\r\nx|y,<b>&\r\n");
        assert_eq!(
            t.to_markdown(),
            "**T\\|1**\n\n| a,b | q\"x |\n|---|---|\n| x\\|y | <b>& |\n"
        );
        let h = t.to_html("t");
        assert!(
            h.contains("<td>&lt;b&gt;&amp;</td>") && h.contains("<th>q&quot;x</th>"),
            "{h}"
        );
    }
}
