//! Known answer: the float engine's ResNet20 forward pass against an independent NumPy float64
//! implementation (`tests/reference/resnet20_numpy.py`, direct windowed einsum convolution, no
//! shared code), on the same pseudo-random weights and four unit-scale images stored in
//! `tests/data/`.

use std::path::Path;

use breakingbed::engine::classifier::FloatEngine;
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::io::weights::WeightStore;
use breakingbed::model;
use breakingbed::variant::{self, VariantKind, VariantSpec};
use ndarray::{Array2, Array4};

#[test]
fn resnet20_forward_matches_numpy_float64() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let net = model::builtin("resnet20", None, None).unwrap();
    let cn = variant::apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    let p = params::load(&cn, &dir.join("resnet20_ref.safetensors")).unwrap();
    let engine = FloatEngine::new(Net::new(cn, p).unwrap()).unwrap();
    let io = WeightStore::load(dir.join("resnet20_ref_io.safetensors")).unwrap();
    let x: Array4<f32> = io.tensors["input"].clone().into_dimensionality().unwrap();
    let want: Array2<f32> = io.tensors["logits"].clone().into_dimensionality().unwrap();
    let got = engine.try_logits(&x).unwrap();
    assert_eq!(got.dim(), (4, 10));
    // f32 arithmetic through 19 conv layers vs float64: relative error of a few 1e-6 per op
    // accumulates; 1e-4 absolute on logits of magnitude ~1 is well above that and far below
    // any real bug (a wrong padding or shortcut changes logits by > 1e-2).
    let max = (&got - &want).mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
    assert!(max < 1e-4, "max |diff| = {max}\ngot {got:?}\nwant {want:?}");
}
