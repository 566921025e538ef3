//! `bbed verify`: run the float reference and the bit-exact binarized engine on the same inputs
//! and report how far they agree: integer accumulators of every binarized layer (must be
//! identical), predictions (fraction agreeing) and the largest absolute logit difference.
//!
//! Tolerance is 0 on purpose: the executor computes each binary layer's +/-1 sums either by float
//! GEMM (exact, every partial sum is an integer below 2^24) or by XNOR + popcount, and then scales
//! and adds them in the same order with the same code, so the logits must be bit-identical.
//! Any non-zero difference is a bug, not rounding.
//!
//! `--per-layer` adds one row per binarized layer: its accumulators compared and mismatched,
//! the largest accumulator difference and the largest difference of the layer's output (after
//! scaling and bias) between the engines; the logit difference stays network-wide.

use super::args::FolderArgs;
use clap::Args;
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::format::{render, Format, Tabular};
use super::infer::{argmax, has_binary_layers, NetArgs};
use crate::engine::classifier::{BinaryEngine, FloatEngine};
use crate::engine::exec::Net;
use crate::engine::params::BinScheme;
use crate::io::limits::at_least_one;
use crate::{Error, Result};

/// Why [`VerifyReport::tolerance`] is 0.
pub const TOLERANCE_REASON: &str = "both engines compute each binary layer's +/-1 sums exactly \
(float GEMM on +/-1 values is exact below 2^24; XNOR+popcount is integer) and scale and add them \
in the same order with the same code, so logits must be bit-identical";

const AFTER: &str = "\
Without --data the inputs are uniform random unit-scale images drawn with --seed; with --data,
--images test images sampled with --seed. The tolerance on logits is 0 (see the JSON field
tolerance_reason): any difference is a bug.

Examples:
  bbed verify --model resnet20 --variant xnor --images 16 --format json
  bbed verify --model resnet8 --variant abc --m 3 --n 3 --weights w.safetensors
  bbed verify --model resnet8 --input 1,28,28 --variant xnor --per-layer --format json";

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub net: NetArgs,
    /// Number of images to compare
    #[arg(long, default_value_t = 16)]
    pub images: usize,
    /// Dataset to draw images from (test split); default: random images
    #[arg(long)]
    pub data: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub folder: FolderArgs,
    /// Images per forward pass
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Seed of the random images (without --data) or of the test-image sample (with --data)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also report every binarized layer on its own (accumulators, mismatches, output diff)
    #[arg(long)]
    pub per_layer: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// One binarized layer under `--per-layer`.
#[derive(Debug, Serialize)]
pub struct LayerVerify {
    pub layer: String,
    /// `xnor` or `abc(MxN)`.
    pub scheme: String,
    pub accumulators_compared: usize,
    pub accumulators_mismatched: usize,
    /// Largest |float - bitwise| over the layer's integer accumulators.
    pub max_abs_accumulator_diff: f32,
    /// Largest |float - bitwise| over the layer's output (scaled sums plus bias).
    pub max_abs_output_diff: f32,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub model: String,
    pub variant: String,
    /// Where the inputs came from (`random(seed=S)` or the dataset source).
    pub inputs: String,
    pub images: usize,
    pub binarized_layers: usize,
    /// Accumulator values compared (all layers, bases and positions).
    pub accumulators_compared: usize,
    pub accumulators_mismatched: usize,
    pub accumulators_identical: bool,
    pub prediction_agreement: f64,
    pub max_abs_logit_diff: f32,
    pub tolerance: f32,
    pub tolerance_reason: String,
    /// Accumulators identical and logit difference within the tolerance.
    pub passed: bool,
    /// Per binarized layer (only with `--per-layer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerVerify>>,
}

fn inputs(args: &VerifyArgs, shape: [usize; 3]) -> Result<(Array4<f32>, String)> {
    let [c, h, w] = shape;
    match &args.data {
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
            let x = Array4::from_shape_simple_fn((args.images, c, h, w), || rng.gen::<f32>());
            Ok((x, format!("random(seed={})", args.seed)))
        }
        Some(path) => {
            let (_, test) = args.folder.load(path)?;
            if test.image_shape() != shape {
                return Err(Error::input(
                    "--data",
                    format!(
                        "{}: images are {:?} (C,H,W) but the network expects {shape:?}",
                        test.source,
                        test.image_shape()
                    ),
                ));
            }
            let idx = test.sample_indices(args.images, args.seed)?;
            let sub = test.subset(&idx)?;
            Ok((sub.to_unit(0..sub.len())?, sub.source))
        }
    }
}

