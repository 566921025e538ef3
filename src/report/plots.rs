//! SVG figures of the paper's Section 4, each returned as a complete SVG document string:
//! - [`pgd_svg`]: PGD accuracy (solid, left axis, %) and loss (dashed, right axis) against
//!   iteration, one colour per variant, with the breaking line `100/classes %` (Fig. 2);
//! - [`stress_strain_svg`]: strain against attack stress per variant, origin included (Fig. 3);
//! - [`boxplot_svg`]: post-attack accuracy [%] per variant kind for one attack (Fig. 4), drawn
//!   from [`BoxStats`] so the figure shows exactly the documented quartile/whisker convention;
//! - [`cam_grid_svg`]: CAM overlays, variants as rows, panels as columns (Table 3), each panel
//!   an embedded PNG scaled with `image-rendering: pixelated` so pixels stay crisp.
//!
//! Colours come from a [`Colours`] map (series name -> `Palette99` index) shared by all figures
//! of a report, so a variant has the same colour everywhere. Non-finite values are not drawn.

use plotters::prelude::*;

use super::cam::CamPanel;
use super::metrics::{BoxStats, PgdCurve, StrainCurve};
use super::png::png_data_uri;
use super::tables::html_escape;
use crate::{Error, Result};

const SIZE: (u32, u32) = (860, 520);

fn plot_err(what: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::input(format!("plot {what}"), e)
}

macro_rules! pe {
    ($what:expr, $e:expr) => {
        $e.map_err(|e| plot_err($what)(e.to_string()))
    };
}

/// The legend glyph of a line series: a 20-pixel stroke in its style.
fn line_glyph(style: ShapeStyle) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style)
}

/// Draws the legend of `chart`'s labelled series at `pos` (white, framed).
fn legend_box<'a, DB, CT>(
    title: &str,
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    pe!(
        title,
        chart
            .configure_series_labels()
            .position(pos)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
    )
}

/// Series name -> palette slot; names not in the map get slots after the known ones.
#[derive(Clone, Debug, Default)]
pub struct Colours {
    names: Vec<String>,
}

impl Colours {
    /// Slots in the order given (duplicates ignored).
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        let mut c = Colours::default();
        for n in names {
            if !c.names.iter().any(|m| m == n.as_ref()) {
                c.names.push(n.as_ref().to_string());
            }
        }
        c
    }

    fn get(&self, name: &str, fallback: usize) -> RGBColor {
        let k = self
            .names
            .iter()
            .position(|n| n == name)
            .unwrap_or(self.names.len() + fallback);
        let c = Palette99::pick(k).to_rgba();
        RGBColor(c.0, c.1, c.2)
    }
}

