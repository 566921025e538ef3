//! The report directory: every figure as SVG and as PNG at print resolution, every table as
//! Markdown, CSV and LaTeX, all metrics as JSON, and an `index.html` tying them together with
//! captions and the settings used.
//!
//! Layout (all links in `index.html` are relative, so the folder can be copied and opened
//! offline; the page loads nothing from the network and runs no script):
//! ```text
//! out/index.html
//! out/metrics.json                       every computed metric (serde)
//! out/figures/fig2_pgd_<model>_<k>.svg   PGD accuracy/loss vs iteration (one per model, setting)
//! out/figures/fig3_<attack>_<model>.svg  stress-strain per attack and model
//! out/figures/fig4_box_<attack>.svg      box-plots per attack
//! out/figures/table3_cam.svg             CAM grid (only with CAM inputs)
//! out/png/<name>.png                     each figure at 300 dpi (see [`super::raster`])
//! out/tables/<name>.md, .csv, .tex       Tables 4-6, classification, PGD breaking, box stats, cells
//! out/tables/claims.json, claims*.md ... the paper's claims with bootstrap CIs ([`super::claims`])
//! ```
//! A non-empty `out` is refused unless `force` is set; with `force` the files above are replaced
//! (each atomically) and other files in `out` are left alone.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cam::{render_panel, CamPanel, CamRow};
use super::claims::{claims_tables, paper_claims, BootstrapConfig, Verdict};
use super::metrics::{
    attack_boxes, cell_metrics, classify_all, genattack_rows, paper_stress_specs, pgd_curves,
    strain_curves, trace_cells, AttackBox, CellMetrics, Classification, GenAttackRow, PgdCurve,
    StrainCurve, StressParam, StressSpec,
};
use super::plots::{boxplot_svg, cam_grid_svg, pgd_svg, stress_strain_svg, Figure};
use super::raster::{Rasterizer, PRINT_DPI};
use super::record::{check_consistent, SweepRecord};
use super::style::{Family, Styles};
use super::tables::{fgsm_table, genattack_table, html_escape, pgd_table, Table};
use crate::io::atomic::write_bytes_atomic;
use crate::{Error, Result};

/// What the report needs beyond the sweep records.
#[derive(Clone, Debug)]
pub struct ReportInputs {
    /// Page title.
    pub title: String,
    /// Number of classes (sets the PGD breaking line 1/classes).
    pub classes: usize,
    /// GenAttack generations for the OA/TA table (empty: five evenly spaced).
    pub generations: Vec<usize>,
    /// Stress axes of the stress-strain graphs.
    pub stress_specs: Vec<StressSpec>,
    /// CAM grid rows (Table 3); empty: no CAM figure.
    pub cam_rows: Vec<CamRow>,
    /// Which image the CAM grid shows and why (figure subtitle and caption).
    pub cam_note: Option<String>,
    /// Free text describing the run (data set, image subset, seed, config), shown verbatim.
    pub settings_note: Option<String>,
    /// Overwrite the report files in a non-empty output directory.
    pub force: bool,
    /// Resamples and seed of the claims' bootstrap.
    pub bootstrap: BootstrapConfig,
}

impl Default for ReportInputs {
    fn default() -> Self {
        ReportInputs {
            title: "BreakingBED robustness report".into(),
            classes: 10,
            generations: Vec::new(),
            stress_specs: paper_stress_specs(),
            cam_rows: Vec::new(),
            cam_note: None,
            settings_note: None,
            force: false,
            bootstrap: BootstrapConfig::default(),
        }
    }
}

/// What was written, for the CLI to print and tests to check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    pub out_dir: PathBuf,
    /// Figure files (SVG), relative to `out_dir`.
    pub figures: Vec<String>,
    /// The same figures as PNG at [`PRINT_DPI`], relative to `out_dir`.
    pub pngs: Vec<String>,
    /// Table files (md, csv and tex), relative to `out_dir`.
    pub tables: Vec<String>,
    pub records: usize,
    pub cells: usize,
    pub classifications: Vec<Classification>,
    /// Things the reader should know (skipped cells, missing data).
    pub warnings: Vec<String>,
}

