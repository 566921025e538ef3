//! The report folder: every figure exists, is well-formed SVG and is linked from index.html; all
//! links are relative and resolve; tables carry the hand-computed numbers; bad input and existing
//! output are refused without writing anything.

use crate::report_support;

use std::path::Path;

use breakingbed::report::record::load_records;
use breakingbed::report::{write_report, ReportInputs, ReportMetrics};
use report_support::*;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/report");

/// Every `src="..."` and `href="..."` value in `html`.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(p) = rest.find(attr) {
            let s = &rest[p + attr.len()..];
            let end = s.find('"').unwrap();
            out.push(s[..end].to_string());
            rest = &s[end..];
        }
    }
    out
}

fn full_inputs() -> ReportInputs {
    ReportInputs {
        cam_rows: synthetic_cams(),
        settings_note: Some("synthetic sweep, seed 7, 20 images <test & check>".into()),
        ..ReportInputs::default()
    }
}

#[test]
fn full_report_figures_are_valid_svg_and_linked() {
    let records = synthetic_sweep(7, 20);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let summary = write_report(&records, &full_inputs(), &out).unwrap();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();

    // Figure families of the paper: Fig. 2 per model, Fig. 3 per attack and model, Fig. 4 per
    // attack, Table 3 CAM grid.
    let count = |prefix: &str| {
        summary
            .figures
            .iter()
            .filter(|f| f.starts_with(prefix))
            .count()
    };
    assert_eq!(count("figures/fig2_pgd_"), 2, "{:?}", summary.figures);
    assert_eq!(count("figures/fig3_"), 6 * 2);
    assert_eq!(count("figures/fig4_box_"), 6);
    assert_eq!(count("figures/table3_cam"), 1);
    for f in &summary.figures {
        let svg = std::fs::read_to_string(out.join(f)).unwrap();
        assert_eq!(
            check_xml(&svg).map_err(|e| format!("{f}: {e}")).unwrap(),
            "svg"
        );
        assert!(html.contains(&format!("src=\"{f}\"")), "{f} not referenced");
    }
    // Each figure also as PNG at 300 dpi of its CSS-pixel width (skipped without figure fonts
    // only outside CI; write_report itself refuses to run without them).
    assert_eq!(summary.pngs.len(), summary.figures.len());
    for (svg_rel, png_rel) in summary.figures.iter().zip(&summary.pngs) {
        assert_eq!(
            png_rel,
            &svg_rel.replace("figures/", "png/").replace(".svg", ".png")
        );
        let svg = std::fs::read_to_string(out.join(svg_rel)).unwrap();
        let w: f64 = svg
            .split("width=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let img = image::open(out.join(png_rel)).unwrap();
        assert_eq!(img.width(), (w * 300.0 / 96.0).round() as u32, "{png_rel}");
        assert!(
            html.contains(&format!("href=\"{png_rel}\"")),
            "{png_rel} not linked"
        );
    }
    // Tables as Markdown, CSV and LaTeX.
    assert_eq!(summary.tables.len() % 3, 0);
    for t in summary.tables.iter().filter(|t| t.ends_with(".tex")) {
        let tex = std::fs::read_to_string(out.join(t)).unwrap();
        assert!(
            tex.contains("\\toprule") && tex.contains("\\bottomrule"),
            "{t}"
        );
    }
    for t in &summary.tables {
        assert!(out.join(t).is_file(), "{t}");
        assert!(html.contains(&format!("href=\"{t}\"")), "{t} not linked");
    }
    // The paper claims: a section with the rules next to the tables, every format written.
    assert!(html.contains("<h2 id=\"claims\">Paper claims</h2>"));
    for name in ["claims", "claims_classes", "claims_paper"] {
        for ext in ["md", "csv", "tex"] {
            assert!(
                summary.tables.contains(&format!("tables/{name}.{ext}")),
                "{name}.{ext}"
            );
        }
    }
    let claims: breakingbed::report::claims::ClaimsReport =
        serde_json::from_str(&std::fs::read_to_string(out.join("tables/claims.json")).unwrap())
            .unwrap();
    assert_eq!(
        (claims.resamples, claims.seed, claims.images),
        (2000, 0, 20)
    );
    let md = std::fs::read_to_string(out.join("tables/claims.md")).unwrap();
    assert!(md.contains("REFUTED if CI high < 0"), "{md}");
    assert!(html.contains("<td class=\"v-confirmed\">CONFIRMED</td>"));
    // Offline: every link is relative and resolves inside the folder.
    for l in links(&html) {
        assert!(
            !l.contains("://") && !l.starts_with('/'),
            "non-relative link {l}"
        );
        assert!(out.join(&l).is_file(), "broken link {l}");
    }
    for id in [
        "table-table4_fgsm",
        "table-table5_pgd",
        "table-table6_genattack",
        "table-classification",
        "table-pgd_breaking",
        "table-boxplot_stats",
        "table-settings",
        "table-table3_cam_q3",
    ] {
        assert!(html.contains(&format!("<table id=\"{id}\"")), "{id}");
    }
    // CAM grid: 2 variants x 3 panels, each an embedded PNG (base64 of the PNG signature), plus
    // the colour bar (also an embedded PNG).
    let cam = std::fs::read_to_string(out.join("figures/table3_cam.svg")).unwrap();
    assert_eq!(cam.matches("<image ").count(), 6 + 1);
    assert_eq!(
        cam.matches("href=\"data:image/png;base64,iVBORw0KGgo")
            .count(),
        6 + 1
    );
    // The settings note is shown escaped.
    assert!(html.contains("20 images &lt;test &amp; check&gt;"));
    // Every (variant, attack) with a stress axis is classified: 5 variants x 6 attacks.
    assert_eq!(summary.classifications.len(), 30);
    let m: ReportMetrics =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m.cells.len(), summary.cells);
    assert_eq!(
        m.pgd
            .iter()
            .filter(|c| c.per_rerun_breaking.len() == 5)
            .count(),
        5
    );
}

