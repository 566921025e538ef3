//! Figure quality: tick choice, axis ranges, series styles, legend placement, units, the CAM
//! image choice and colour bar, PNG rendering and the LaTeX/CSV tables. Geometry is checked with
//! the layout each figure returns (the same data-to-pixel mapping that drew it).

use crate::report_support;

use breakingbed::report::axes::{integer_ticks, real_ticks, Axis};
use breakingbed::report::cam::{choose_cam_image, jet, CamImageChoice};
use breakingbed::report::metrics::{PgdCurve, StrainCurve, StrainPoint};
use breakingbed::report::plots::{
    boxplot_svg, cam_grid_svg, pgd_svg, stress_strain_svg, Figure, COLOUR_BAR_TICKS,
};
use breakingbed::report::raster::Rasterizer;
use breakingbed::report::style::{Family, Marker, Rgb, SeriesStyle, Styles, PER_FAMILY, TOL_MUTED};
use breakingbed::report::tables::{latex_escape, Table};
use breakingbed::report::{write_report, ReportInputs, Setting};
use proptest::prelude::*;
use report_support::*;

/// The ten variants of a full run (one model), kinds as the sweep records them.
const TEN: [(&str, &str); 10] = [
    ("resnet20-vanilla", "vanilla"),
    ("resnet20-kd", "kd-kl"),
    ("resnet20-filter", "filter-prune"),
    ("resnet20-channel", "ch-prune"),
    ("resnet20-kernel", "kernel-prune"),
    ("resnet20-weight", "weight-prune"),
    ("resnet20-xnor", "xnor"),
    ("resnet20-abc3", "abc3"),
    ("resnet20-abc5x5", "abc5x5"),
    ("resnet20-abc3x1", "abc3x1"),
];

fn ten_styles() -> Styles {
    Styles::new(TEN)
}