/// Everything computed, as written to `metrics.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportMetrics {
    pub classes: usize,
    pub cells: Vec<CellMetrics>,
    pub pgd: Vec<PgdCurve>,
    pub strain: Vec<StrainCurve>,
    pub classifications: Vec<Classification>,
    pub boxes: Vec<AttackBox>,
    pub genattack: Vec<GenAttackRow>,
    pub cam: Vec<(String, Vec<CamPanel>)>,
}

/// Lower-case ASCII letters, digits and '-' only, for file names.
fn slug(s: &str) -> String {
    let mut o: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while o.contains("--") {
        o = o.replace("--", "-");
    }
    o.trim_matches('-').to_string()
}

fn check_out_dir(out: &Path, force: bool) -> Result<()> {
    match std::fs::read_dir(out) {
        Ok(mut it) => {
            if it.next().is_some() && !force {
                return Err(Error::input(
                    out.display().to_string(),
                    "output directory exists and is not empty; refusing to overwrite \
                     (choose another directory or pass --force)",
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Error::input(
            out.display().to_string(),
            "output path exists and is not a directory",
        )),
        Err(e) => Err(Error::io(out, e)),
    }
}

struct Writer<'a> {
    out: &'a Path,
    raster: Rasterizer,
    figures: Vec<String>,
    pngs: Vec<String>,
    tables: Vec<String>,
}

impl Writer<'_> {
    fn write(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let path = self.out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        write_bytes_atomic(&path, bytes)
    }

    /// Writes `figures/<name>.svg` and `png/<name>.png`; returns the figure's HTML.
    fn figure(&mut self, name: &str, fig: &Figure, alt: &str, caption: &str) -> Result<String> {
        let (svg, png) = (format!("figures/{name}.svg"), format!("png/{name}.png"));
        self.write(&svg, fig.svg.as_bytes())?;
        self.write(&png, &self.raster.png(&fig.svg, PRINT_DPI, &svg)?)?;
        self.figures.push(svg.clone());
        self.pngs.push(png.clone());
        Ok(format!(
            "<figure><a href=\"{svg}\"><img src=\"{svg}\" alt=\"{}\"></a>\
             <figcaption>{caption} <span class=\"dl\">Download: <a href=\"{svg}\">SVG</a> | \
             <a href=\"{png}\">PNG ({PRINT_DPI:.0} dpi)</a></span></figcaption></figure>\n",
            html_escape(alt),
        ))
    }

    /// Writes `tables/<name>.md`, `.csv` and `.tex`; returns the HTML with download links.
    fn table(&mut self, name: &str, t: &Table) -> Result<String> {
        self.table_with_notes(name, t, &[])
    }

    /// As [`Writer::table`], with `notes` (e.g. decision rules) after the Markdown table and as
    /// comments after the LaTeX one.
    fn table_with_notes(&mut self, name: &str, t: &Table, notes: &[String]) -> Result<String> {
        let md = format!("tables/{name}.md");
        let csv = format!("tables/{name}.csv");
        let tex = format!("tables/{name}.tex");
        let mut md_text = t.to_markdown();
        let mut tex_text = t.to_latex(name);
        if !notes.is_empty() {
            md_text += "\n";
        }
        for n in notes {
            md_text += &format!("- {n}\n");
            tex_text += &format!("% {n}\n");
        }
        self.write(&md, md_text.as_bytes())?;
        self.write(&csv, t.to_csv().as_bytes())?;
        self.write(&tex, tex_text.as_bytes())?;
        self.tables.extend([md.clone(), csv.clone(), tex.clone()]);
        Ok(format!(
            "{}<p class=\"dl\">Download: <a href=\"{md}\">Markdown</a> | <a href=\"{csv}\">CSV</a> | \
             <a href=\"{tex}\">LaTeX (booktabs)</a></p>\n",
            t.to_html(&format!("table-{name}"))
        ))
    }
}

/// The stress axis label of `spec` with its unit: for eps, the scale the cells' settings record
/// (`eps [pixel, 0-255]`, `eps [unit, 0-1]`, `eps [normalised]`), else the caption's counter,
/// with the same unit after a fixed eps (`iterations, fixed eps = 16 [pixel, 0-255]`).
fn stress_axis_label(spec: &StressSpec, cells: &[CellMetrics]) -> String {
    let base = spec
        .caption
        .strip_prefix("stress = ")
        .unwrap_or(&spec.caption);
    let mut scales: Vec<&str> = cells
        .iter()
        .filter(|c| c.attack == spec.attack && c.setting.matches(&spec.fixed))
        .filter_map(|c| {
            c.setting.scale.map(|s| match s {
                crate::attack::Scale::Pixel => "pixel, 0-255",
                crate::attack::Scale::Unit => "unit, 0-1",
                crate::attack::Scale::Normalized => "normalised",
            })
        })
        .collect();
    scales.sort();
    scales.dedup();
    let unit = match scales.as_slice() {
        [one] => one.to_string(),
        [] => "scale not recorded".to_string(),
        many => format!("mixed scales: {}", many.join("; ")),
    };
    if spec.param != StressParam::Eps {
        return match spec.fixed.eps {
            // The fixed eps is the caption's "fixed eps = X"; its unit follows the number.
            Some(_) if base.contains("fixed eps = ") => {
                let (head, tail) = base.split_once("fixed eps = ").expect("checked");
                let end = tail.find(',').unwrap_or(tail.len());
                format!(
                    "{head}fixed eps = {} [{unit}]{}",
                    &tail[..end],
                    &tail[end..]
                )
            }
            _ => base.to_string(),
        };
    }
    let rest = base.strip_prefix("eps").unwrap_or(base);
    format!("eps [{unit}]{rest}")
}

fn pct(v: f32) -> String {
    format!("{:.2}", 100.0 * v)
}

const STYLE: &str =
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #ddd}\
figcaption{font-size:.9em;color:#444}table{border-collapse:collapse;margin:.5em 0;font-size:.9em}\
th,td{border:1px solid #bbb;padding:2px 6px;text-align:left}td.num{text-align:right}th{background:#eee}\
caption{font-weight:bold;text-align:left;padding:4px 0}\
pre{background:#f6f6f6;padding:.5em;overflow-x:auto}.dl{font-size:.85em}\
td.v-confirmed{background:#d8f0d8;font-weight:bold}td.v-refuted{background:#f6d5d5;font-weight:bold}\
td.v-inconclusive{font-style:italic}td.v-not-measured{color:#666}";

/// Mark the verdict cells of a claims table for the style sheet (the text itself already tells
/// the verdicts apart in greyscale).
fn mark_verdicts(html: String) -> String {
    [
        Verdict::Confirmed,
        Verdict::Refuted,
        Verdict::Inconclusive,
        Verdict::NotMeasured,
    ]
    .iter()
    .fold(html, |h, v| {
        let label = v.label();
        h.replace(
            &format!("<td>{label}</td>"),
            &format!(
                "<td class=\"v-{}\">{label}</td>",
                label.to_ascii_lowercase().replace(' ', "-")
            ),
        )
    })
}

/// Compute every metric from `records` and write the report into `out`.
pub fn write_report(
    records: &[SweepRecord],
    extra: &ReportInputs,
    out: &Path,
) -> Result<ReportSummary> {
    if records.is_empty() {
        return Err(Error::input("records", "no sweep records to report on"));
    }
    check_consistent(records)?;
    check_out_dir(out, extra.force)?;
    // Fonts are checked before anything is written.
    let raster = Rasterizer::new()?;
    let mut warnings = Vec::new();

    // Everything is computed before anything is written, so bad input leaves `out` untouched.
    let cells = cell_metrics(records);
    for c in cells.iter().filter(|c| c.strain.is_none()) {
        warnings.push(format!(
            "{} / {} / {}: clean accuracy is 0, strain undefined (left out of stress-strain)",
            c.variant,
            c.attack,
            c.setting.label()
        ));
    }
    let pgd = pgd_curves(records, "pgd", extra.classes)?;
    // One style per variant for the whole report, ranked within its family by name.
    let variant_order = Styles::new(
        records
            .iter()
            .map(|r| (r.variant.as_str(), r.variant_kind.as_str()))
            .collect::<std::collections::BTreeSet<_>>(),
    );
    let mut strain = Vec::new();
    let mut classifications = Vec::new();
    let mut fig3 = Vec::new();
    for spec in &extra.stress_specs {
        let curves = strain_curves(records, spec);
        if curves.is_empty() {
            continue;
        }
        classifications.extend(classify_all(&curves));
        let mut models: Vec<String> = curves.iter().map(|c| c.model.clone()).collect();
        models.sort();
        models.dedup();
        for m in models {
            let mc: Vec<StrainCurve> = curves.iter().filter(|c| c.model == m).cloned().collect();
            let svg = stress_strain_svg(
                &format!("{} - {m}", spec.attack),
                &stress_axis_label(spec, &cells),
                spec.param == StressParam::Iterations,
                &mc,
                &variant_order,
            )?;
            fig3.push((spec.clone(), m, svg));
        }
        strain.extend(curves);
    }
    for a in cells
        .iter()
        .map(|c| c.attack.clone())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if !extra.stress_specs.iter().any(|s| s.attack == a) {
            warnings.push(format!(
                "attack {a}: no stress axis defined, no stress-strain graph"
            ));
        }
    }
    // Traced LocalSearch/GenAttack runs add the iteration counts their curves read off the trace.
    let boxes = attack_boxes(&[cells.as_slice(), &trace_cells(records)].concat())?;
    let claims = paper_claims(records, &extra.stress_specs, extra.bootstrap)?;
    let ga = genattack_rows(records, &extra.generations);
    let cam: Vec<(String, Vec<CamPanel>)> = extra
        .cam_rows
        .iter()
        .map(|r| {
            let panels = r
                .panels
                .iter()
                .map(render_panel)
                .collect::<Result<Vec<_>>>()?;
            Ok((r.variant.clone(), panels))
        })
        .collect::<Result<_>>()?;

    // Fig. 2 shows the long traced runs: per model, the settings with the most tracked
    // iterations (the short grid cells still appear in the breaking-iteration table).
    let mut fig2 = Vec::new();
    let mut models: Vec<&str> = pgd.iter().map(|c| c.model.as_str()).collect();
    models.sort();
    models.dedup();
    for model in models {
        let longest = pgd
            .iter()
            .filter(|c| c.model == model)
            .map(|c| c.iterations.len())
            .max()
            .unwrap_or(0);
        if longest <= 2 {
            continue;
        }
        let mut settings: Vec<String> = pgd
            .iter()
            .filter(|c| c.model == model && c.iterations.len() == longest)
            .map(|c| c.setting.label())
            .collect();
        settings.sort();
        settings.dedup();
        for setting in settings {
            let curves: Vec<PgdCurve> = pgd
                .iter()
                .filter(|c| {
                    c.model == model
                        && c.iterations.len() == longest
                        && c.setting.label() == setting
                })
                .cloned()
                .collect();
            let svg = pgd_svg(
                &format!("PGD - {model} ({setting})"),
                &curves,
                extra.classes,
                &variant_order,
            )?;
            fig2.push((model.to_string(), setting, svg));
        }
    }
    let kind_order = Styles::new(
        records
            .iter()
            .map(|r| (r.variant_kind.as_str(), r.variant_kind.as_str()))
            .collect::<std::collections::BTreeSet<_>>(),
    );
    let mut fig4 = Vec::new();
    let mut attacks: Vec<String> = boxes.iter().map(|b| b.attack.clone()).collect();
    attacks.dedup();
    for a in &attacks {
        let mut bs: Vec<(String, _)> = boxes
            .iter()
            .filter(|b| &b.attack == a)
            .map(|b| (b.variant_kind.clone(), b.stats.clone()))
            .collect();
        // Boxes grouped by family like the colours (full precision, pruned, binarized), vanilla
        // first as the reference.
        bs.sort_by_key(|(k, _)| (Family::of_kind(k), k != "vanilla", k.clone()));
        fig4.push((
            a.clone(),
            boxplot_svg(&format!("{a}: accuracy after attack"), &bs, &kind_order)?,
        ));
    }
    let cam_svg = if cam.is_empty() {
        None
    } else {
        Some(cam_grid_svg(
            "Class activation maps (cf. paper Table 3)",
            extra.cam_note.as_deref().unwrap_or(""),
            &cam,
        )?)
    };

    // Write.
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut w = Writer {
        out,
        raster,
        figures: Vec::new(),
        pngs: Vec::new(),
        tables: Vec::new(),
    };
    let mut body = String::new();
    body += &format!("<h1>{}</h1>\n", html_escape(&extra.title));

    // Settings.
    let variants: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.variant.as_str()).collect();
    body += "<h2 id=\"settings\">Settings</h2>\n";
    body += &format!(
        "<p>{} result records, {} cells (variant x attack x setting), {} variants, {} classes \
         (breaking line {:.1}%).</p>\n",
        records.len(),
        cells.len(),
        variants.len(),
        extra.classes,
        100.0 / extra.classes as f32
    );
    if let Some(note) = &extra.settings_note {
        body += &format!("<pre>{}</pre>\n", html_escape(note));
    }
    // Cells are sorted numerically by setting within (variant, attack); keep first appearance.
    let mut grid: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut by_setting: Vec<&CellMetrics> = cells.iter().collect();
    by_setting.sort_by(|a, b| a.setting.numeric_cmp(&b.setting));
    for c in by_setting {
        let e = grid.entry(c.attack.clone()).or_default();
        let l = c.setting.label();
        if !e.contains(&l) {
            e.push(l);
        }
    }
    let settings_table = Table {
        title: "Attack settings found in the results".into(),
        header: vec!["Attack".into(), "Settings".into()],
        rows: grid
            .into_iter()
            .map(|(a, s)| vec![a, s.into_iter().collect::<Vec<_>>().join("; ")])
            .collect(),
    };
    body += &w.table("settings", &settings_table)?;

    // Fig. 2.
    if !fig2.is_empty() {
        body += "<h2 id=\"fig2\">PGD accuracy and loss over iterations (cf. Fig. 2)</h2>\n";
        for (k, (model, setting, fig)) in fig2.iter().enumerate() {
            body += &w.figure(
                &format!("fig2_pgd_{}_{k}", slug(model)),
                fig,
                &format!("PGD curves {model}"),
                &format!(
                    "PGD accuracy (top) and mean loss (bottom) over iterations for {} ({}), \
                     averaged over reruns; the grey dash-dot breaking line is {:.1}% (1/classes).",
                    html_escape(model),
                    html_escape(setting),
                    100.0 / extra.classes as f32
                ),
            )?;
        }
        let t = Table {
            title: "PGD breaking iteration (first tracked iteration with accuracy <= 1/classes)"
                .into(),
            header: vec![
                "Variant".into(),
                "Setting".into(),
                "Reruns".into(),
                "Mean breaking i (broken reruns)".into(),
                "Unbroken reruns".into(),
                "Breaking i of mean curve".into(),
                "Final acc [%]".into(),
            ],
            rows: pgd
                .iter()
                .map(|c| {
                    vec![
                        c.variant.clone(),
                        c.setting.label(),
                        c.per_rerun_breaking.len().to_string(),
                        c.mean_breaking
                            .map_or("never".into(), |m| format!("{m:.1}")),
                        c.unbroken.to_string(),
                        c.breaking_of_mean.map_or("never".into(), |m| m.to_string()),
                        c.accuracy.last().map_or("-".into(), |&a| pct(a)),
                    ]
                })
                .collect(),
        };
        body += &w.table("pgd_breaking", &t)?;
    }

    // Fig. 3.
    if !fig3.is_empty() {
        body += "<h2 id=\"fig3\">Stress-strain graphs (cf. Fig. 3)</h2>\n";
        body += "<p>Strain = (A - A*)/A, A = clean accuracy, A* = accuracy after attack. \
                 Classification: brittle if strain reaches 0.9 within the lower half of the \
                 normalized stress range; strong if it never reaches 0.9 and ends at strain \
                 &lt;= 0.5; ductile otherwise.</p>\n";
        for (spec, model, fig) in &fig3 {
            body += &w.figure(
                &format!("fig3_{}_{}", slug(&spec.attack), slug(model)),
                fig,
                &format!("stress-strain {} {model}", spec.attack),
                &format!(
                    "Stress-strain graph, {} on {} ({}).",
                    html_escape(&spec.attack),
                    html_escape(model),
                    html_escape(&spec.caption)
                ),
            )?;
        }
        let t = Table {
            title: "Strong / ductile / brittle".into(),
            header: vec![
                "Variant".into(),
                "Attack".into(),
                "Class".into(),
                "Normalized breaking stress".into(),
                "Final strain".into(),
            ],
            rows: classifications
                .iter()
                .map(|c| {
                    vec![
                        c.variant.clone(),
                        c.attack.clone(),
                        c.behaviour.to_string(),
                        c.s_break.map_or("never".into(), |s| format!("{s:.3}")),
                        format!("{:.3}", c.final_strain),
                    ]
                })
                .collect(),
        };
        body += &w.table("classification", &t)?;
    }

    // Fig. 4.
    if !fig4.is_empty() {
        body += "<h2 id=\"fig4\">Box-plots over the whole grid (cf. Fig. 4)</h2>\n\
                 <p>One value per (variant, setting) cell; quartiles by linear interpolation \
                 (type 7), whiskers at the last points within 1.5 IQR, circles are outliers.</p>\n";
        for (a, fig) in &fig4 {
            body += &w.figure(
                &format!("fig4_box_{}", slug(a)),
                fig,
                &format!("box-plot {a}"),
                &format!(
                    "Accuracy after {} over all its settings, per variant kind.",
                    html_escape(a)
                ),
            )?;
        }
        let t = Table {
            title: "Box-plot statistics, accuracy after attack [%]".into(),
            header: [
                "Attack",
                "Kind",
                "n",
                "Lower whisker",
                "Q1",
                "Median",
                "Q3",
                "Upper whisker",
                "Outliers",
            ]
            .map(String::from)
            .to_vec(),
            rows: boxes
                .iter()
                .map(|b| {
                    let s = &b.stats;
                    vec![
                        b.attack.clone(),
                        b.variant_kind.clone(),
                        s.n.to_string(),
                        format!("{:.2}", s.lower_whisker),
                        format!("{:.2}", s.q1),
                        format!("{:.2}", s.median),
                        format!("{:.2}", s.q3),
                        format!("{:.2}", s.upper_whisker),
                        s.outliers
                            .iter()
                            .map(|o| format!("{o:.2}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ]
                })
                .collect(),
        };
        body += &w.table("boxplot_stats", &t)?;
    }

    // Table 3.
    if let Some(fig) = &cam_svg {
        body += "<h2 id=\"cam\">Class activation maps (cf. Table 3)</h2>\n";
        body += &w.figure(
            "table3_cam",
            fig,
            "CAM grid",
            &format!(
                "{}CAM overlays (jet colour bar: blue = low, red = high, each map min-max \
                 normalised to 0-255); Q3 = third quartile of the 0-255 heat-map intensity over \
                 all pixels.",
                extra
                    .cam_note
                    .as_deref()
                    .map_or(String::new(), |n| format!("{} ", html_escape(n)))
            ),
        )?;
        let mut labels: Vec<String> = Vec::new();
        for (_, panels) in &cam {
            for p in panels {
                if !labels.contains(&p.label) {
                    labels.push(p.label.clone());
                }
            }
        }
        let t = Table {
            title: "CAM third-quartile heat-map intensity (0-255)".into(),
            header: std::iter::once("Variant".to_string())
                .chain(labels.iter().cloned())
                .collect(),
            rows: cam
                .iter()
                .map(|(v, panels)| {
                    std::iter::once(v.clone())
                        .chain(labels.iter().map(|l| {
                            panels
                                .iter()
                                .find(|p| &p.label == l)
                                .map_or("-".into(), |p| format!("{:.2}", p.q3))
                        }))
                        .collect()
                })
                .collect(),
        };
        body += &w.table("table3_cam_q3", &t)?;
    }

    // Paper claims.
    body += "<h2 id=\"claims\">Paper claims</h2>\n";
    body += &format!(
        "<p>{} distinct images; bootstrap with B = {} resamples, seed {}. Rules:</p>\n<ul>\n",
        claims.images, claims.resamples, claims.seed
    );
    for r in &claims.rules {
        body += &format!("<li>{}</li>\n", html_escape(r));
    }
    body += "</ul>\n";
    let [texts, effects, classes] = claims_tables(&claims);
    body += &w.table("claims_paper", &texts)?;
    body += &mark_verdicts(w.table_with_notes("claims", &effects, &claims.rules)?);
    body += &mark_verdicts(w.table_with_notes("claims_classes", &classes, &claims.rules)?);
    let json = serde_json::to_string_pretty(&claims)
        .map_err(|e| Error::internal("claims.json", e.to_string()))?;
    w.write("tables/claims.json", json.as_bytes())?;
    body +=
        "<p class=\"dl\">All claim fields: <a href=\"tables/claims.json\">claims.json</a></p>\n";

    // Tables 4-6.
    body += "<h2 id=\"tables\">Tables</h2>\n";
    if cells.iter().any(|c| c.attack == "fgsm") {
        body += &w.table("table4_fgsm", &fgsm_table(&cells))?;
    }
    if cells.iter().any(|c| c.attack == "pgd") {
        body += &w.table("table5_pgd", &pgd_table(&cells))?;
    }
    if !ga.is_empty() {
        body += &w.table("table6_genattack", &genattack_table(&ga))?;
    }
    let all = Table {
        title: "All cells".into(),
        header: [
            "Variant",
            "Kind",
            "Model",
            "Attack",
            "Setting",
            "Results",
            "Reruns",
            "Clean acc [%]",
            "Acc after attack [%]",
            "Mean loss",
            "Strain",
        ]
        .map(String::from)
        .to_vec(),
        rows: cells
            .iter()
            .map(|c| {
                vec![
                    c.variant.clone(),
                    c.variant_kind.clone(),
                    c.model.clone(),
                    c.attack.clone(),
                    c.setting.label(),
                    c.results.to_string(),
                    c.reruns.to_string(),
                    pct(c.clean_accuracy),
                    pct(c.accuracy),
                    c.mean_loss.map_or("-".into(), |l| format!("{l:.4}")),
                    c.strain.map_or("-".into(), |s| format!("{s:.4}")),
                ]
            })
            .collect(),
    };
    body += &w.table("cells", &all)?;

    if !warnings.is_empty() {
        body += "<h2 id=\"warnings\">Warnings</h2>\n<ul>\n";
        for wn in &warnings {
            body += &format!("<li>{}</li>\n", html_escape(wn));
        }
        body += "</ul>\n";
    }
    body += "<p class=\"dl\">All metrics: <a href=\"metrics.json\">metrics.json</a></p>\n";

    let metrics = ReportMetrics {
        classes: extra.classes,
        cells: cells.clone(),
        pgd,
        strain,
        classifications: classifications.clone(),
        boxes,
        genattack: ga,
        cam,
    };
    let json = serde_json::to_string_pretty(&metrics)
        .map_err(|e| Error::internal("metrics.json", e.to_string()))?;
    w.write("metrics.json", json.as_bytes())?;
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        html_escape(&extra.title)
    );
    w.write("index.html", html.as_bytes())?;
    Ok(ReportSummary {
        out_dir: out.to_path_buf(),
        figures: w.figures,
        pngs: w.pngs,
        tables: w.tables,
        records: records.len(),
        cells: cells.len(),
        classifications,
        warnings,
    })
}
