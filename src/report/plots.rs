//! SVG figures of the paper's Section 4, each a [`Figure`]: the SVG document and its layout (the
//! pixel frames of its panels, the pixel position of every plotted point and the legend box), so
//! tests check the picture's geometry from the same mapping that drew it.
//! - [`pgd_svg`]: PGD accuracy [%] (top panel) and loss (bottom panel) against iteration, with
//!   the breaking line `100/classes %` (Fig. 2);
//! - [`stress_strain_svg`]: strain against attack stress per variant, origin included (Fig. 3);
//! - [`boxplot_svg`]: post-attack accuracy [%] per variant kind for one attack (Fig. 4), drawn
//!   from [`BoxStats`] so the figure shows exactly the documented quartile/whisker convention;
//! - [`cam_grid_svg`]: CAM overlays, variants as rows, panels as columns, with a colour bar
//!   (Table 3), each panel an embedded PNG scaled with `image-rendering: pixelated`.
//!
//! Conventions: series styles come from one [`Styles`] map per report (colour by family, marker
//! and dash per series, see [`super::style`]); axis ranges and ticks from [`super::axes`] (data
//! strictly inside, integer ticks on count axes); legends sit to the right of the plot area, so
//! they never cover a curve. Sizes are CSS pixels (1/96 in): a 760 px figure is 7.9 in wide.
//! Non-finite values are not drawn.

use super::axes::{text_width, Axis, Frame, Rect};
use super::cam::{jet, CamPanel};
use super::metrics::{BoxStats, PgdCurve, StrainCurve};
use super::png::png_data_uri;
use super::style::{Rgb, SeriesStyle, Styles};
use super::tables::html_escape;
use crate::{Error, Result};

/// Font stack of all figure text (DejaVu Sans is Debian's `fonts-dejavu-core`).
pub const FONT_FAMILY: &str = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif";

const TITLE_SIZE: f64 = 16.0;
const LABEL_SIZE: f64 = 13.0;
const TICK_SIZE: f64 = 11.5;
const LEGEND_SIZE: f64 = 12.0;
const LEGEND_ROW: f64 = 19.0;
const LEGEND_GLYPH: f64 = 36.0;
const MARKER_R: f64 = 3.6;
const LINE_W: f64 = 1.8;
/// Plot-area width of the line figures.
const PLOT_W: f64 = 500.0;
/// Left margin (y tick labels and axis label).
const LEFT: f64 = 72.0;
const GRID: &str = "#e4e4e4";
const REFERENCE: Rgb = Rgb(0x66, 0x66, 0x66);

/// One plot panel's layout.
#[derive(Clone, Debug, PartialEq)]
pub struct PanelLayout {
    pub frame: Frame,
    /// Pixel positions of every plotted data point (markers, line vertices, reference lines).
    pub points: Vec<(f64, f64)>,
}

/// A rendered figure and its layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub svg: String,
    pub width: f64,
    pub height: f64,
    pub panels: Vec<PanelLayout>,
    /// The legend box, if the figure has a legend.
    pub legend: Option<Rect>,
}

/// A small SVG writer (numbers with 0.1 px precision).
struct Svg {
    body: String,
}

impl Svg {
    fn new() -> Svg {
        Svg {
            body: String::new(),
        }
    }

    fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, text: &str) {
        self.body += &format!(
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" text-anchor=\"{anchor}\">{}</text>\n",
            html_escape(text)
        );
    }

    fn text_rotated(&mut self, x: f64, y: f64, size: f64, anchor: &str, deg: f64, text: &str) {
        self.body += &format!(
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" text-anchor=\"{anchor}\" \
             transform=\"rotate({deg} {x:.1} {y:.1})\">{}</text>\n",
            html_escape(text)
        );
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), attrs: &str) {
        self.body += &format!(
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" {attrs}/>\n"
        );
    }

    fn polyline(&mut self, pts: &[(f64, f64)], attrs: &str) {
        if pts.len() < 2 {
            return;
        }
        let p: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        self.body += &format!("<polyline points=\"{}\" {attrs}/>\n", p.join(" "));
    }

    fn rect(&mut self, r: Rect, attrs: &str) {
        self.body += &format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" {attrs}/>\n",
            r.x, r.y, r.w, r.h
        );
    }

    fn finish(self, width: f64, height: f64) -> String {
        let (w, h) = (width.ceil(), height.ceil());
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" font-family=\"{FONT_FAMILY}\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
            self.body
        )
    }
}