proptest! {
    #[test]
    fn integer_ticks_are_distinct_covering_and_few(
        lo in -2000i64..2000, span in 0i64..5000, max in 0usize..12
    ) {
        let hi = lo + span;
        let t = integer_ticks(lo, hi, max);
        prop_assert!(t.len() >= 2 || (t.len() == 1 && span == 0), "{t:?}");
        prop_assert!(t.len() <= max.max(3), "{t:?} has more than {max}");
        prop_assert!(t[0] <= lo && *t.last().unwrap() >= hi, "{t:?} does not cover {lo}..{hi}");
        prop_assert!(t.windows(2).all(|w| w[1] > w[0]), "{t:?} not strictly increasing");
        let step = if t.len() >= 2 { t[1] - t[0] } else { 1 };
        prop_assert!(t.windows(2).all(|w| w[1] - w[0] == step), "{t:?} uneven");
    }

    #[test]
    fn real_ticks_cover_and_are_few(lo in -1e4f64..1e4, span in 1e-6f64..1e5, max in 0usize..12) {
        let hi = lo + span;
        let t = real_ticks(lo, hi, max);
        prop_assert!(t.len() <= max.max(3) && t.len() >= 2, "{t:?}");
        let eps = 1e-9 * span.max(lo.abs());
        prop_assert!(t[0] <= lo + eps && *t.last().unwrap() >= hi - eps, "{t:?} vs {lo}..{hi}");
        prop_assert!(t.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn axis_holds_every_value_strictly_inside(
        v in proptest::collection::vec(-1e3f64..1e3, 1..40), integer in any::<bool>()
    ) {
        let v: Vec<f64> = if integer { v.iter().map(|x| x.round()).collect() } else { v };
        let a = Axis::from_data(v.iter().copied(), integer, 7);
        for &x in &v {
            prop_assert!(a.lo < x && x < a.hi, "{x} not inside {}..{}", a.lo, a.hi);
        }
        // Tick labels are distinct (no "0 0 1 2 2 2 3").
        let labels: Vec<String> = a.ticks.iter().map(|&t| a.label(t)).collect();
        let mut dedup = labels.clone();
        dedup.dedup();
        prop_assert_eq!(labels, dedup);
    }
}

#[test]
fn palette_is_paul_tol_muted_grouped_by_family() {
    // Paul Tol, "Colour Schemes" (SRON/EPS/TN/09-002), muted qualitative scheme.
    let cited = [
        "#332288", "#88ccee", "#44aa99", "#117733", "#999933", "#ddcc77", "#cc6677", "#882255",
        "#aa4499",
    ];
    let ours: Vec<String> = TOL_MUTED.iter().map(|c| c.hex()).collect();
    assert_eq!(ours, cited);
    for f in [Family::FullPrecision, Family::Pruned, Family::Binarized] {
        for c in f.colours() {
            assert!(TOL_MUTED.contains(c), "{f}: {c:?} not from the palette");
        }
    }
    assert_eq!(Family::of_kind("vanilla"), Family::FullPrecision);
    assert_eq!(Family::of_kind("kd-kl"), Family::FullPrecision);
    assert_eq!(Family::of_kind("weight-prune"), Family::Pruned);
    assert_eq!(Family::of_kind("ch-prune"), Family::Pruned);
    assert_eq!(Family::of_kind("abc5x5"), Family::Binarized);
    assert_eq!(Family::of_kind("xnor"), Family::Binarized);
    assert_eq!(Family::of_kind("mystery"), Family::Other);
}

#[test]
fn family_colours_differ_in_greyscale() {
    // Relative luminance: white 1, black 0, sRGB mid-grey 0x77 about 0.184 (WCAG formula).
    assert!((Rgb(255, 255, 255).luminance() - 1.0).abs() < 1e-12);
    assert_eq!(Rgb(0, 0, 0).luminance(), 0.0);
    assert!((Rgb(0x77, 0x77, 0x77).luminance() - 0.1845).abs() < 1e-3);
    let fams = [Family::FullPrecision, Family::Pruned, Family::Binarized];
    for (i, a) in fams.iter().enumerate() {
        for b in &fams[i + 1..] {
            let (la, lb) = (a.colours()[0].luminance(), b.colours()[0].luminance());
            assert!((la - lb).abs() > 0.03, "{a} {la:.3} vs {b} {lb:.3}");
        }
    }
}

#[test]
fn every_pair_of_series_differs_in_marker_and_dash() {
    // The ten variants of a run plus many more of one family than there are markers.
    let mut names: Vec<(String, String)> = TEN
        .iter()
        .map(|(n, k)| (n.to_string(), k.to_string()))
        .collect();
    // Binarized: 4 of the ten plus 17 = PER_FAMILY.
    names.extend((0..PER_FAMILY - 4).map(|k| (format!("extra-xnor-{k}"), "xnor".to_string())));
    names.extend((0..3).map(|k| (format!("odd-{k}"), "mystery".to_string())));
    let styles = Styles::new(names.iter().map(|(n, k)| (n.as_str(), k.as_str())));
    let all: Vec<(String, SeriesStyle)> = names
        .iter()
        .map(|(n, _)| (n.clone(), styles.lookup(n).unwrap()))
        .collect();
    for (i, (na, a)) in all.iter().enumerate() {
        for (nb, b) in &all[i + 1..] {
            assert!(
                (a.marker, a.dash) != (b.marker, b.dash),
                "{na} and {nb} share marker {:?} and dash {:?}",
                a.marker,
                a.dash
            );
        }
        assert_eq!(a.family, Family::of_kind(&names[i].1));
        assert!(a.family.colours().contains(&a.colour), "{na}");
    }
    // The issue's look-alikes are now in different families and colours.
    let s = ten_styles();
    let get = |n: &str| s.lookup(n).unwrap();
    assert_ne!(get("resnet20-abc5x5").colour, get("resnet20-weight").colour);
    assert_ne!(get("resnet20-vanilla").colour, get("resnet20-abc3").colour);
    assert_ne!(
        (get("resnet20-vanilla").marker, get("resnet20-vanilla").dash),
        (get("resnet20-kd").marker, get("resnet20-kd").dash)
    );
    assert_eq!(Marker::ALL.len(), 7);
}

/// Ten PGD curves of `n` tracked iterations (0..n-1), curves crossing each other.
fn ten_pgd(n: usize) -> Vec<PgdCurve> {
    TEN.iter()
        .enumerate()
        .map(|(k, (v, _))| {
            let iterations: Vec<usize> = (0..n).collect();
            let accuracy = iterations
                .iter()
                .map(|&i| (0.9 - 0.08 * k as f32) * (-(i as f32) / (1.0 + k as f32)).exp())
                .collect();
            let loss = iterations
                .iter()
                .map(|&i| Some(0.3 + 0.2 * i as f32 * (1.0 + k as f32 / 3.0)))
                .collect();
            PgdCurve {
                variant: v.to_string(),
                model: "resnet20".into(),
                setting: Setting::default(),
                iterations,
                accuracy,
                loss,
                per_rerun_breaking: Vec::new(),
                mean_breaking: None,
                unbroken: 0,
                breaking_of_mean: None,
            }
        })
        .collect()
}

/// Every plotted point strictly inside its panel; the legend touches no point and no panel.
fn check_layout(fig: &Figure, what: &str) {
    assert!(!fig.panels.is_empty(), "{what}");
    for p in &fig.panels {
        assert!(!p.points.is_empty(), "{what}: panel without points");
        for &pt in &p.points {
            assert!(
                p.frame.area.contains_strictly(pt),
                "{what}: point {pt:?} not strictly inside {:?}",
                p.frame.area
            );
            if let Some(l) = fig.legend {
                // Marker radius and line width around the point.
                assert!(!l.touches(pt, 5.0), "{what}: legend {l:?} covers {pt:?}");
            }
        }
        if let Some(l) = fig.legend {
            let a = p.frame.area;
            let apart =
                l.x >= a.x + a.w || l.x + l.w <= a.x || l.y >= a.y + a.h || l.y + l.h <= a.y;
            assert!(apart, "{what}: legend {l:?} overlaps the plot area {a:?}");
            assert!(
                l.x + l.w <= fig.width && l.y + l.h <= fig.height,
                "{what}: legend cut off"
            );
        }
    }
}

#[test]
fn pgd_figure_has_integer_ticks_and_a_legend_off_the_curves() {
    let styles = ten_styles();
    for n in [4usize, 7, 21, 101] {
        let fig = pgd_svg("PGD", &ten_pgd(n), 10, &styles).unwrap();
        check_layout(&fig, &format!("pgd n={n}"));
        assert_eq!(fig.panels.len(), 2, "accuracy and loss panels");
        let x = &fig.panels[0].frame.x;
        let labels: Vec<String> = x.ticks.iter().map(|&t| x.label(t)).collect();
        for (t, l) in x.ticks.iter().zip(&labels) {
            assert_eq!(*t, t.round(), "non-integer tick {t}");
            assert_eq!(l.parse::<f64>().unwrap(), *t);
            assert!(
                fig.svg.contains(&format!(">{l}</text>")),
                "tick {l} not drawn"
            );
        }
        let mut d = labels.clone();
        d.dedup();
        assert_eq!(labels, d, "repeated tick labels");
        assert!(x.ticks[0] <= 0.0 && *x.ticks.last().unwrap() >= (n - 1) as f64);
        // Ten series + breaking line in the legend, each series drawn once per panel.
        assert_eq!(fig.svg.matches("<polyline").count(), 20);
    }
    // The issue's case: iterations 0..3 read 0 1 2 3.
    let fig = pgd_svg("PGD", &ten_pgd(4), 10, &styles).unwrap();
    assert_eq!(fig.panels[0].frame.x.ticks, vec![0.0, 1.0, 2.0, 3.0]);
}

#[test]
fn stress_strain_range_comes_from_the_data() {
    let styles = ten_styles();
    // Negative strain (an attack that "helps"), as the xnor line in the issue.
    let curves: Vec<StrainCurve> = TEN
        .iter()
        .enumerate()
        .map(|(k, (v, kind))| StrainCurve {
            variant: v.to_string(),
            variant_kind: kind.to_string(),
            model: "resnet20".into(),
            attack: "fgsm".into(),
            points: [2.0f32, 4.0, 8.0, 16.0]
                .iter()
                .map(|&s| StrainPoint {
                    stress: s,
                    strain: (s / 16.0) * (1.0 - 0.15 * k as f32) - 0.05 * (k % 3) as f32 - 0.33,
                    accuracy: 0.5,
                })
                .collect(),
        })
        .collect();
    let fig = stress_strain_svg("fgsm", "eps [pixel, 0-255]", false, &curves, &styles).unwrap();
    check_layout(&fig, "stress-strain");
    let y = &fig.panels[0].frame.y;
    let min = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.strain))
        .fold(0.0f32, f32::min);
    assert!(y.lo < f64::from(min), "{} vs {min}", y.lo);
    assert!(fig.svg.contains(">eps [pixel, 0-255]</text>"));
    // Integer stress (iterations): integer ticks.
    let fig = stress_strain_svg("deepfool", "iterations", true, &curves, &styles).unwrap();
    assert!(fig.panels[0].frame.x.ticks.iter().all(|t| *t == t.round()));
}

