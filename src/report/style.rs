//! Series styles shared by every figure of a report, so a variant looks the same everywhere and
//! every series stays distinct in colour, in greyscale print and for colour-blind readers.
//!
//! Conventions:
//! - Colour = compression family: full precision (vanilla, knowledge-distilled), pruned (filter,
//!   channel, kernel, weight pruning) and binarized (XNOR, ABC). Colours are Paul Tol's "muted"
//!   qualitative scheme (P. Tol, "Colour Schemes", SRON technical note SRON/EPS/TN/09-002,
//!   <https://personal.sron.nl/~pault/>), designed to be distinct for colour-blind readers:
//!   blues for full precision, greens for pruned, reds/purples for binarized.
//! - Dash pattern = family too (solid, dashed, dotted; each family has three patterns of its
//!   own), marker = rank within the family, so every pair of up to [`PER_FAMILY`] series per
//!   family differs in (marker, dash) and survives greyscale printing even where two colours have
//!   similar luminance (beyond that, styles repeat).
//! - Kinds that belong to no known family (other) are drawn in black with dash-dot patterns.

use std::fmt;

/// Compression family of a variant kind (colour and dash group).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    FullPrecision,
    Pruned,
    Binarized,
    Other,
}

impl Family {
    pub const ALL: [Family; 4] = [
        Family::FullPrecision,
        Family::Pruned,
        Family::Binarized,
        Family::Other,
    ];

    /// Family of a recorded variant kind (`vanilla`, `kd-kl`, `ch-prune`, `weight-prune`, `xnor`,
    /// `abc3x3`, ...; see the sweep's kind labels).
    pub fn of_kind(kind: &str) -> Family {
        let k = kind.to_ascii_lowercase();
        if k == "vanilla" || k.starts_with("kd") {
            Family::FullPrecision
        } else if k.contains("prune")
            || ["filter", "channel", "kernel", "weight"].contains(&k.as_str())
        {
            Family::Pruned
        } else if k.starts_with("xnor") || k.starts_with("abc") {
            Family::Binarized
        } else {
            Family::Other
        }
    }

    /// Palette colours of the family, in the order series get them.
    pub fn colours(self) -> &'static [Rgb] {
        match self {
            Family::FullPrecision => &[TOL_MUTED[0], TOL_MUTED[1]],
            Family::Pruned => &[TOL_MUTED[3], TOL_MUTED[2], TOL_MUTED[4]],
            Family::Binarized => &[TOL_MUTED[7], TOL_MUTED[6], TOL_MUTED[8]],
            Family::Other => &[Rgb(0, 0, 0)],
        }
    }

    /// SVG `stroke-dasharray` values of the family (`None` = solid); disjoint across families.
    pub fn dashes(self) -> [Option<&'static str>; 3] {
        match self {
            Family::FullPrecision => [None, Some("12 3 3 3"), Some("16 4")],
            Family::Pruned => [Some("7 4"), Some("7 3 2 3 2 3"), Some("5 2")],
            Family::Binarized => [Some("2 3"), Some("2 3 2 8"), Some("1 2")],
            Family::Other => [Some("10 3 2 3"), Some("14 6"), Some("3 5")],
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::FullPrecision => "full precision",
            Family::Pruned => "pruned",
            Family::Binarized => "binarized",
            Family::Other => "other",
        })
    }
}

/// Series per family with distinct (marker, dash): 7 markers x 3 dash patterns.
pub const PER_FAMILY: usize = 21;

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// Relative luminance (WCAG 2.x / ITU-R BT.709 weights on linearised sRGB), in \[0,1\]: the grey
    /// level the colour prints as.
    pub fn luminance(self) -> f64 {
        let lin = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(self.0) + 0.7152 * lin(self.1) + 0.0722 * lin(self.2)
    }
}

/// Paul Tol's "muted" scheme: indigo, cyan, teal, green, olive, sand, rose, wine, purple.
pub const TOL_MUTED: [Rgb; 9] = [
    Rgb(0x33, 0x22, 0x88),
    Rgb(0x88, 0xCC, 0xEE),
    Rgb(0x44, 0xAA, 0x99),
    Rgb(0x11, 0x77, 0x33),
    Rgb(0x99, 0x99, 0x33),
    Rgb(0xDD, 0xCC, 0x77),
    Rgb(0xCC, 0x66, 0x77),
    Rgb(0x88, 0x22, 0x55),
    Rgb(0xAA, 0x44, 0x99),
];

/// Point markers, in the order series of one family get them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Marker {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
    Plus,
    Cross,
}

impl Marker {
    pub const ALL: [Marker; 7] = [
        Marker::Circle,
        Marker::Square,
        Marker::TriangleUp,
        Marker::Diamond,
        Marker::TriangleDown,
        Marker::Plus,
        Marker::Cross,
    ];

