//! Axis geometry of the report's figures: data ranges with a margin, tick choice (integer ticks
//! for counts such as iterations, "nice" 1-2-5 ticks for real values), the data-to-pixel mapping
//! of a plot panel and pixel rectangles (legend boxes) to test layouts against.
//!
//! Conventions:
//! - An axis range always holds the data strictly inside: the data span is padded by
//!   [`MARGIN`] of itself on both sides (a zero span by 0.5, or 5% of the value). Ticks are
//!   chosen to cover the data, and those outside the padded range are dropped (the range is
//!   widened to the ticks instead when fewer than two would remain).
//! - Pixel y grows downwards (SVG); `Frame::px`/`Frame::py` are the only data-to-pixel mapping.

/// Fraction of the data span added on each side of an axis.
pub const MARGIN: f64 = 0.05;

/// Candidate tick steps within one decade.
const STEPS: [f64; 3] = [1.0, 2.0, 5.0];

/// The smallest 1-2-5 step `>= min_step` among `STEPS * 10^k` (`k >= min_exp`).
fn nice_step(min_step: f64, min_exp: i32) -> f64 {
    let min_step = min_step.max(f64::MIN_POSITIVE);
    let mut exp = min_step.log10().floor() as i32 - 1;
    exp = exp.max(min_exp);
    loop {
        for s in STEPS {
            let step = s * 10f64.powi(exp);
            if step >= min_step * (1.0 - 1e-12) {
                return step;
            }
        }
        exp += 1;
    }
}

/// Ticks `k * step` covering `[lo, hi]` (first `<= lo`, last `>= hi`), at most `max_ticks` of
/// them (at least 3: two multiples of a step cannot cover both sides of zero), step from 1-2-5 x
/// 10^k with `k >= min_exp`.
fn ticks_with(lo: f64, hi: f64, max_ticks: usize, min_exp: i32) -> Vec<f64> {
    let max_ticks = max_ticks.max(3);
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    let mut step = nice_step((hi - lo) / (max_ticks - 1) as f64, min_exp);
    loop {
        let first = (lo / step).floor();
        let last = (hi / step).ceil();
        let n = (last - first) as usize + 1;
        if n <= max_ticks {
            return (0..n).map(|k| (first + k as f64) * step).collect();
        }
        step = nice_step(step * 1.000_001, min_exp);
    }
}

/// Distinct integer ticks covering `[lo, hi]` (first `<= lo`, last `>= hi`), at most
/// `max(max_ticks, 3)` of them, evenly spaced by 1, 2 or 5 x 10^k.
pub fn integer_ticks(lo: i64, hi: i64, max_ticks: usize) -> Vec<i64> {
    ticks_with(lo as f64, hi as f64, max_ticks, 0)
        .into_iter()
        .map(|t| t.round() as i64)
        .collect()
}

/// Ticks covering `[lo, hi]`, at most `max(max_ticks, 3)`, spaced by 1, 2 or 5 x 10^k.
pub fn real_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    ticks_with(lo, hi, max_ticks, -12)
}

/// Decimals needed to print ticks spaced by `step` exactly.
pub fn decimals(step: f64) -> usize {
    if step <= 0.0 || !step.is_finite() {
        return 0;
    }
    let mut d = 0;
    while d < 12
        && ((step * 10f64.powi(d as i32)).round() - step * 10f64.powi(d as i32)).abs() > 1e-6
    {
        d += 1;
    }
    d
}

/// One axis: its range and ticks.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
    /// Decimals of the tick labels.
    pub decimals: usize,
}