/// Fig. 2: PGD accuracy and loss against iteration for `curves` (one per variant).
pub fn pgd_svg(
    title: &str,
    curves: &[PgdCurve],
    classes: usize,
    colours: &Colours,
) -> Result<String> {
    let xmax = curves
        .iter()
        .flat_map(|c| c.iterations.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f32;
    let lmax = curves
        .iter()
        .flat_map(|c| c.loss.iter().flatten().copied())
        .filter(|l| l.is_finite())
        .fold(0.0f32, f32::max);
    let lmax = if lmax > 0.0 { lmax * 1.1 } else { 1.0 };
    let bl = 100.0 / classes.max(1) as f32;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        pe!(title, root.fill(&WHITE))?;
        let mut chart = pe!(
            title,
            ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(55)
                .right_y_label_area_size(55)
                .build_cartesian_2d(0f32..xmax, 0f32..100f32)
        )?
        .set_secondary_coord(0f32..xmax, 0f32..lmax);
        pe!(
            title,
            chart
                .configure_mesh()
                .x_desc("PGD iteration (i)")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.0}"))
                .y_desc("Accuracy [%] (solid)")
                .draw()
        )?;
        pe!(
            title,
            chart
                .configure_secondary_axes()
                .y_desc("Loss (dashed)")
                .draw()
        )?;
        for (k, c) in curves.iter().enumerate() {
            let col = colours.get(&c.variant, k);
            let acc: Vec<(f32, f32)> = c
                .iterations
                .iter()
                .zip(&c.accuracy)
                .map(|(&i, &a)| (i as f32, 100.0 * a))
                .collect();
            pe!(
                title,
                chart.draw_series(LineSeries::new(acc, col.stroke_width(2)))
            )?
            .label(c.variant.clone())
            .legend(line_glyph(col.stroke_width(2)));
            let loss: Vec<(f32, f32)> = c
                .iterations
                .iter()
                .zip(&c.loss)
                .filter_map(|(&i, l)| l.filter(|l| l.is_finite()).map(|l| (i as f32, l)))
                .collect();
            if loss.len() >= 2 {
                pe!(
                    title,
                    chart.draw_secondary_series(DashedLineSeries::new(
                        loss,
                        6,
                        4,
                        col.stroke_width(1)
                    ))
                )?;
            }
        }
        pe!(
            title,
            chart.draw_series(DashedLineSeries::new(
                vec![(0.0, bl), (xmax, bl)],
                8,
                4,
                BLACK.stroke_width(2)
            ))
        )?
        .label(format!("BL ({bl:.0}%)"))
        .legend(line_glyph(BLACK.stroke_width(2)));
        legend_box(title, &mut chart, SeriesLabelPosition::UpperRight)?;
        pe!(title, root.present())?;
    }
    Ok(buf)
}

/// Fig. 3: strain against stress for one attack; `x_desc` names the stress axis.
pub fn stress_strain_svg(
    title: &str,
    x_desc: &str,
    curves: &[StrainCurve],
    colours: &Colours,
) -> Result<String> {
    let xmax = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.stress))
        .fold(0.0f32, f32::max);
    let xmax = if xmax > 0.0 { xmax * 1.05 } else { 1.0 };
    let ymin = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.strain))
        .fold(0.0f32, f32::min);
    let ymax = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.strain))
        .fold(1.0f32, f32::max);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        pe!(title, root.fill(&WHITE))?;
        let mut chart = pe!(
            title,
            ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(55)
                .build_cartesian_2d(0f32..xmax, ymin..ymax * 1.05)
        )?;
        pe!(
            title,
            chart
                .configure_mesh()
                .x_desc(format!("Attack stress sigma: {x_desc}"))
                .y_desc("Strain (A - A*)/A")
                .draw()
        )?;
        for (k, c) in curves.iter().enumerate() {
            let col = colours.get(&c.variant, k);
            let pts: Vec<(f32, f32)> = std::iter::once((0.0, 0.0))
                .chain(c.points.iter().map(|p| (p.stress, p.strain)))
                .collect();
            pe!(
                title,
                chart.draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))
            )?
            .label(c.variant.clone())
            .legend(line_glyph(col.stroke_width(2)));
            pe!(
                title,
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, col.filled())))
            )?;
        }
        legend_box(title, &mut chart, SeriesLabelPosition::LowerRight)?;
        pe!(title, root.present())?;
    }
    Ok(buf)
}