pub fn verify(args: &VerifyArgs) -> Result<VerifyReport> {
    at_least_one("--images", args.images)?;
    at_least_one("--batch", args.batch)?;
    let net = args.net.net(args.batch)?;
    if !has_binary_layers(&net.cn) {
        return Err(Error::input(
            "--variant",
            format!(
                "{} has no binarized layer, so there is nothing to verify; use xnor or abc",
                net.cn.spec.kind.name()
            ),
        ));
    }
    let model = net.cn.network.name.clone();
    let variant = net.cn.spec.label();
    let binarized_layers = net.schemes().iter().filter(|s| s.is_some()).count();
    // Index in `per_layer` of each network layer that is binarized.
    let mut slot = vec![None; net.schemes().len()];
    let mut per_layer: Vec<LayerVerify> = Vec::new();
    for (i, s) in net.schemes().iter().enumerate() {
        if let Some(s) = s {
            slot[i] = Some(per_layer.len());
            per_layer.push(LayerVerify {
                layer: net.cn.network.layers[i].name.clone(),
                scheme: match s {
                    BinScheme::Xnor => "xnor".into(),
                    BinScheme::Abc { m, n } => format!("abc({m}x{n})"),
                },
                accumulators_compared: 0,
                accumulators_mismatched: 0,
                max_abs_accumulator_diff: 0.0,
                max_abs_output_diff: 0.0,
            });
        }
    }
    let (x, source) = inputs(args, net.cn.network.input)?;
    let fe = FloatEngine::new(Net::new(net.cn.clone(), net.params.clone())?)?;
    let be = BinaryEngine::new(net)?;
    let (mut compared, mut mismatched, mut agree, mut max_diff) = (0usize, 0usize, 0usize, 0f32);
    let n = x.dim().0;
    let mut start = 0;
    while start < n {
        let end = (start + args.batch).min(n);
        let xb = x.slice(ndarray::s![start..end, .., .., ..]).to_owned();
        let (lf, tf) = fe.run(&xb, true)?;
        let (lb, tb) = be.run(&xb, true)?;
        if tf.accumulators.len() != tb.accumulators.len() {
            mismatched += 1;
        }
        for ((li, _, _, sf), (lb, _, _, sb)) in tf.accumulators.iter().zip(&tb.accumulators) {
            let same_shape = sf.dim() == sb.dim() && li == lb;
            let bad = if same_shape {
                sf.iter().zip(sb).filter(|(a, b)| a != b).count()
            } else {
                sf.len()
            };
            compared += sf.len();
            mismatched += bad;
            if let Some(r) = slot[*li].map(|k| &mut per_layer[k]) {
                r.accumulators_compared += sf.len();
                r.accumulators_mismatched += bad;
                r.max_abs_accumulator_diff = if same_shape {
                    max_abs_diff(sf.iter(), sb.iter(), r.max_abs_accumulator_diff)
                } else {
                    f32::INFINITY
                };
            }
        }
        for r in per_layer.iter_mut().filter(|_| args.per_layer) {
            let (of, ob) = (
                fe.net.layer_output(&tf, &r.layer),
                be.net.layer_output(&tb, &r.layer),
            );
            r.max_abs_output_diff = match (of, ob) {
                (Some(of), Some(ob)) if of.dim() == ob.dim() => {
                    max_abs_diff(of.iter(), ob.iter(), r.max_abs_output_diff)
                }
                _ => f32::INFINITY,
            };
        }
        for (k, (rf, rb)) in lf.outer_iter().zip(lb.outer_iter()).enumerate() {
            let (rf, rb) = (rf.to_vec(), rb.to_vec());
            agree += usize::from(argmax(&rf, start + k)? == argmax(&rb, start + k)?);
            for (a, b) in rf.iter().zip(&rb) {
                max_diff = max_diff.max((a - b).abs());
            }
        }
        start = end;
    }
    let identical = mismatched == 0;
    Ok(VerifyReport {
        model,
        variant,
        inputs: source,
        images: n,
        binarized_layers,
        accumulators_compared: compared,
        accumulators_mismatched: mismatched,
        accumulators_identical: identical,
        prediction_agreement: agree as f64 / n as f64,
        max_abs_logit_diff: max_diff,
        tolerance: 0.0,
        tolerance_reason: TOLERANCE_REASON.into(),
        passed: identical && max_diff <= 0.0,
        layers: args.per_layer.then_some(per_layer),
    })
}

/// `max(acc, max |a - b|)`; a NaN difference counts as infinite (never hidden by `max`).
fn max_abs_diff<'a>(
    a: impl Iterator<Item = &'a f32>,
    b: impl Iterator<Item = &'a f32>,
    acc: f32,
) -> f32 {
    a.zip(b).fold(acc, |m, (x, y)| {
        let d = (x - y).abs();
        if d.is_nan() {
            f32::INFINITY
        } else {
            m.max(d)
        }
    })
}

pub fn run(args: VerifyArgs) -> Result<String> {
    let r = verify(&args)?;
    let mut t = Tabular::new(&["quantity", "value"]);
    for (k, v) in [
        ("model", r.model.clone()),
        ("variant", r.variant.clone()),
        ("inputs", r.inputs.clone()),
        ("images", r.images.to_string()),
        ("binarized_layers", r.binarized_layers.to_string()),
        ("accumulators_compared", r.accumulators_compared.to_string()),
        (
            "accumulators_mismatched",
            r.accumulators_mismatched.to_string(),
        ),
        (
            "accumulators_identical",
            r.accumulators_identical.to_string(),
        ),
        (
            "prediction_agreement",
            format!("{}", r.prediction_agreement),
        ),
        ("max_abs_logit_diff", format!("{:e}", r.max_abs_logit_diff)),
        ("tolerance", format!("{}", r.tolerance)),
        ("passed", r.passed.to_string()),
    ] {
        t.push(vec![k.into(), v]);
    }
    let mut out = render(args.format, &t, &r);
    if args.format == Format::Table {
        out.push_str(&format!("\ntolerance 0: {TOLERANCE_REASON}\n"));
    }
    if let (Some(layers), Format::Table | Format::Csv | Format::Md) = (&r.layers, args.format) {
        let mut t = Tabular::new(&[
            "layer",
            "scheme",
            "accumulators_compared",
            "accumulators_mismatched",
            "max_abs_accumulator_diff",
            "max_abs_output_diff",
        ]);
        for l in layers {
            t.push(vec![
                l.layer.clone(),
                l.scheme.clone(),
                l.accumulators_compared.to_string(),
                l.accumulators_mismatched.to_string(),
                format!("{:e}", l.max_abs_accumulator_diff),
                format!("{:e}", l.max_abs_output_diff),
            ]);
        }
        out.push('\n');
        out.push_str(&render(args.format, &t, layers));
    }
    Ok(out)
}