#[test]
fn tables_carry_hand_computed_numbers() {
    let records = load_records(format!("{DATA}/small.jsonl"), false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary = write_report(&records, &ReportInputs::default(), dir.path()).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("tables/table4_fgsm.csv")).unwrap();
    // Worked out in tests/report_metrics.rs: vanilla 100% clean, 50% at eps 2, 0% at eps 8;
    // xnor 50% clean and after both attacks.
    assert_eq!(
        csv,
        "Variant,Nat. Acc [%],eps=2,eps=8\r\n\
         resnet20-vanilla,100.00,50.00,0.00\r\n\
         resnet20-xnor,50.00,50.00,50.00\r\n"
    );
    let md = std::fs::read_to_string(dir.path().join("tables/table4_fgsm.md")).unwrap();
    assert!(
        md.contains("| resnet20-vanilla | 100.00 | 50.00 | 0.00 |"),
        "{md}"
    );
    let cls = std::fs::read_to_string(dir.path().join("tables/classification.csv")).unwrap();
    assert!(
        cls.contains("resnet20-vanilla,fgsm,ductile,0.850,1.000"),
        "{cls}"
    );
    assert!(
        cls.contains("resnet20-xnor,fgsm,strong,never,0.000"),
        "{cls}"
    );
    // No PGD, GenAttack or CAM data: those parts are absent, not empty.
    assert!(!summary
        .figures
        .iter()
        .any(|f| f.contains("fig2") || f.contains("cam")));
    assert!(!dir.path().join("tables/table6_genattack.csv").exists());
}

fn listing(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn refuses_non_empty_output_unless_forced() {
    let records = load_records(format!("{DATA}/small.jsonl"), false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "keep me").unwrap();
    let e = write_report(&records, &ReportInputs::default(), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&dir.path().display().to_string()) && e.contains("force"),
        "{e}"
    );
    assert_eq!(listing(dir.path()), vec!["notes.txt"]);
    let forced = ReportInputs {
        force: true,
        ..ReportInputs::default()
    };
    write_report(&records, &forced, dir.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "keep me"
    );
    assert!(dir.path().join("index.html").is_file());
    // A file where the directory should be.
    let e = write_report(&records, &forced, &dir.path().join("notes.txt")).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
}

#[test]
fn bad_input_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let e = write_report(&[], &ReportInputs::default(), &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no sweep records"), "{e}");
    let records = load_records(format!("{DATA}/small.jsonl"), false).unwrap();
    let mut inputs = full_inputs();
    inputs.cam_rows[1].panels[2].class = 99;
    let e = write_report(&records, &inputs, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("DeepFool i=5") && e.contains("class 99"), "{e}");
    let zero = ReportInputs {
        classes: 1,
        ..ReportInputs::default()
    };
    assert!(write_report(&records, &zero, &out)
        .unwrap_err()
        .to_string()
        .contains("classes"));
    assert!(!out.exists());
}

#[test]
fn report_from_paths_stops_on_a_corrupt_line_or_skips_it() {
    use breakingbed::report::report_from_paths;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let e = report_from_paths(
        &[format!("{DATA}/corrupt.jsonl")],
        false,
        &ReportInputs::default(),
        &out,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("corrupt.jsonl:3"), "{e}");
    assert!(!out.exists());
    let s = report_from_paths(
        &[format!("{DATA}/corrupt.jsonl")],
        true,
        &ReportInputs::default(),
        &out,
    )
    .unwrap();
    assert_eq!(s.records, 4);
}

#[test]
fn pgd_figure_shows_the_long_runs_with_breaking_line() {
    let records = synthetic_sweep(3, 10);
    let dir = tempfile::tempdir().unwrap();
    let s = write_report(&records, &ReportInputs::default(), dir.path()).unwrap();
    let fig2: Vec<&String> = s.figures.iter().filter(|f| f.contains("fig2")).collect();
    // One figure per model for the 100-iteration traced runs, none for the i = 2..5 grid.
    assert_eq!(fig2.len(), 2);
    let svg = std::fs::read_to_string(dir.path().join(fig2[0])).unwrap();
    assert!(
        svg.contains("i=100") && svg.contains("breaking line 10%"),
        "title and breaking line"
    );
    for v in ["resnet20-vanilla", "resnet20-xnor", "resnet20-kd-kl"] {
        assert!(svg.contains(v), "legend lacks {v}");
    }
    // 20 classes move the breaking line to 5%.
    let dir2 = tempfile::tempdir().unwrap();
    let twenty = ReportInputs {
        classes: 20,
        ..ReportInputs::default()
    };
    let s = write_report(&records, &twenty, dir2.path()).unwrap();
    let f = s.figures.iter().find(|f| f.contains("fig2")).unwrap();
    assert!(std::fs::read_to_string(dir2.path().join(f))
        .unwrap()
        .contains("breaking line 5%"));
}

#[test]
fn inconsistent_or_duplicated_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let mut records = load_records(format!("{DATA}/small.jsonl"), false).unwrap();
    records.push(records[0].clone());
    let e = write_report(&records, &ReportInputs::default(), &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("duplicate") && e.contains("image 0"), "{e}");
    records.pop();
    records[1].variant_kind = "pruned".into();
    let e = write_report(&records, &ReportInputs::default(), &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("resnet20-vanilla") && e.contains("pruned"),
        "{e}"
    );
    assert!(!out.exists());
}