/// Grid, frame, ticks and axis labels of a panel; x tick labels only when `x_label` is set.
fn draw_axes(svg: &mut Svg, f: &Frame, x_label: Option<&str>, y_label: &str) {
    let a = f.area;
    let grid = format!("stroke=\"{GRID}\" stroke-width=\"1\"");
    let tick = "stroke=\"black\" stroke-width=\"1\"";
    for &t in &f.x.ticks {
        let x = f.px(t);
        svg.line((x, a.y), (x, a.y + a.h), &grid);
        svg.line((x, a.y + a.h), (x, a.y + a.h + 5.0), tick);
        if x_label.is_some() {
            svg.text(x, a.y + a.h + 19.0, TICK_SIZE, "middle", &f.x.label(t));
        }
    }
    for &t in &f.y.ticks {
        let y = f.py(t);
        svg.line((a.x, y), (a.x + a.w, y), &grid);
        svg.line((a.x - 5.0, y), (a.x, y), tick);
        svg.text(a.x - 8.0, y + 4.0, TICK_SIZE, "end", &f.y.label(t));
    }
    svg.rect(a, "fill=\"none\" stroke=\"black\" stroke-width=\"1\"");
    if let Some(l) = x_label {
        svg.text(a.x + a.w / 2.0, a.y + a.h + 40.0, LABEL_SIZE, "middle", l);
    }
    svg.text_rotated(
        a.x - LEFT + 18.0,
        a.y + a.h / 2.0,
        LABEL_SIZE,
        "middle",
        -90.0,
        y_label,
    );
}

/// One legend row: a line glyph in a style (with marker) or a plain reference line.
enum Glyph {
    Series(SeriesStyle),
    Reference,
}

fn legend_width(entries: &[(String, Glyph)]) -> f64 {
    let text = entries
        .iter()
        .map(|(l, _)| text_width(l, LEGEND_SIZE))
        .fold(0.0, f64::max);
    LEGEND_GLYPH + 20.0 + text
}

/// Draws the legend with its top-left corner at (`x`, `y`); returns its box.
fn draw_legend(svg: &mut Svg, x: f64, y: f64, entries: &[(String, Glyph)]) -> Rect {
    let r = Rect {
        x,
        y,
        w: legend_width(entries),
        h: entries.len() as f64 * LEGEND_ROW + 8.0,
    };
    svg.rect(r, "fill=\"white\" stroke=\"#999999\" stroke-width=\"0.8\"");
    for (k, (label, glyph)) in entries.iter().enumerate() {
        let cy = y + 4.0 + LEGEND_ROW * (k as f64 + 0.5);
        let (x0, x1) = (x + 6.0, x + 6.0 + LEGEND_GLYPH);
        match glyph {
            Glyph::Series(s) => {
                svg.line((x0, cy), (x1, cy), &s.stroke_attrs(LINE_W));
                svg.body += &s.marker.svg((x0 + x1) / 2.0, cy, MARKER_R, s.colour);
                svg.body += "\n";
            }
            Glyph::Reference => svg.line((x0, cy), (x1, cy), &reference_attrs()),
        }
        svg.text(x1 + 8.0, cy + 4.0, LEGEND_SIZE, "start", label);
    }
    r
}

fn reference_attrs() -> String {
    format!(
        "stroke=\"{}\" stroke-width=\"1.4\" stroke-dasharray=\"9 2 1 2\"",
        REFERENCE.hex()
    )
}

