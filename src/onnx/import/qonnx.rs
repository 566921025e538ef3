//! QONNX / FINN binarized layers: `BipolarQuant(x, scale)` (`sign(x) * scale`, sign(0) = +1),
//! `Quant` with bit width 1, signed, zero point 0 (qonnx executes it as the same bipolar
//! quantizer), and ONNX `Sign` (scale 1).
//!
//! A Conv / Gemm / MatMul whose weight *and* input both pass through such a quantizer is an XNOR
//! layer: `y = (s_a * s_w[o]) * (sign(x) . sign(W_o))`, i.e. our XNOR-Net layer with alpha
//! `alpha_o = s_a * s_w[o]` (the activation scale must be one value per tensor, the weight
//! scale one per output filter or one per tensor). Our engines recompute alpha from the latent
//! weights as `mean_i |W_oi|` ([`crate::engine::ops::xnor`]), so the importer stores the latent
//! weights `sign(W_oi) * alpha_o`: their mean magnitude is exactly `alpha_o` (n equal f32 values
//! sum exactly in f64 and divide back exactly), so the engines use the file's alpha bit for bit.
//! A weight quantizer without an activation quantizer is a float layer with weights
//! `sign(W) * s_w` (folded); an activation quantizer without a weight quantizer is an error.
//!
//! Sign conventions: `BipolarQuant` and 1-bit `Quant` map 0 to +1, as our engines do. ONNX
//! `Sign` maps 0 to 0: on weights an exact 0 is refused, on activations our layer reads it as +1
//! (documented in docs/onnx.md).
//!
//! The variant: an imported binarized network *is* the XNOR variant of its float skeleton
//! ([`xnor_spec`] finds the XNOR options whose binarized layers are exactly the file's).

use super::graph::Value;
use super::tensor::{elementwise, Attrs, Const};
use crate::model::{Network, Op};
use crate::variant::{apply, LayerPrecision, ShortcutPrecision, VariantKind, VariantSpec};
use crate::{Error, Result};

/// Quantizer op types recognised (any domain: QONNX uses `qonnx.custom_op.general`, FINN
/// `finn.custom_op.general`).
pub const QUANT_OPS: &[&str] = &["BipolarQuant", "Quant", "Sign"];

/// A binarized constant weight: `sign(w) * scale * act_scale` (`act_scale` is folded in when
/// the consumer's input is binarized too).
#[derive(Clone, Debug)]
pub struct BinWeight {
    /// Initializer name of the latent weight (for layer naming).
    pub name: Option<String>,
    pub dims: Vec<usize>,
    /// +/-1 per element.
    pub signs: Vec<f32>,
    pub scale: Const,
    pub act_scale: f32,
}

/// The scale of a quantizer node, checked (positive and finite; 1 for `Sign`), and for `Quant`
/// the checks that make it a bipolar quantizer.
pub fn scale_of(op: &str, a: &Attrs, ins: &[Option<Value>]) -> Result<Const> {
    let konst = |i: usize, what: &str| -> Result<Const> {
        match ins.get(i) {
            Some(Some(Value::Const(c))) => Ok(c.clone()),
            _ => Err(a.err(format!("{what} (input {i}) must be a constant"))),
        }
    };
    if op == "Sign" {
        return Ok(Const::f32(vec![], vec![1.0]));
    }
    let scale = konst(1, "scale")?;
    if op == "Quant" {
        let bits = konst(3, "bit width")?;
        let b = bits
            .scalar()
            .ok_or_else(|| a.err("bit width must be one value"))?;
        if b != 1.0 {
            return Err(a.err(format!(
                "Quant with bit width {b} is an integer quantizer; bbed runs binarized (+/-1) layers only: \
                 supported are BipolarQuant, Quant with bit width 1 (signed, zero point 0) and Sign"
            )));
        }
        if a.int("signed", 1) != 1 {
            return Err(a.err("unsigned 1-bit Quant gives {0, 1}, not +/-1: only bipolar (signed) binarization is supported"));
        }
        if konst(2, "zero point")?.to_f32().iter().any(|&z| z != 0.0) {
            return Err(a.err("1-bit Quant with a non-zero zero point is not a sign function"));
        }
    }
    if scale.is_empty() || scale.to_f32().iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(a.err("quantizer scale must be positive and finite"));
    }
    Ok(scale)
}

/// Binarizes a constant (a weight) with `scale`.
pub fn bin_weight(op: &str, a: &Attrs, w: &Const, scale: Const) -> Result<BinWeight> {
    let v = w.to_f32();
    if op == "Sign" && v.contains(&0.0) {
        return Err(a.err(
            "Sign of a weight that is exactly 0 gives 0, which a +/-1 layer cannot hold (use BipolarQuant)",
        ));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(a.err("weight holds a non-finite value"));
    }
    Ok(BinWeight {
        name: a.input_name(0),
        dims: w.dims.clone(),
        signs: v
            .iter()
            .map(|&x| if x >= 0.0 { 1.0 } else { -1.0 })
            .collect(),
        scale,
        act_scale: 1.0,
    })
}