    /// The marker as an SVG element centred at (`x`, `y`), `r` pixels from centre to edge.
    pub fn svg(self, x: f64, y: f64, r: f64, colour: Rgb) -> String {
        let c = colour.hex();
        let filled = format!("fill=\"{c}\" stroke=\"white\" stroke-width=\"0.8\"");
        let poly = |pts: &[(f64, f64)]| {
            let p: Vec<String> = pts
                .iter()
                .map(|(dx, dy)| format!("{:.1},{:.1}", x + dx * r, y + dy * r))
                .collect();
            format!("<polygon points=\"{}\" {filled}/>", p.join(" "))
        };
        match self {
            Marker::Circle => {
                format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r:.1}\" {filled}/>")
            }
            Marker::Square => poly(&[(-0.9, -0.9), (0.9, -0.9), (0.9, 0.9), (-0.9, 0.9)]),
            Marker::TriangleUp => poly(&[(0.0, -1.2), (1.1, 0.8), (-1.1, 0.8)]),
            Marker::TriangleDown => poly(&[(0.0, 1.2), (1.1, -0.8), (-1.1, -0.8)]),
            Marker::Diamond => poly(&[(0.0, -1.25), (1.0, 0.0), (0.0, 1.25), (-1.0, 0.0)]),
            Marker::Plus | Marker::Cross => {
                let (a, b) = if self == Marker::Plus {
                    ((1.2, 0.0), (0.0, 1.2))
                } else {
                    ((0.9, 0.9), (0.9, -0.9))
                };
                format!(
                    "<path d=\"M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}\" stroke=\"{c}\" \
                     stroke-width=\"2.2\" fill=\"none\"/>",
                    x - a.0 * r,
                    y - a.1 * r,
                    x + a.0 * r,
                    y + a.1 * r,
                    x - b.0 * r,
                    y - b.1 * r,
                    x + b.0 * r,
                    y + b.1 * r
                )
            }
        }
    }
}

/// How one series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesStyle {
    pub family: Family,
    pub colour: Rgb,
    pub marker: Marker,
    /// SVG `stroke-dasharray` (`None` = solid).
    pub dash: Option<&'static str>,
}

impl SeriesStyle {
    /// The style of the `rank`-th series (0-based) of `family`.
    pub fn nth(family: Family, rank: usize) -> SeriesStyle {
        let colours = family.colours();
        let m = Marker::ALL.len();
        SeriesStyle {
            family,
            colour: colours[rank % colours.len()],
            marker: Marker::ALL[rank % m],
            dash: family.dashes()[(rank / m) % 3],
        }
    }

    /// SVG presentation attributes of the series' line.
    pub fn stroke_attrs(&self, width: f64) -> String {
        let dash = self
            .dash
            .map_or(String::new(), |d| format!(" stroke-dasharray=\"{d}\""));
        format!(
            "stroke=\"{}\" stroke-width=\"{width}\" fill=\"none\" stroke-linejoin=\"round\"{dash}",
            self.colour.hex()
        )
    }
}

/// Series name -> style, fixed for a whole report. Names are ranked within their family in the
/// order given; a name not in the map gets the next free rank of its kind's family.
#[derive(Clone, Debug, Default)]
pub struct Styles {
    entries: Vec<(String, SeriesStyle)>,
}

impl Styles {
    /// Styles for `(series name, variant kind)` pairs, in the order given (duplicates ignored).
    pub fn new<S: AsRef<str>, K: AsRef<str>>(series: impl IntoIterator<Item = (S, K)>) -> Self {
        let mut s = Styles::default();
        for (name, kind) in series {
            s.get(name.as_ref(), kind.as_ref());
        }
        s
    }

    /// The style of `name`, adding it (with kind `kind`) if it is new.
    pub fn get(&mut self, name: &str, kind: &str) -> SeriesStyle {
        if let Some((_, st)) = self.entries.iter().find(|(n, _)| n == name) {
            return *st;
        }
        let family = Family::of_kind(kind);
        let rank = self
            .entries
            .iter()
            .filter(|(_, s)| s.family == family)
            .count();
        let st = SeriesStyle::nth(family, rank);
        self.entries.push((name.to_string(), st));
        st
    }

    /// The style of `name`; a name not in the map (kind `kind`) gets rank `known + extra` of
    /// its family, so callers pass distinct `extra` values for distinct unknown series.
    pub fn style(&self, name: &str, kind: &str, extra: usize) -> SeriesStyle {
        self.lookup(name).unwrap_or_else(|| {
            let family = Family::of_kind(kind);
            let known = self
                .entries
                .iter()
                .filter(|(_, s)| s.family == family)
                .count();
            SeriesStyle::nth(family, known + extra)
        })
    }

    /// The style of a known series.
    pub fn lookup(&self, name: &str) -> Option<SeriesStyle> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| *s)
    }
}