/// Draws one series (line, and markers on at most ~20 of its points); returns the pixel points.
fn draw_series(svg: &mut Svg, f: &Frame, data: &[(f64, f64)], s: SeriesStyle) -> Vec<(f64, f64)> {
    let px: Vec<(f64, f64)> = data
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|&p| f.pixel(p))
        .collect();
    svg.polyline(&px, &s.stroke_attrs(LINE_W));
    let every = px.len().div_ceil(20).max(1);
    for (k, &(x, y)) in px.iter().enumerate() {
        if k % every == 0 || k + 1 == px.len() {
            svg.body += &s.marker.svg(x, y, MARKER_R, s.colour);
            svg.body += "\n";
        }
    }
    px
}

/// `text` split at spaces into lines of at most `width` pixels (estimated; a longer word gets a
/// line of its own).
fn wrap(text: &str, width: f64, size: f64) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(l) if text_width(&format!("{l} {word}"), size) <= width => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

fn title(svg: &mut Svg, width: f64, text: &str) {
    svg.text(width / 2.0, 24.0, TITLE_SIZE, "middle", text);
}

/// Fig. 2: PGD accuracy (top) and loss (bottom, when any curve has one) against iteration.
pub fn pgd_svg(
    title_text: &str,
    curves: &[PgdCurve],
    classes: usize,
    styles: &Styles,
) -> Result<Figure> {
    let bl = 100.0 / classes.max(1) as f64;
    let iters = curves
        .iter()
        .flat_map(|c| c.iterations.iter().map(|&i| i as f64));
    let x = Axis::from_data(iters, true, 8);
    let acc_vals = curves
        .iter()
        .flat_map(|c| c.accuracy.iter().map(|&a| 100.0 * f64::from(a)))
        .chain([bl]);
    let y_acc = Axis::from_data(acc_vals, false, 7);
    let loss: Vec<Vec<(f64, f64)>> = curves
        .iter()
        .map(|c| {
            c.iterations
                .iter()
                .zip(&c.loss)
                .filter_map(|(&i, l)| {
                    l.filter(|l| l.is_finite())
                        .map(|l| (i as f64, f64::from(l)))
                })
                .collect()
        })
        .collect();
    let has_loss = loss.iter().any(|l| l.len() >= 2);
    let styles_of: Vec<SeriesStyle> = curves
        .iter()
        .enumerate()
        .map(|(k, c)| styles.style(&c.variant, "", k))
        .collect();
    let mut entries: Vec<(String, Glyph)> = curves
        .iter()
        .zip(&styles_of)
        .map(|(c, s)| (c.variant.clone(), Glyph::Series(*s)))
        .collect();
    entries.push((format!("breaking line {bl:.0}%"), Glyph::Reference));

    let panel_h = 210.0;
    let top = 44.0;
    let gap = 22.0;
    let acc_area = Rect {
        x: LEFT,
        y: top,
        w: PLOT_W,
        h: panel_h,
    };
    let loss_area = Rect {
        y: top + panel_h + gap,
        ..acc_area
    };
    let width = LEFT + PLOT_W + 16.0 + legend_width(&entries) + 12.0;
    let height = if has_loss {
        loss_area.y + panel_h + 52.0
    } else {
        top + panel_h + 52.0
    };
    let mut svg = Svg::new();
    title(&mut svg, width, title_text);
    let acc_frame = Frame {
        area: acc_area,
        x: x.clone(),
        y: y_acc,
    };
    let x_desc = "PGD iteration i";
    draw_axes(
        &mut svg,
        &acc_frame,
        (!has_loss).then_some(x_desc),
        "accuracy [%]",
    );
    let mut acc_points = Vec::new();
    // The breaking line spans the frame; its data points are at the first and last iteration.
    svg.line(
        acc_frame.pixel((x.lo, bl)),
        acc_frame.pixel((x.hi, bl)),
        &reference_attrs(),
    );
    let (i0, i1) = curves
        .iter()
        .flat_map(|c| c.iterations.iter().map(|&i| i as f64))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), i| {
            (a.min(i), b.max(i))
        });
    if i0 <= i1 {
        acc_points.extend([acc_frame.pixel((i0, bl)), acc_frame.pixel((i1, bl))]);
    }
    for (c, s) in curves.iter().zip(&styles_of) {
        let data: Vec<(f64, f64)> = c
            .iterations
            .iter()
            .zip(&c.accuracy)
            .map(|(&i, &a)| (i as f64, 100.0 * f64::from(a)))
            .collect();
        acc_points.extend(draw_series(&mut svg, &acc_frame, &data, *s));
    }
    let mut panels = vec![PanelLayout {
        frame: acc_frame,
        points: acc_points,
    }];
    if has_loss {
        let y_loss = Axis::from_data(loss.iter().flatten().map(|p| p.1), false, 6);
        let loss_frame = Frame {
            area: loss_area,
            x,
            y: y_loss,
        };
        draw_axes(&mut svg, &loss_frame, Some(x_desc), "mean loss");
        let mut pts = Vec::new();
        for (l, s) in loss.iter().zip(&styles_of) {
            pts.extend(draw_series(&mut svg, &loss_frame, l, *s));
        }
        panels.push(PanelLayout {
            frame: loss_frame,
            points: pts,
        });
    }
    let legend = draw_legend(&mut svg, LEFT + PLOT_W + 16.0, top, &entries);
    Ok(Figure {
        svg: svg.finish(width, height),
        width,
        height,
        panels,
        legend: Some(legend),
    })
}