#[test]
fn boxplot_values_lie_inside() {
    let records = synthetic_sweep(3, 20);
    let cells = breakingbed::report::metrics::cell_metrics(&records);
    let boxes = breakingbed::report::metrics::attack_boxes(&cells).unwrap();
    let styles = Styles::new(
        boxes
            .iter()
            .map(|b| (b.variant_kind.as_str(), b.variant_kind.as_str())),
    );
    let bs: Vec<(String, _)> = boxes
        .iter()
        .filter(|b| b.attack == "fgsm")
        .map(|b| (b.variant_kind.clone(), b.stats.clone()))
        .collect();
    let fig = boxplot_svg("fgsm", &bs, &styles).unwrap();
    check_layout(&fig, "boxplot");
}

#[test]
fn report_axes_carry_units() {
    let dir = tempfile::tempdir().unwrap();
    let summary = write_report(
        &synthetic_sweep(5, 10),
        &ReportInputs::default(),
        dir.path(),
    )
    .unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    assert!(read("figures/fig3_fgsm_resnet20.svg").contains(">eps [pixel, 0-255]</text>"));
    assert!(
        read("figures/fig3_pgd_resnet20.svg").contains(">eps [pixel, 0-255], fixed i = 3</text>")
    );
    assert!(read("figures/fig3_deepfool_resnet20.svg").contains(">iterations</text>"));
    // A fixed eps carries its unit too (the synthetic sweep records LocalSearch and GenAttack
    // budgets on the pixel scale).
    assert!(read("figures/fig3_localsearch_resnet20.svg")
        .contains(">iterations, fixed eps = 16 [pixel, 0-255]</text>"));
    assert!(read("figures/fig3_genattack_resnet20.svg")
        .contains(">generations, fixed eps = 8 [pixel, 0-255], N = 16</text>"));
    assert!(read("figures/fig2_pgd_resnet20_0.svg").contains(">accuracy [%]</text>"));
    assert_eq!(summary.pngs.len(), summary.figures.len());
}