impl BinWeight {
    /// The quantized values `sign(w) * scale * act_scale` in the weight's layout.
    pub fn values(&self, a: &Attrs) -> Result<Const> {
        let s = Const::f32(self.dims.clone(), self.signs.clone());
        let mut v = elementwise(&s, &self.scale, &a.ctx, |x, y| x * y, |_, _| None)?;
        if v.dims != self.dims {
            return Err(a.err(format!(
                "weight scale of shape {:?} does not broadcast onto the weight {:?}",
                self.scale.dims, self.dims
            )));
        }
        if self.act_scale != 1.0 {
            v = elementwise(
                &v,
                &Const::f32(vec![], vec![self.act_scale]),
                &a.ctx,
                |x, y| x * y,
                |_, _| None,
            )?;
        }
        Ok(v)
    }

    /// The 2-D weight transposed (MatMul / Gemm transB = 0 store `[in, out]`).
    pub fn transposed(self) -> Self {
        let (r, c) = (self.dims[0], self.dims[1]);
        let signs = (0..r * c)
            .map(|k| self.signs[(k % r) * c + k / r])
            .collect();
        let mut sd = self.scale.dims.clone();
        while sd.len() < 2 {
            sd.insert(0, 1);
        }
        let sv = self.scale.to_f32();
        let (sr, sc) = (sd[sd.len() - 2], sd[sd.len() - 1]);
        let st = (0..sr * sc).map(|k| sv[(k % sr) * sc + k / sr]).collect();
        let scale = if sd.len() == 2 {
            Const::f32(vec![sc, sr], st)
        } else {
            self.scale
        };
        BinWeight {
            name: self.name,
            dims: vec![c, r],
            signs,
            scale,
            act_scale: self.act_scale,
        }
    }
}

/// Latent weights `sign(W_oi) * alpha_o` with `alpha_o = act_scale * s_w[o]` (see the module
/// doc); `dims[0]` is the output-filter axis.
pub fn latent_weights(b: &BinWeight, dims: &[usize], a: &Attrs) -> Result<Vec<f32>> {
    let o = dims[0];
    let per_filter = b.scale.along(0, o, dims.len()).ok_or_else(|| {
        a.err(format!(
            "weight scale of shape {:?} is not one value per output filter (XNOR alpha is per filter)",
            b.scale.dims
        ))
    })?;
    let n = b.signs.len() / o.max(1);
    let alpha: Vec<f32> = per_filter.iter().map(|s| s * b.act_scale).collect();
    if alpha.iter().any(|x| !x.is_finite() || *x <= 0.0) {
        return Err(
            a.err("XNOR alpha (activation scale x weight scale) is not positive and finite")
        );
    }
    Ok(b.signs
        .iter()
        .enumerate()
        .map(|(k, s)| s * alpha[k / n])
        .collect())
}

fn binary_set(net: &Network, spec: &VariantSpec) -> Result<Vec<String>> {
    let cn = apply(net, spec)?;
    Ok(cn
        .layers
        .iter()
        .zip(&net.layers)
        .filter(|(c, _)| matches!(c.precision, LayerPrecision::Binary { .. }))
        .map(|(_, l)| l.name.clone())
        .collect())
}

/// The XNOR variant spec (from `base`, whose kind must be XNOR) whose binarized layers are
/// exactly `binarized`; `fp_first_last` / `shortcut` are chosen when `free_*` says the user left
/// them unset. Errors when no choice matches, or when the network has a ReLU (the XNOR variant
/// runs every ReLU as HardTanh, so the file's float layers would change meaning).
pub fn xnor_spec(
    net: &Network,
    binarized: &[String],
    base: VariantSpec,
    free_fp_first_last: bool,
    free_shortcut: bool,
) -> Result<VariantSpec> {
    debug_assert_eq!(base.kind, VariantKind::Xnor);
    if let Some(l) = net.layers.iter().find(|l| l.op == Op::Relu) {
        return Err(Error::input(
            format!("layer '{}'", l.name),
            "a binarized (QONNX) network with a ReLU: bbed's XNOR variant runs every ReLU as \
             HardTanh (sign(relu(x)) would be +1 everywhere), which would change this layer; \
             export HardTanh (Clip -1..1) activations",
        ));
    }
    let mut want: Vec<String> = binarized.to_vec();
    want.sort();
    let fps: &[bool] = if free_fp_first_last {
        &[true, false]
    } else {
        &[base.options.fp_first_last]
    };
    let shs: &[ShortcutPrecision] = if free_shortcut {
        &[ShortcutPrecision::Binary, ShortcutPrecision::Full]
    } else {
        &[base.options.shortcut]
    };
    let mut tried = Vec::new();
    for &fp in fps {
        for &sh in shs {
            let mut spec = base.clone();
            spec.options.fp_first_last = fp;
            spec.options.shortcut = sh;
            let mut got = binary_set(net, &spec)?;
            got.sort();
            if got == want {
                return Ok(spec);
            }
            tried.push(got);
        }
    }
    let missing: Vec<&String> = tried[0].iter().filter(|n| !want.contains(n)).collect();
    let extra: Vec<&String> = want.iter().filter(|n| !tried[0].contains(n)).collect();
    Err(Error::input(
        "--variant",
        format!(
            "the file binarizes layers [{}], which no XNOR variant of this network does with the \
             given options (the XNOR variant binarizes every conv/linear except, with fp_first_last, \
             the first conv and last linear, and with shortcut=full the 1x1 projection shortcuts); \
             float in the file but binary in the variant: [{}]; binary in the file only: [{}]",
            want.join(", "),
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ),
    ))
}
