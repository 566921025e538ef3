//! ONNX / QONNX import: a `.onnx` file becomes our [`Network`] (so cost, simulator and engines
//! run it unchanged), its parameter map (PyTorch state-dict names, see [`graph`]) and the list
//! of layers the file binarizes (QONNX, see [`qonnx`]).
//!
//! Conventions fixed here:
//! - The graph has one image input `[N, C, H, W]` (N may be symbolic: dynamic batch axes are
//!   accepted; C, H, W must be fixed) and one output `[N, classes]`.
//! - Normalisation: a prefix of Sub / Div (/ Add / Mul) by per-channel constants on the input
//!   becomes [`Network::normalization`], so the network takes unit-scale images like every other
//!   model ("inside the graph"). A graph without such a prefix expects whatever its exporter fed
//!   it: `--mean/--std` ([`Options::normalization`]) or the metadata props
//!   `normalization.mean` / `normalization.std` (JSON lists) say which normalisation that is;
//!   without either it takes unit-scale images as they are. Giving one for a graph that
//!   normalises inside is an error (it would normalise twice).
//! - Every node is handled or refused: an op outside [`SUPPORTED`] is an error naming the node,
//!   its op_type and the supported list; a node whose output does not reach the graph output is
//!   an error too (it would be counted by the cost model but never used).
//! - Sizes in the file are data: the file is read whole (memory guard on its size), tensor
//!   element counts must match the bytes present, folded tensors are bounded
//!   ([`tensor::MAX_FOLD_ELEMS`]) and input dimensions are at most [`MAX_DIM`].

pub mod fold;
pub mod graph;
pub mod layers;
pub mod qonnx;
pub mod tensor;

use std::collections::HashSet;
use std::path::Path;

use crate::engine::params::Params;
use crate::io::weights::WeightStore;
use crate::model::{Network, Normalization};
use crate::onnx::proto::{tensor_shape_proto::dimension, type_proto, ModelProto};
use crate::{Error, Result};
use graph::{Builder, Value};

/// Largest C, H or W of the graph input.
pub const MAX_DIM: usize = 1 << 16;

/// Every op type the importer accepts (default domain unless noted), for error messages.
pub const SUPPORTED: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "Relu",
    "Clip (0..inf = ReLU, -1..1 = HardTanh)",
    "Add",
    "Sub/Div/Mul (input normalisation)",
    "Gemm",
    "MatMul",
    "Flatten",
    "Reshape (flatten)",
    "Squeeze (spatial)",
    "GlobalAveragePool",
    "ReduceMean (spatial)",
    "MaxPool",
    "AveragePool",
    "Slice (x[:, :, ::s, ::s])",
    "Pad (channels, option-A shortcut)",
    "Identity",
    "Dropout",
    "Shape",
    "Constant",
    "ConstantOfShape/Concat/Reshape/Transpose/Cast/Slice/Gather/Unsqueeze/Squeeze/Neg (on constants)",
    "BipolarQuant, Quant (1 bit), Sign (QONNX binarization)",
];

/// Import options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Normalisation the graph expects on its input (`--mean/--std`), for graphs without a
    /// normalisation prefix.
    pub normalization: Option<Normalization>,
}

/// Where the network's normalisation came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormSource {
    /// A Sub/Div prefix inside the graph.
    Graph,
    /// `--mean/--std`.
    Flags,
    /// The model's metadata props.
    Metadata,
    /// None anywhere: the graph takes unit-scale images.
    Unit,
}

/// An imported model.
#[derive(Clone, Debug)]
pub struct Imported {
    pub network: Network,
    /// Parameters under the names the engines expect for the *float* skeleton, with binarized
    /// layers' latent weights chosen as in [`qonnx`].
    pub params: Params,
    /// Layers the file binarizes (XNOR layers), in layer order.
    pub binarized: Vec<String>,
    pub normalization: NormSource,
    /// Default-domain opset the file imports.
    pub opset: i64,
}

