//! Threat-model units. Every epsilon and step size carries a [`Scale`]:
//! - `pixel`: 0-255 pixel values (eps 8 = 8/255 in unit scale);
//! - `unit`: pixels in [0,1];
//! - `normalized`: after the model's per-channel `(x - mean) / std`, so one normalized unit is
//!   `std[c]` in unit scale for channel `c`.

use serde::{Deserialize, Serialize};

use crate::model::Normalization;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    Pixel,
    Unit,
    Normalized,
}

impl Scale {
    /// Size of one unit of this scale in unit scale, per channel.
    pub fn unit_per_channel(self, norm: &Normalization) -> Vec<f32> {
        match self {
            Scale::Pixel => vec![1.0 / 255.0; norm.channels()],
            Scale::Unit => vec![1.0; norm.channels()],
            Scale::Normalized => norm.std.clone(),
        }
    }
}
