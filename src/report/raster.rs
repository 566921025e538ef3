//! SVG figures as PNG at print resolution, rendered with `resvg` (usvg parser + tiny-skia
//! rasteriser), so each figure can go into a paper or a slide without a browser.
//!
//! Conventions:
//! - SVG user units are CSS pixels (1/96 in): a figure `w` px wide is `w / 96` in wide in print,
//!   and at `dpi` dots per inch its PNG is `round(w * dpi / 96)` pixels wide. The PNG records the
//!   resolution in its `pHYs` chunk, so layout programs place it at that physical size.
//! - Text uses the system's fonts; the figures ask for DejaVu Sans (Debian `fonts-dejavu-core`)
//!   or Liberation Sans, and rendering fails with that hint when neither is installed (a PNG
//!   without its labels would be silently wrong).
//! - The background is opaque white, as in the SVGs.

use std::sync::Arc;

use resvg::tiny_skia;
use resvg::usvg;

use super::png::set_png_dpi;
use crate::{Error, Result};

/// Print resolution of the report's PNG figures.
pub const PRINT_DPI: f32 = 300.0;

/// Font families the figures name, in order of preference.
const FONTS: [&str; 2] = ["DejaVu Sans", "Liberation Sans"];

/// An SVG-to-PNG renderer with the system fonts loaded once.
pub struct Rasterizer {
    options: usvg::Options<'static>,
}

impl Rasterizer {
    /// Load the system fonts; an error naming the missing package when no figure font exists.
    pub fn new() -> Result<Rasterizer> {
        let mut db = usvg::fontdb::Database::new();
        db.load_system_fonts();
        let family = FONTS
            .iter()
            .find(|f| {
                db.faces()
                    .any(|face| face.families.iter().any(|(name, _)| name == *f))
            })
            .ok_or_else(|| {
                Error::input(
                    "PNG figures",
                    format!(
                        "no font for the figure text: none of {} is installed \
                         (on Debian: apt-get install fonts-dejavu-core)",
                        FONTS.join(", ")
                    ),
                )
            })?;
        db.set_sans_serif_family(*family);
        let options = usvg::Options {
            font_family: family.to_string(),
            fontdb: Arc::new(db),
            ..usvg::Options::default()
        };
        Ok(Rasterizer { options })
    }

    /// Render `svg` at `dpi` (see the module doc) to PNG bytes; `what` names it in errors.
    pub fn png(&self, svg: &str, dpi: f32, what: &str) -> Result<Vec<u8>> {
        let tree = usvg::Tree::from_str(svg, &self.options)
            .map_err(|e| Error::input(what, format!("SVG not readable for PNG rendering: {e}")))?;
        let scale = dpi / 96.0;
        let size = tree.size();
        let (w, h) = (
            (size.width() * scale).round() as u32,
            (size.height() * scale).round() as u32,
        );
        let mut pixmap = tiny_skia::Pixmap::new(w.max(1), h.max(1))
            .ok_or_else(|| Error::input(what, format!("cannot allocate a {w} x {h} image")))?;
        pixmap.fill(tiny_skia::Color::WHITE);
        resvg::render(
            &tree,
            tiny_skia::Transform::from_scale(scale, scale),
            &mut pixmap.as_mut(),
        );
        let png = pixmap
            .encode_png()
            .map_err(|e| Error::input(what, format!("PNG encoding failed: {e}")))?;
        Ok(set_png_dpi(&png, dpi))
    }
}