/// Fig. 3: strain against stress for one attack; `x_label` names the stress axis with its unit,
/// `integer_x` asks for integer ticks (iteration counts).
pub fn stress_strain_svg(
    title_text: &str,
    x_label: &str,
    integer_x: bool,
    curves: &[StrainCurve],
    styles: &Styles,
) -> Result<Figure> {
    let data: Vec<Vec<(f64, f64)>> = curves
        .iter()
        .map(|c| {
            std::iter::once((0.0, 0.0))
                .chain(
                    c.points
                        .iter()
                        .map(|p| (f64::from(p.stress), f64::from(p.strain))),
                )
                .collect()
        })
        .collect();
    let x = Axis::from_data(data.iter().flatten().map(|p| p.0), integer_x, 8);
    let y = Axis::from_data(data.iter().flatten().map(|p| p.1), false, 7);
    let styles_of: Vec<SeriesStyle> = curves
        .iter()
        .enumerate()
        .map(|(k, c)| styles.style(&c.variant, &c.variant_kind, k))
        .collect();
    let entries: Vec<(String, Glyph)> = curves
        .iter()
        .zip(&styles_of)
        .map(|(c, s)| (c.variant.clone(), Glyph::Series(*s)))
        .collect();
    let top = 44.0;
    let area = Rect {
        x: LEFT,
        y: top,
        w: PLOT_W,
        h: 300.0,
    };
    let width = LEFT + PLOT_W + 16.0 + legend_width(&entries) + 12.0;
    let height = top + area.h + 52.0;
    let mut svg = Svg::new();
    title(&mut svg, width, title_text);
    let frame = Frame { area, x, y };
    draw_axes(&mut svg, &frame, Some(x_label), "strain (A - A*) / A");
    let mut points = Vec::new();
    for (d, s) in data.iter().zip(&styles_of) {
        points.extend(draw_series(&mut svg, &frame, d, *s));
    }
    let legend = draw_legend(&mut svg, LEFT + PLOT_W + 16.0, top, &entries);
    Ok(Figure {
        svg: svg.finish(width, height),
        width,
        height,
        panels: vec![PanelLayout { frame, points }],
        legend: Some(legend),
    })
}