impl Axis {
    /// An axis over the finite `values` (at least one; else `[0, 1]`) with [`MARGIN`], integer
    /// ticks when `integer`.
    pub fn from_data(
        values: impl IntoIterator<Item = f64>,
        integer: bool,
        max_ticks: usize,
    ) -> Axis {
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.into_iter().filter(|v| v.is_finite()) {
            min = min.min(v);
            max = max.max(v);
        }
        if min > max {
            (min, max) = (0.0, 1.0);
        }
        let pad = if max > min {
            MARGIN * (max - min)
        } else if min != 0.0 {
            MARGIN * min.abs()
        } else {
            0.5
        };
        let (lo, hi) = (min - pad, max + pad);
        let ticks: Vec<f64> = if integer {
            integer_ticks(min.floor() as i64, max.ceil() as i64, max_ticks)
                .into_iter()
                .map(|t| t as f64)
                .collect()
        } else if max > min {
            real_ticks(min, max, max_ticks)
        } else {
            // A single value: ticks over the padded range, so the step is not vanishingly small.
            real_ticks(lo, hi, max_ticks)
        };
        let step = if ticks.len() >= 2 {
            ticks[1] - ticks[0]
        } else {
            1.0
        };
        let decimals = if integer { 0 } else { decimals(step) };
        // Ticks outside the padded range are dropped rather than stretching the axis to them,
        // unless fewer than two would remain.
        let inside: Vec<f64> = ticks
            .iter()
            .copied()
            .filter(|&t| t >= lo && t <= hi)
            .collect();
        if inside.len() >= 2 {
            Axis {
                lo,
                hi,
                ticks: inside,
                decimals,
            }
        } else {
            Axis {
                lo: lo.min(ticks[0]),
                hi: hi.max(*ticks.last().unwrap_or(&hi)),
                ticks,
                decimals,
            }
        }
    }

    /// The tick label of `v`.
    pub fn label(&self, v: f64) -> String {
        let s = format!("{:.*}", self.decimals, v);
        // "-0" and "-0.0" print as zero.
        if s.trim_start_matches('-')
            .chars()
            .all(|c| c == '0' || c == '.')
        {
            s.trim_start_matches('-').to_string()
        } else {
            s
        }
    }
}

/// A pixel rectangle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    /// True when the point lies strictly inside.
    pub fn contains_strictly(&self, (px, py): (f64, f64)) -> bool {
        px > self.x && px < self.x + self.w && py > self.y && py < self.y + self.h
    }

    /// True when the point lies inside or on the border, grown by `pad` pixels.
    pub fn touches(&self, (px, py): (f64, f64), pad: f64) -> bool {
        px >= self.x - pad
            && px <= self.x + self.w + pad
            && py >= self.y - pad
            && py <= self.y + self.h + pad
    }
}

/// A plot panel: its pixel area and axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub area: Rect,
    pub x: Axis,
    pub y: Axis,
}

impl Frame {
    /// Pixel x of data `x`.
    pub fn px(&self, x: f64) -> f64 {
        self.area.x + (x - self.x.lo) / (self.x.hi - self.x.lo) * self.area.w
    }

    /// Pixel y of data `y` (up on the page for larger values).
    pub fn py(&self, y: f64) -> f64 {
        self.area.y + self.area.h - (y - self.y.lo) / (self.y.hi - self.y.lo) * self.area.h
    }

    /// Pixel position of a data point.
    pub fn pixel(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (self.px(x), self.py(y))
    }
}

/// Approximate width in pixels of `text` at `size` px in DejaVu Sans / Liberation Sans (average
/// advance ~0.6 em; generous so boxes sized from it hold the text).
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.62
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ticks() {
        // The case: 0..3 iterations must not read "0 0 1 2 2 2 3".
        assert_eq!(integer_ticks(0, 3, 7), vec![0, 1, 2, 3]);
        assert_eq!(integer_ticks(0, 100, 8), vec![0, 20, 40, 60, 80, 100]);
        let a = Axis::from_data([0.0, 1.0], false, 6);
        let labels: Vec<String> = a.ticks.iter().map(|&t| a.label(t)).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(integer_ticks(-1, 1, 2), vec![-1, 0, 1]);
        // A single value (a proptest find): distinct labels, value strictly inside.
        let a = Axis::from_data([874.1184984992252], false, 7);
        let labels: Vec<String> = a.ticks.iter().map(|&t| a.label(t)).collect();
        let mut d = labels.clone();
        d.dedup();
        assert_eq!(labels, d);
        assert!(a.lo < 874.1184984992252 && a.hi > 874.1184984992252);
        assert_eq!(decimals(0.2), 1);
        assert_eq!(decimals(5.0), 0);
        assert_eq!(decimals(0.05), 2);
    }
}
