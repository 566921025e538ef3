//! Network descriptions: a layer graph with shapes inferred from the input size.
//!
//! Conventions:
//! - Shapes are `[C, H, W]` per sample (NCHW without the batch axis).
//! - Layers are stored in topological order; `Layer::inputs` holds indices of earlier layers,
//!   an empty list means "the network input".
//! - Layer names are PyTorch state-dict prefixes, so a parameter is `format!("{name}.weight")`.
//! - Convolutions are square, ungrouped, zero-padded by `padding` on every side; pools use the
//!   same output-size rule `(H + 2p - k) / s + 1` (floor), [`geom::out_len`]; [`geom::ConvGeom`]
//!   is the one conv geometry the engines and the simulator share.
//! - `ShortcutA` is He et al.'s option-A identity: `x[:, :, ::s, ::s]` (output `ceil(H/s)`)
//!   zero-padded with `(out_c - in_c) / 2` channels on each side.
//! - A MAC is one multiply-accumulate of a conv or linear layer; BN, pooling and adds are not
//!   MACs (the convention of the published counts: fvcore, torchvision).

pub mod custom;
pub mod geom;
pub mod graph;
pub mod norm;
pub mod resnet;

pub use graph::{Layer, Network, Op};
pub use norm::Normalization;
pub use resnet::builtin;

/// A built-in model name, or a network TOML when `model` names a file (ends in `.toml` or
/// exists). `input` (C,H,W) and `classes` override a built-in's defaults only.
pub fn resolve(
    model: &str,
    input: Option<[usize; 3]>,
    classes: Option<usize>,
) -> crate::Result<Network> {
    let path = std::path::Path::new(model);
    if model.ends_with(".toml") || path.is_file() {
        if input.is_some() || classes.is_some() {
            return Err(crate::Error::input(
                "--input/--classes",
                "only apply to built-in models; a network TOML sets its own",
            ));
        }
        return custom::load(path);
    }
    builtin(model, input, classes)
}