/// Fig. 4: one box per (kind, stats) for one attack, accuracy after attack in percent.
pub fn boxplot_svg(
    title_text: &str,
    boxes: &[(String, BoxStats)],
    styles: &Styles,
) -> Result<Figure> {
    let n = boxes.len().max(1);
    let values = boxes.iter().flat_map(|(_, s)| {
        [s.lower_whisker, s.q1, s.median, s.q3, s.upper_whisker]
            .into_iter()
            .chain(s.outliers.iter().copied())
            .map(f64::from)
    });
    let y = Axis::from_data(values, false, 7);
    let slot = 80.0f64.max(
        boxes
            .iter()
            .map(|(l, _)| text_width(l, TICK_SIZE) + 12.0)
            .fold(0.0, f64::max),
    );
    let top = 44.0;
    let area = Rect {
        x: LEFT,
        y: top,
        w: (n as f64 * slot).max(300.0),
        h: 300.0,
    };
    let width = LEFT + area.w + 24.0;
    let height = top + area.h + 56.0;
    let x = Axis {
        lo: -0.5,
        hi: n as f64 - 0.5,
        ticks: Vec::new(),
        decimals: 0,
    };
    let frame = Frame { area, x, y };
    let mut svg = Svg::new();
    title(&mut svg, width, title_text);
    draw_axes(&mut svg, &frame, None, "accuracy after attack [%]");
    let mut points = Vec::new();
    for (k, (name, s)) in boxes.iter().enumerate() {
        let st = styles.style(name, name, k);
        let xc = k as f64;
        let half = 0.3;
        let p = |x: f64, v: f32| frame.pixel((x, f64::from(v)));
        let (bl, tr) = (p(xc - half, s.q1), p(xc + half, s.q3));
        let body = Rect {
            x: bl.0,
            y: tr.1,
            w: tr.0 - bl.0,
            h: bl.1 - tr.1,
        };
        svg.rect(
            body,
            &format!(
                "fill=\"{c}\" fill-opacity=\"0.35\" stroke=\"{c}\" stroke-width=\"2\"",
                c = st.colour.hex()
            ),
        );
        let black = "stroke=\"black\" stroke-width=\"1.2\"";
        svg.line(
            p(xc - half, s.median),
            p(xc + half, s.median),
            "stroke=\"black\" stroke-width=\"3\"",
        );
        svg.line(p(xc, s.q3), p(xc, s.upper_whisker), black);
        svg.line(p(xc, s.q1), p(xc, s.lower_whisker), black);
        for w in [s.upper_whisker, s.lower_whisker] {
            svg.line(p(xc - half / 2.0, w), p(xc + half / 2.0, w), black);
        }
        for v in [s.lower_whisker, s.q1, s.median, s.q3, s.upper_whisker] {
            points.push(p(xc, v));
        }
        for &o in &s.outliers {
            let (ox, oy) = p(xc, o);
            svg.body += &format!(
                "<circle cx=\"{ox:.1}\" cy=\"{oy:.1}\" r=\"4\" fill=\"none\" stroke=\"black\"/>\n"
            );
            points.push((ox, oy));
        }
        svg.text(
            frame.px(xc),
            area.y + area.h + 19.0,
            TICK_SIZE,
            "middle",
            name,
        );
    }
    svg.text(
        area.x + area.w / 2.0,
        area.y + area.h + 42.0,
        LABEL_SIZE,
        "middle",
        "variant kind",
    );
    Ok(Figure {
        svg: svg.finish(width, height),
        width,
        height,
        panels: vec![PanelLayout { frame, points }],
        legend: None,
    })
}

/// Ticks of the CAM colour bar (normalised heat-map value, 0-255).
pub const COLOUR_BAR_TICKS: [u8; 5] = [0, 64, 128, 192, 255];