/// Reads and imports `path`.
pub fn import_file(path: &Path, opts: &Options) -> Result<Imported> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    // The file, its decoded messages and the f32 copies of its tensors are alive at once.
    crate::io::limits::check_memory(
        &format!("model {}", path.display()),
        len.saturating_mul(3),
        "choose a smaller model",
    )?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let origin = path.display().to_string();
    let model = crate::onnx::proto::decode_model(&bytes, &origin)?;
    drop(bytes);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "onnx".into());
    import_model(&model, &stem, &origin, opts)
}

fn json_list(s: &str, key: &str, origin: &str) -> Result<Vec<f32>> {
    serde_json::from_str::<Vec<f32>>(s).map_err(|e| {
        Error::input(
            format!("{origin}: metadata_props '{key}'"),
            format!("expected a JSON list of numbers like [0.5, 0.5, 0.5]: {e}"),
        )
    })
}

/// Imports a decoded model; `name` becomes the network name, `origin` (the path) prefixes
/// errors.
pub fn import_model(
    model: &ModelProto,
    name: &str,
    origin: &str,
    opts: &Options,
) -> Result<Imported> {
    let at = |msg: String| Error::input(origin, msg);
    let opset = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .ok_or_else(|| at("no opset_import for the default ONNX domain".into()))?;
    if opset < 7 {
        return Err(at(format!("opset {opset} is older than the supported 7..")));
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| at("the model has no graph".into()))?;
    let inits: HashSet<&str> = graph
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_deref().unwrap_or("")))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(at(format!(
            "the graph has {} inputs besides its initializers; bbed needs exactly one image input",
            inputs.len()
        )));
    };
    let in_name = input.name.clone().unwrap_or_default();
    let ctx = format!("{origin}: input '{in_name}'");
    let dims = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => {
            t.shape.as_ref().map(|s| s.dim.clone()).unwrap_or_default()
        }
        _ => return Err(Error::input(ctx, "is not a tensor")),
    };
    if dims.len() != 4 {
        return Err(Error::input(
            ctx,
            format!(
                "has rank {}; bbed imports image models with an [N, C, H, W] input",
                dims.len()
            ),
        ));
    }
    let value = |i: usize| match &dims[i].value {
        Some(dimension::Value::DimValue(v)) if *v >= 1 => Some(*v as usize),
        _ => None,
    };
    let batch = value(0);
    let mut chw = [0usize; 3];
    for (k, slot) in chw.iter_mut().enumerate() {
        *slot = value(k + 1)
            .filter(|&v| v <= MAX_DIM)
            .ok_or_else(|| Error::input(ctx.clone(), format!("dimension {} must be a fixed size in 1..={MAX_DIM} (only the batch axis may be symbolic)", k + 1)))?;
    }
    let net = Network {
        name: name.to_string(),
        input: chw,
        num_classes: 0,
        normalization: Normalization::identity(chw[0]),
        layers: Vec::new(),
    };
    let mut b = Builder::new(net, batch);
    for t in &graph.initializer {
        let n = t.name.clone().unwrap_or_default();
        let c = tensor::decode(t, &format!("{origin}: initializer '{n}'"))?;
        b.values.insert(n, Value::Const(c));
    }
    b.values.insert(
        in_name,
        Value::Input {
            mean: vec![0.0; chw[0]],
            std: vec![1.0; chw[0]],
        },
    );
    for (i, node) in graph.node.iter().enumerate() {
        b.node(node, i).map_err(|e| match e {
            Error::Input { context, message } => {
                Error::input(format!("{origin}: {context}"), message)
            }
            other => other,
        })?;
    }
    let [out] = graph.output.as_slice() else {
        return Err(at(format!(
            "the graph has {} outputs; bbed needs exactly one (the logits)",
            graph.output.len()
        )));
    };
    let out_name = out.name.clone().unwrap_or_default();
    let last = match b.values.get(&out_name) {
        Some(Value::Dyn { src: Some(i), .. }) => *i,
        _ => {
            return Err(at(format!(
                "graph output '{out_name}' is not computed by a supported layer"
            )))
        }
    };
    // Every layer must feed the output.
    let mut live = vec![false; b.net.layers.len()];
    live[last] = true;
    for i in (0..=last).rev() {
        if live[i] {
            for &p in &b.net.layers[i].inputs {
                live[p] = true;
            }
        }
    }
    if let Some(dead) = live.iter().position(|l| !l) {
        return Err(at(format!(
            "{} (layer '{}') does not contribute to the graph output '{out_name}'",
            b.origin[dead], b.net.layers[dead].name
        )));
    }
    let out_shape = b.shape(Some(last))?;
    if out_shape[1] != 1 || out_shape[2] != 1 {
        return Err(at(format!(
            "the graph output is a {out_shape:?} map, not a vector of class scores"
        )));
    }
    b.net.num_classes = out_shape[0];
    let (normalization, source) = normalization(&b, model, origin, opts)?;
    let mut net = b.net;
    net.normalization = normalization;
    net.infer().map_err(|e| match e {
        Error::Input { context, message } => Error::input(format!("{origin}: {context}"), message),
        other => other,
    })?;
    let mut store = WeightStore::new();
    for (k, v) in &b.params {
        store.insert(k.clone(), v.clone());
    }
    store.check(&net.param_shapes(), origin)?;
    store.check_finite()?;
    let binarized = net
        .layers
        .iter()
        .filter(|l| b.binarized.contains(&l.name))
        .map(|l| l.name.clone())
        .collect();
    Ok(Imported {
        network: net,
        params: store.tensors,
        binarized,
        normalization: source,
        opset,
    })
}

