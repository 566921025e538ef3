//! `bbed export`: write a variant with its weights as ONNX (float variants, for onnxruntime)
//! or QONNX (binarized variants, `BipolarQuant` nodes, for the `qonnx` executor and FINN).
//! The graph conventions are fixed in [`crate::onnx::export`]; the file is written by the
//! output rules of [`crate::io::output`] (refused if it exists unless `--force`, atomic).

use std::path::PathBuf;

use clap::Args;

use super::infer::NetArgs;
use crate::io::atomic::write_bytes_atomic;
use crate::io::output;
use crate::onnx::export::{export as build, ExportFormat, OPSET, QONNX_DOMAIN};
use crate::onnx::proto::encode_model;
use crate::Result;

const AFTER: &str = "\
The graph takes unit-scale images [0,1] as input `input` [N,C,H,W] and applies the model's
normalisation inside (Sub mean, Div std); its output `logits` is [N, classes]. ONNX files have
a symbolic batch N; QONNX files a batch of 1 (the qonnx executor and FINN need fixed shapes).
Opset 13; QONNX adds the domain qonnx.custom_op.general (BipolarQuant). Binarized variants
(xnor, abc) need --format qonnx: XNOR layers become Conv(BipolarQuant(x, 1),
BipolarQuant(W, alpha)), ABC layers the sum of their M x N base-pair convolutions.
Without --weights the network gets a seeded random initialisation (--init-seed).

Examples:
  bbed export --format onnx --model resnet20 --variant filter --rate 0.5 \\
      --weights filter.safetensors --out resnet20_filter.onnx
  bbed export --format qonnx --model resnet8 --input 1,28,28 --variant xnor \\
      --weights xnor.safetensors --out resnet8_xnor.qonnx.onnx";

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct ExportArgs {
    #[command(flatten)]
    pub net: NetArgs,
    /// File format: onnx (float variants) or qonnx (any variant; BipolarQuant for binarized layers)
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Output file
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out if it exists
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: ExportArgs) -> Result<String> {
    let mut inputs = Vec::new();
    if let Some(w) = &args.net.weights {
        inputs.push(("--weights", w.as_path()));
    }
    output::check_file("--out", &args.out, args.force, &inputs)?;
    let net = args.net.net(1)?;
    let (model, s) = build(&net, args.format)?;
    write_bytes_atomic(&args.out, &encode_model(&model))?;
    let domains = if args.format == ExportFormat::Qonnx {
        format!(" + {QONNX_DOMAIN} 1")
    } else {
        String::new()
    };
    let batch = s.batch.map_or("N".to_string(), |b| b.to_string());
    let [c, h, w] = s.input;
    Ok(format!(
        "wrote {} ({:?}, opset {OPSET}{domains}): {} nodes ({} BipolarQuant), {} initializers; \
         input [{batch}, {c}, {h}, {w}] unit-scale [0,1], normalisation inside; output logits \
         [{batch}, {}]\n",
        args.out.display(),
        args.format,
        s.nodes,
        s.bipolar_quant_nodes,
        s.initializers,
        s.classes
    ))
}