/// Table 3: CAM overlays, one row per (variant, panels), a subtitle (e.g. which image) and a
/// colour bar of the jet map over the normalised CAM value 0-255.
pub fn cam_grid_svg(
    title_text: &str,
    subtitle: &str,
    rows: &[(String, Vec<CamPanel>)],
) -> Result<Figure> {
    const CELL: f64 = 128.0;
    const GAP: f64 = 16.0;
    const LABEL_W: f64 = 170.0;
    const FOOT: f64 = 36.0;
    const BAR_W: f64 = 18.0;
    let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let grid_w = LABEL_W + cols as f64 * (CELL + GAP);
    let grid_h = (rows.len() as f64 * (CELL + FOOT + GAP) - GAP - FOOT).max(CELL);
    let bar_x = grid_w + 12.0;
    let width = (bar_x + BAR_W + 110.0).max(420.0);
    let sub_lines = wrap(subtitle, width - 24.0, LABEL_SIZE);
    let head = 62.0 + 17.0 * sub_lines.len() as f64;
    let height = head + rows.len() as f64 * (CELL + FOOT + GAP);
    let mut svg = Svg::new();
    title(&mut svg, width, title_text);
    for (k, line) in sub_lines.iter().enumerate() {
        svg.text(
            width / 2.0,
            46.0 + 17.0 * k as f64,
            LABEL_SIZE,
            "middle",
            line,
        );
    }
    if let Some((_, first)) = rows.first() {
        for (j, p) in first.iter().enumerate() {
            let x = LABEL_W + j as f64 * (CELL + GAP) + CELL / 2.0;
            svg.text(x, head - 10.0, 14.0, "middle", &p.label);
        }
    }
    for (i, (variant, panels)) in rows.iter().enumerate() {
        let y = head + i as f64 * (CELL + FOOT + GAP);
        svg.text(8.0, y + CELL / 2.0, 14.0, "start", variant);
        for (j, p) in panels.iter().enumerate() {
            if p.width == 0 || p.height == 0 || p.rgb.len() != p.width * p.height * 3 {
                return Err(Error::input(
                    format!("cam panel {variant}/{}", p.label),
                    "panel has no pixels or a wrong pixel count",
                ));
            }
            let x = LABEL_W + j as f64 * (CELL + GAP);
            let uri = png_data_uri(p.width as u32, p.height as u32, &p.rgb);
            svg.body += &format!(
                "<image x=\"{x}\" y=\"{y}\" width=\"{CELL}\" height=\"{CELL}\" \
                 preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\" href=\"{uri}\"/>\n"
            );
            let class = p
                .class_name
                .clone()
                .unwrap_or_else(|| format!("class {}", p.class));
            svg.text(
                x + CELL / 2.0,
                y + CELL + 16.0,
                12.0,
                "middle",
                &format!("{class} | Q3={:.0}", p.q3),
            );
        }
    }
    // Colour bar: a 1 x 256 image of the same jet map, 255 at the top.
    let bar: Vec<u8> = (0..=255u8).rev().flat_map(jet).collect();
    let uri = png_data_uri(1, 256, &bar);
    let (bar_top, bar_h) = (head, grid_h.min(2.0 * CELL + FOOT + GAP));
    svg.body += &format!(
        "<image x=\"{bar_x}\" y=\"{bar_top}\" width=\"{BAR_W}\" height=\"{bar_h:.1}\" \
         preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\" href=\"{uri}\"/>\n"
    );
    svg.rect(
        Rect {
            x: bar_x,
            y: bar_top,
            w: BAR_W,
            h: bar_h,
        },
        "fill=\"none\" stroke=\"black\" stroke-width=\"0.8\"",
    );
    for t in COLOUR_BAR_TICKS {
        let y = bar_top + bar_h * (1.0 - f64::from(t) / 255.0);
        svg.line(
            (bar_x + BAR_W, y),
            (bar_x + BAR_W + 4.0, y),
            "stroke=\"black\" stroke-width=\"1\"",
        );
        svg.text(
            bar_x + BAR_W + 7.0,
            y + 4.0,
            TICK_SIZE,
            "start",
            &t.to_string(),
        );
    }
    svg.text_rotated(
        bar_x + BAR_W + 44.0,
        bar_top + bar_h / 2.0,
        12.0,
        "middle",
        -90.0,
        "CAM value (min-max, 0-255)",
    );
    Ok(Figure {
        svg: svg.finish(width, height),
        width,
        height,
        panels: Vec::new(),
        legend: None,
    })
}
