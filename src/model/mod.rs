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
//! - `--model` names a built-in, a network TOML ([`custom`]) or an ONNX / QONNX file
//!   ([`crate::onnx::import`], which also carries weights): [`open`] resolves all three.
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

/// A resolved `--model`: the network description plus what the model file carries beside it.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub network: Network,
    /// Parameters stored in the model file (ONNX initializers), in state-dict names; `None`
    /// for built-ins and network TOMLs.
    pub weights: Option<std::collections::BTreeMap<String, ndarray::ArrayD<f32>>>,
    /// Layers the model file binarizes (QONNX): the model is then the XNOR variant of
    /// `network` (see [`crate::onnx::import::qonnx`]). Empty for float models.
    pub binarized: Vec<String>,
}

/// True when `--model` names an ONNX file (by its `.onnx` extension).
pub fn is_onnx(model: &str) -> bool {
    model.to_ascii_lowercase().ends_with(".onnx")
}

/// A built-in model name, an ONNX file (ends in `.onnx`), or a network TOML when `model` names
/// a file (ends in `.toml` or exists). `input` (C,H,W) and `classes` override a built-in's
/// defaults only.
pub fn resolve(
    model: &str,
    input: Option<[usize; 3]>,
    classes: Option<usize>,
) -> crate::Result<Network> {
    Ok(open(model, input, classes, None)?.network)
}

/// [`resolve`] with the model file's weights and binarized layers. `normalization`
/// (`--mean/--std`) applies to ONNX graphs that expect normalised input (see
/// [`crate::onnx::import`]); other models set their own, so it is an error there.
pub fn open(
    model: &str,
    input: Option<[usize; 3]>,
    classes: Option<usize>,
    normalization: Option<Normalization>,
) -> crate::Result<Resolved> {
    let path = std::path::Path::new(model);
    let file = is_onnx(model) || model.ends_with(".toml") || path.is_file();
    if file && (input.is_some() || classes.is_some()) {
        return Err(crate::Error::input(
            "--input/--classes",
            "only apply to built-in models; a network TOML or ONNX file sets its own",
        ));
    }
    if !is_onnx(model) && normalization.is_some() {
        return Err(crate::Error::input(
            "--mean/--std",
            "only apply to ONNX models whose graph expects normalised input; built-ins and network TOMLs set their own normalisation",
        ));
    }
    if is_onnx(model) {
        let opts = crate::onnx::import::Options { normalization };
        let imported = crate::onnx::import::import_file(path, &opts)?;
        return Ok(Resolved {
            network: imported.network,
            weights: Some(imported.params),
            binarized: imported.binarized,
        });
    }
    let network = if file {
        custom::load(path)?
    } else {
        builtin(model, input, classes)?
    };
    Ok(Resolved {
        network,
        weights: None,
        binarized: Vec::new(),
    })
}