fn rec(variant: &str, index: usize, correct: bool) -> breakingbed::report::SweepRecord {
    let label = index % 10;
    let clean = if correct { label } else { (label + 1) % 10 };
    record(
        variant,
        "vanilla",
        "FGSM",
        eps(2.0),
        0,
        result(index, label, clean, clean, None),
    )
}

#[test]
fn cam_image_is_the_lowest_that_every_entry_gets_right() {
    let entries: Vec<String> = ["a-x", "b-x", "c-x"].map(String::from).to_vec();
    // Image 601 (lowest index) is wrong for two entries; 605 right for all; 700 right for all.
    let mut recs = Vec::new();
    for (img, ok) in [
        (601, [true, false, false]),
        (700, [true; 3]),
        (605, [true; 3]),
    ] {
        for (e, ok) in entries.iter().zip(ok) {
            recs.push(rec(e, img, ok));
        }
    }
    let c = choose_cam_image(&recs, &entries).unwrap();
    assert_eq!(
        c,
        CamImageChoice {
            index: 605,
            correct: 3,
            entries: 3
        }
    );
    assert!(c.all_correct() && c.describe().contains("Test image 605"));
    // One wrong record of an entry on an image makes it wrong there.
    recs.push(rec("c-x", 605, false));
    assert_eq!(choose_cam_image(&recs, &entries).unwrap().index, 700);
    // No image right for all: the one most get right, lowest on ties; and an entry with no
    // records of an image does not count as right.
    let recs = vec![
        rec("a-x", 3, true),
        rec("b-x", 3, true),
        rec("a-x", 1, true),
        rec("c-x", 1, true),
        rec("b-x", 1, false),
        rec("a-x", 0, true),
    ];
    let c = choose_cam_image(&recs, &entries).unwrap();
    assert_eq!((c.index, c.correct, c.all_correct()), (1, 2, false));
    assert!(c.describe().contains("2 of 3"), "{}", c.describe());
    assert_eq!(choose_cam_image(&[], &entries), None);
}