/// Fig. 4: one box per (label, stats) for one attack, accuracy after attack in percent.
pub fn boxplot_svg(title: &str, boxes: &[(String, BoxStats)], colours: &Colours) -> Result<String> {
    let n = boxes.len().max(1);
    let names: Vec<String> = boxes.iter().map(|b| b.0.clone()).collect();
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        pe!(title, root.fill(&WHITE))?;
        let mut chart = pe!(
            title,
            ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(50)
                .y_label_area_size(55)
                .build_cartesian_2d(-0.5f32..(n as f32 - 0.5), 0f32..100f32)
        )?;
        let fmt = |x: &f32| {
            let r = x.round();
            if (x - r).abs() < 1e-3 && r >= 0.0 {
                names.get(r as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        pe!(
            title,
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n + 1)
                .x_label_formatter(&fmt)
                .x_desc("Variant kind")
                .y_desc("Accuracy after attack [%]")
                .draw()
        )?;
        for (k, (name, s)) in boxes.iter().enumerate() {
            let col = colours.get(name, k);
            let x = k as f32;
            let w = 0.3;
            pe!(
                title,
                chart.draw_series([
                    Rectangle::new([(x - w, s.q1), (x + w, s.q3)], col.mix(0.35).filled()),
                    Rectangle::new([(x - w, s.q1), (x + w, s.q3)], col.stroke_width(2)),
                ])
            )?;
            let seg =
                |a: (f32, f32), b: (f32, f32), st: ShapeStyle| PathElement::new(vec![a, b], st);
            pe!(
                title,
                chart.draw_series([
                    seg((x - w, s.median), (x + w, s.median), BLACK.stroke_width(3)),
                    seg((x, s.q3), (x, s.upper_whisker), BLACK.stroke_width(1)),
                    seg((x, s.q1), (x, s.lower_whisker), BLACK.stroke_width(1)),
                    seg(
                        (x - w / 2.0, s.upper_whisker),
                        (x + w / 2.0, s.upper_whisker),
                        BLACK.stroke_width(1)
                    ),
                    seg(
                        (x - w / 2.0, s.lower_whisker),
                        (x + w / 2.0, s.lower_whisker),
                        BLACK.stroke_width(1)
                    ),
                ])
            )?;
            pe!(
                title,
                chart.draw_series(s.outliers.iter().map(|&o| Circle::new(
                    (x, o),
                    4,
                    BLACK.stroke_width(1)
                )))
            )?;
        }
        pe!(title, root.present())?;
    }
    Ok(buf)
}

/// Table 3: CAM overlays, one row per (variant, panels).
pub fn cam_grid_svg(title: &str, rows: &[(String, Vec<CamPanel>)]) -> Result<String> {
    const CELL: usize = 128;
    const GAP: usize = 16;
    const LABEL_W: usize = 170;
    const HEAD: usize = 60;
    const FOOT: usize = 36;
    let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let width = LABEL_W + cols * (CELL + GAP) + GAP;
    let height = HEAD + rows.len() * (CELL + FOOT + GAP) + GAP;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"26\" font-size=\"20\" text-anchor=\"middle\">{}</text>\n",
        width / 2,
        html_escape(title)
    );
    if let Some((_, first)) = rows.first() {
        for (j, p) in first.iter().enumerate() {
            let x = LABEL_W + j * (CELL + GAP) + CELL / 2;
            s += &format!(
                "<text x=\"{x}\" y=\"{}\" font-size=\"14\" text-anchor=\"middle\">{}</text>\n",
                HEAD - 10,
                html_escape(&p.label)
            );
        }
    }
    for (i, (variant, panels)) in rows.iter().enumerate() {
        let y = HEAD + i * (CELL + FOOT + GAP);
        s += &format!(
            "<text x=\"8\" y=\"{}\" font-size=\"14\">{}</text>\n",
            y + CELL / 2,
            html_escape(variant)
        );
        for (j, p) in panels.iter().enumerate() {
            if p.width == 0 || p.height == 0 || p.rgb.len() != p.width * p.height * 3 {
                return Err(Error::input(
                    format!("cam panel {variant}/{}", p.label),
                    "panel has no pixels or a wrong pixel count",
                ));
            }
            let x = LABEL_W + j * (CELL + GAP);
            let uri = png_data_uri(p.width as u32, p.height as u32, &p.rgb);
            s += &format!(
                "<image x=\"{x}\" y=\"{y}\" width=\"{CELL}\" height=\"{CELL}\" \
                 preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\" href=\"{uri}\"/>\n"
            );
            let class = p
                .class_name
                .clone()
                .unwrap_or_else(|| format!("class {}", p.class));
            s += &format!(
                "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{} | Q3={:.0}</text>\n",
                x + CELL / 2,
                y + CELL + 16,
                html_escape(&class),
                p.q3
            );
        }
    }
    s += "</svg>\n";
    Ok(s)
}