fn normalization(
    b: &Builder,
    model: &ModelProto,
    origin: &str,
    opts: &Options,
) -> Result<(Normalization, NormSource)> {
    let c = b.net.input[0];
    let meta = |key: &str| {
        model
            .metadata_props
            .iter()
            .find(|p| p.key.as_deref() == Some(key))
            .and_then(|p| p.value.clone())
    };
    let from_meta = match (meta("normalization.mean"), meta("normalization.std")) {
        (Some(m), Some(s)) => Some(Normalization {
            mean: json_list(&m, "normalization.mean", origin)?,
            std: json_list(&s, "normalization.std", origin)?,
        }),
        (None, None) => None,
        _ => {
            return Err(Error::input(
                origin,
                "metadata_props give only one of normalization.mean / normalization.std",
            ))
        }
    };
    let inside = b
        .norm
        .clone()
        .filter(|(m, s)| m.iter().any(|&v| v != 0.0) || s.iter().any(|&v| v != 1.0));
    let (n, src, what) = match (inside, &opts.normalization, from_meta) {
        (Some(_), Some(_), _) => {
            return Err(Error::input(
                "--mean/--std",
                format!("{origin} normalises its input inside the graph (Sub/Div prefix); giving a normalisation too would apply it twice"),
            ))
        }
        (Some(_), None, Some(_)) => {
            return Err(Error::input(
                origin,
                "the graph normalises its input (Sub/Div prefix) and its metadata_props give a normalisation too",
            ))
        }
        (Some((mean, std)), None, None) => (Normalization { mean, std }, NormSource::Graph, "graph prefix"),
        (None, Some(n), _) => (n.clone(), NormSource::Flags, "--mean/--std"),
        (None, None, Some(n)) => (n, NormSource::Metadata, "metadata_props"),
        (None, None, None) => (Normalization::identity(c), NormSource::Unit, ""),
    };
    if n.mean.len() != c || n.std.len() != c {
        return Err(Error::input(
            format!("{origin}: normalization ({what})"),
            format!(
                "needs one mean and one std per input channel ({c}), got {} and {}",
                n.mean.len(),
                n.std.len()
            ),
        ));
    }
    if n.std.iter().any(|&s| s <= 0.0 || !s.is_finite()) || n.mean.iter().any(|m| !m.is_finite()) {
        return Err(Error::input(
            format!("{origin}: normalization ({what})"),
            "every std must be positive and finite, every mean finite",
        ));
    }
    Ok((n, src))
}
