//! Maps a compressed network ([`CompressedNetwork`]) onto the simulator's layer list.
//!
//! Every conv and linear layer of the (already compressed) network becomes one [`LayerSpec`], in
//! network order, with the input shape its producer delivers and the precision the variant gave
//! it (`LayerPrecision::Full` -> [`Precision::Full`], `Binary { m_weight_bases, n_act_bases }` ->
//! [`Precision::Binary { m, n }`]). BN, activations, pooling, adds and option-A shortcuts are not
//! mapped: they run in fabric beside the array and cost no DSP cycles here (the same convention as
//! the MAC counts and NCC of Table 1).
//!
//! Pruned variants:
//! - `filter` / `channel` pruning changes the network itself (fewer filters / channels), so the
//!   simulated layers are the physically smaller ones.
//! - `kernel` / `weight` pruning keeps the shape and marks weights as zero. The output-stationary
//!   array streams every reduction step in a fixed order (see [`super::schedule`]); skipping
//!   irregularly placed zeros would need index decoding and load balancing that the schedule does
//!   not model. So the simulator runs the **dense schedule**: zero weights cost their cycles, and
//!   cycles equal the unpruned network's. [`sparse_layers`] names the layers where this applies so
//!   callers can say so; the cost model's MAC counts (which do scale with the kept fraction) are
//!   the place to read the ideal sparse work.

use super::layer::{LayerKind, LayerSpec, Precision};
use crate::model::Op;
use crate::variant::{CompressedNetwork, LayerPrecision, Sparsity};
use crate::{Error, Result};

/// The conv and linear layers of `net` as simulator layers, in network order.
pub fn layer_specs(net: &CompressedNetwork) -> Result<Vec<LayerSpec>> {
    let network = &net.network;
    if net.layers.len() != network.layers.len() {
        return Err(Error::input(
            format!("network `{}`", network.name),
            format!(
                "{} layer compressions for {} layers",
                net.layers.len(),
                network.layers.len()
            ),
        ));
    }
    let mut specs = Vec::new();
    for (i, (layer, comp)) in network.layers.iter().zip(&net.layers).enumerate() {
        let [c, h, w] = network.input_shape(i, 0);
        let kind = match layer.op {
            Op::Conv {
                in_c,
                out_c,
                kernel,
                stride,
                padding,
                ..
            } => {
                if in_c != c {
                    return Err(Error::input(
                        format!("layer '{}'", layer.name),
                        format!(
                            "in_c = {in_c} but its input has {c} channels (network not inferred?)"
                        ),
                    ));
                }
                LayerKind::Conv {
                    in_c,
                    out_c,
                    kernel,
                    stride,
                    padding,
                    in_h: h,
                    in_w: w,
                }
            }
            Op::Linear { in_f, out_f, .. } => {
                if in_f != c * h * w {
                    return Err(Error::input(
                        format!("layer '{}'", layer.name),
                        format!("in_f = {in_f} but its input flattens to {}", c * h * w),
                    ));
                }
                LayerKind::Linear { in_f, out_f }
            }
            _ => continue,
        };
        let precision = match comp.precision {
            LayerPrecision::Full => Precision::Full,
            LayerPrecision::Binary {
                m_weight_bases,
                n_act_bases,
            } => Precision::Binary {
                m: m_weight_bases,
                n: n_act_bases,
            },
        };
        let spec = LayerSpec {
            name: layer.name.clone(),
            kind,
            precision,
        };
        // Reject geometries the schedule cannot map (e.g. padding >= kernel) here, by layer name.
        spec.geometry()?;
        specs.push(spec);
    }
    if specs.is_empty() {
        return Err(Error::input(
            format!("network `{}`", network.name),
            "has no conv or linear layer to simulate",
        ));
    }
    Ok(specs)
}

/// Names of conv/linear layers whose weights are sparse (kernel/weight pruning): the simulator
/// runs them with the dense schedule (see the module doc).
pub fn sparse_layers(net: &CompressedNetwork) -> Vec<String> {
    net.network
        .layers
        .iter()
        .zip(&net.layers)
        .filter(|(l, c)| l.op.is_weighted() && matches!(c.sparsity, Sparsity::Sparse { .. }))
        .map(|(l, _)| l.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builtin;
    use crate::variant::{apply, VariantKind, VariantSpec};

    fn specs(model: &str, kind: VariantKind) -> Vec<LayerSpec> {
        let net = builtin(model, None, None).unwrap();
        layer_specs(&apply(&net, &VariantSpec::new(kind)).unwrap()).unwrap()
    }

    /// He et al. (2016) Sec. 4.2: ResNet-(6n+2) has 6n+1 convs of 3x3 plus one fc; ResNet20:
    /// 19 convs + fc = 20 weighted layers. MACs per layer summed over the specs reproduce the
    /// reference count 40,551,040 (anchors: ResNet20 option A).
    #[test]
    fn resnet20_layers_and_macs() {
        let s = specs("resnet20", VariantKind::Vanilla);
        assert_eq!(s.len(), 20);
        let macs: u64 = s.iter().map(|l| l.geometry().unwrap().macs()).sum();
        assert_eq!(macs, 40_551_040);
        assert!(matches!(
            s[19].kind,
            LayerKind::Linear {
                in_f: 64,
                out_f: 10
            }
        ));
        assert!(matches!(
            s[0].kind,
            LayerKind::Conv {
                in_c: 3,
                out_c: 16,
                kernel: 3,
                stride: 1,
                padding: 1,
                in_h: 32,
                in_w: 32
            }
        ));
    }

    /// XNOR keeps the first conv and the fc full precision (fp_first_last default) and makes the
    /// other 18 convs Binary{1,1}.
    #[test]
    fn xnor_precisions() {
        let s = specs("resnet20", VariantKind::Xnor);
        assert_eq!(s[0].precision, Precision::Full);
        assert_eq!(s[19].precision, Precision::Full);
        assert!(s[1..19]
            .iter()
            .all(|l| l.precision == Precision::Binary { m: 1, n: 1 }));
    }

    /// Filter pruning at 0.5 halves the filters of the first conv of every basic block
    /// (16 -> 8 in stage 1), so the simulated layer is smaller.
    #[test]
    fn filter_pruning_uses_smaller_network() {
        let s = specs("resnet20", VariantKind::Filter);
        let conv1 = s.iter().find(|l| l.name == "layer1.0.conv1").unwrap();
        assert!(matches!(conv1.kind, LayerKind::Conv { out_c: 8, .. }));
        let conv2 = s.iter().find(|l| l.name == "layer1.0.conv2").unwrap();
        assert!(matches!(
            conv2.kind,
            LayerKind::Conv {
                in_c: 8,
                out_c: 16,
                ..
            }
        ));
    }

    #[test]
    fn weight_pruning_is_dense_schedule() {
        let net = builtin("resnet20", None, None).unwrap();
        let c = apply(&net, &VariantSpec::new(VariantKind::Weight)).unwrap();
        let v = apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
        assert_eq!(layer_specs(&c).unwrap(), layer_specs(&v).unwrap());
        // fp_first_last keeps the first conv and the fc dense.
        let sparse = sparse_layers(&c);
        assert_eq!(sparse.len(), 18);
        assert!(!sparse.contains(&"conv1".to_string()));
    }
}