/// Decode a `data:image/png;base64,` URI with the `image` crate (an independent decoder).
fn decode_uri(uri: &str) -> image::RgbImage {
    let b64 = uri.trim_start_matches("data:image/png;base64,");
    let abc = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut bytes = Vec::new();
    for ch in b64.bytes().filter(|&c| c != b'=') {
        bits = (bits << 6) | abc.iter().position(|&a| a == ch).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            bytes.push((bits >> n) as u8);
        }
    }
    image::load_from_memory(&bytes).unwrap().to_rgb8()
}

#[test]
fn cam_grid_has_a_colour_bar_and_says_which_image() {
    let rows: Vec<(String, Vec<_>)> = synthetic_cams()
        .iter()
        .map(|r| {
            let panels = r
                .panels
                .iter()
                .map(|p| breakingbed::report::cam::render_panel(p).unwrap())
                .collect();
            (r.variant.clone(), panels)
        })
        .collect();
    let note = "Test image 7: the lowest test index that all 2 entries classify correctly.";
    let fig = cam_grid_svg("CAM", note, &rows).unwrap();
    // The note may be wrapped over several <text> lines: join all text contents.
    let texts: Vec<&str> = fig
        .svg
        .split("</text>")
        .filter_map(|t| t.rsplit_once('>').map(|(_, s)| s))
        .collect();
    assert!(texts.join(" ").contains(note), "{texts:?}");
    // The last image is the colour bar: 1 x 256, top = jet(255), bottom = jet(0).
    let last = fig.svg.rfind("href=\"data:image/png").unwrap();
    let uri = &fig.svg[last + 6..];
    let bar = decode_uri(&uri[..uri.find('"').unwrap()]);
    assert_eq!(bar.dimensions(), (1, 256));
    for y in 0..256u32 {
        assert_eq!(bar.get_pixel(0, y).0, jet(255 - y as u8), "row {y}");
    }
    for t in COLOUR_BAR_TICKS {
        assert!(fig.svg.contains(&format!(">{t}</text>")), "tick {t}");
    }
}

#[test]
fn png_is_at_print_resolution_with_text() {
    let raster = match Rasterizer::new() {
        Ok(r) => r,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED png_is_at_print_resolution_with_text: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    // A 96 x 48 px figure: a black square at (8, 8)-(24, 24) and a word at the right.
    let svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"96\" height=\"48\" \
               font-family=\"DejaVu Sans, Liberation Sans, sans-serif\">\
               <rect x=\"8\" y=\"8\" width=\"16\" height=\"16\" fill=\"#000000\"/>\
               <text x=\"40\" y=\"30\" font-size=\"14\">Wg</text></svg>";
    let png = raster.png(svg, 300.0, "test").unwrap();
    // pHYs: 300 dpi = 11811 pixels per metre, right after IHDR.
    assert_eq!(&png[37..41], b"pHYs");
    assert_eq!(u32::from_be_bytes(png[41..45].try_into().unwrap()), 11811);
    let img = image::load_from_memory(&png).unwrap().to_rgb8();
    // 1 in x 0.5 in at 300 dpi.
    assert_eq!(img.dimensions(), (300, 150));
    let s = 300.0 / 96.0;
    let px = |x: f64, y: f64| img.get_pixel((x * s) as u32, (y * s) as u32).0;
    assert_eq!(px(16.0, 16.0), [0, 0, 0]);
    assert_eq!(px(4.0, 4.0), [255, 255, 255]);
    assert_eq!(px(30.0, 16.0), [255, 255, 255]);
    // The text left ink in its box (x 40-75, y 18-34) and none elsewhere right of the square.
    let ink = |x0: f64, x1: f64, y0: f64, y1: f64| {
        let mut n = 0;
        for y in (y0 * s) as u32..(y1 * s) as u32 {
            for x in (x0 * s) as u32..(x1 * s) as u32 {
                if img.get_pixel(x, y).0[0] < 128 {
                    n += 1;
                }
            }
        }
        n
    };
    assert!(ink(40.0, 75.0, 18.0, 34.0) > 200, "no text rendered");
    assert_eq!(ink(30.0, 96.0, 0.0, 12.0), 0);
}

#[test]
fn latex_escapes_every_special_character() {
    assert_eq!(
        latex_escape(r"a\b&c%d$e#f_g{h}i~j^k<l>m|n"),
        r"a\textbackslash{}b\&c\%d\$e\#f\_g\{h\}i\textasciitilde{}j\textasciicircum{}k\textless{}l\textgreater{}m\textbar{}n"
    );
    assert_eq!(latex_escape("eps=2 (0-255), i=3"), "eps=2 (0-255), i=3");
    let t = Table {
        title: "Accuracy [%] after FGSM & co".into(),
        header: vec!["Variant".into(), "eps=2".into(), "OA/TA".into()],
        rows: vec![
            vec!["resnet20_xnor".into(), "50.00".into(), "10.00/-".into()],
            vec!["resnet20-vanilla".into(), "-".into(), "1.50/2.00".into()],
        ],
    };
    let tex = t.to_latex("table4_fgsm");
    let want = "% Needs \\usepackage{booktabs}.\n\\begin{table}[t]\n\\centering\n\
                \\caption{Accuracy [\\%] after FGSM \\& co}\n\\label{tab:table4-fgsm}\n\
                \\begin{tabular}{lrr}\n\\toprule\nVariant & eps=2 & OA/TA \\\\\n\\midrule\n\
                resnet20\\_xnor & 50.00 & 10.00/- \\\\\nresnet20-vanilla & - & 1.50/2.00 \\\\\n\
                \\bottomrule\n\\end{tabular}\n\\end{table}\n";
    assert_eq!(tex, want);
}

#[test]
fn csv_round_trips_through_a_csv_parser() {
    let t = Table {
        title: "t".into(),
        header: vec!["a,b".into(), "q\"x".into(), "plain".into()],
        rows: vec![
            vec!["line\nbreak".into(), "cr\rlf".into(), "".into()],
            vec!["\"quoted\"".into(), " spaced ".into(), "x|y".into()],
        ],
    };
    let csv = t.to_csv();
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.as_bytes());
    let parsed: Vec<Vec<String>> = rd
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let mut want = vec![t.header.clone()];
    want.extend(t.rows.clone());
    assert_eq!(parsed, want);
}
