//! Property tests of the cost model: pruning is monotone, ABC's binary NCC is linear in M*N,
//! and a binary layer stores ceil(bits/8) bytes per base. Small networks keep them fast.

use breakingbed::cost::{cost, CostTotals, NccParams};
use breakingbed::model::{builtin, Layer, Network, Normalization, Op};
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use proptest::prelude::*;

fn totals(net: &Network, spec: &VariantSpec) -> CostTotals {
    cost(&apply(net, spec).unwrap(), &NccParams::reference()).total
}

fn prune_kind() -> impl Strategy<Value = VariantKind> {
    prop_oneof![
        Just(VariantKind::Filter),
        Just(VariantKind::Channel),
        Just(VariantKind::Kernel),
        Just(VariantKind::Weight)
    ]
}

fn no_greater(a: &CostTotals, b: &CostTotals) -> bool {
    a.fp_macs <= b.fp_macs
        && a.binary_ops <= b.binary_ops
        && a.fp_params <= b.fp_params
        && a.binary_params <= b.binary_params
        && a.memory_bytes <= b.memory_bytes
        && a.ncc <= b.ncc + 1e-12
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A higher rate (global and per-stage) never costs more, for every cost, index overhead
    /// included; and with no index overhead no pruning costs more than the dense network.
    #[test]
    fn pruning_never_increases_any_cost(
        kind in prune_kind(),
        depth in prop_oneof![Just("resnet8"), Just("resnet14")],
        // Rates in (0, 1): the shared rate rule refuses 1 (and 0 for the mask schemes).
        r in 1e-6f64..1.0, dr in 0.0f64..1.0, stage in 1e-6f64..1.0, bits in 0u32..16,
    ) {
        let net = builtin(depth, None, None).unwrap();
        let lo = r * (1.0 - dr);
        let mut a = VariantSpec::new(kind);
        a.options.index_bits = bits;
        a.options.rate = lo;
        let mut b = a.clone();
        b.options.rate = r;
        let key = if kind == VariantKind::Channel { "layer2.*.conv2" } else { "layer2.*" };
        a.options.rates.insert(key.into(), stage * (1.0 - dr));
        b.options.rates.insert(key.into(), stage);
        let (ta, tb) = (totals(&net, &a), totals(&net, &b));
        prop_assert!(no_greater(&tb, &ta), "rate {r} vs {lo}: {tb:?} > {ta:?}");
        let mut z = b.clone();
        z.options.index_bits = 0;
        let dense = totals(&net, &VariantSpec::new(VariantKind::Vanilla));
        prop_assert!(no_greater(&totals(&net, &z), &dense));
    }

    /// NCC(ABC MxN) - fp part = M*N * (binary MACs / 48), the binary MACs being the dense MACs
    /// of every layer except the fp first conv and last linear.
    #[test]
    fn abc_binary_ncc_is_linear_in_m_times_n(m in 1usize..=8, n in 1usize..=8, depth in prop_oneof![Just("resnet8"), Just("resnet20")]) {
        let net = builtin(depth, None, None).unwrap();
        let mut s = VariantSpec::new(VariantKind::Abc);
        s.options.m = m;
        s.options.n = n;
        let t = totals(&net, &s);
        let fp_first_last = net.layer_macs(0) + net.layer_macs(net.layers.len() - 1);
        prop_assert_eq!(t.fp_macs, fp_first_last);
        let binary = (net.macs() - fp_first_last) as f64;
        let expect = (m * n) as f64 * binary / 48.0 / 1e6;
        prop_assert!(((t.ncc - t.fp_macs as f64 / 1e6) - expect).abs() <= 1e-9 * expect.max(1.0));
    }

    /// A binary conv with arbitrary shape stores M * ceil(out*in*k*k / 8) bytes (no scales, no
    /// bias counted), independent of the rest of the network.
    #[test]
    fn binary_layer_memory_is_ceil_bits_over_8_per_base(
        in_c in 1usize..9, out_c in 1usize..9, k in 1usize..4, m in 1usize..6,
    ) {
        let conv = |name: &str, out_c: usize, kernel: usize| Layer {
            name: name.into(),
            op: Op::Conv { in_c: 0, out_c, kernel, stride: 1, padding: kernel / 2, bias: false },
            inputs: vec![],
            out_shape: [0; 3],
        };
        let mut layers = vec![conv("first", in_c, 1), conv("mid", out_c, k)];
        layers[1].inputs = vec![0];
        layers.push(Layer { name: "fc".into(), op: Op::Linear { in_f: 0, out_f: 3, bias: false }, inputs: vec![1], out_shape: [0; 3] });
        let mut net = Network { name: "t".into(), input: [2, 5, 5], num_classes: 3, normalization: Normalization::identity(2), layers };
        net.infer().unwrap();
        let mut s = VariantSpec::new(VariantKind::Abc);
        s.options.m = m;
        s.options.scales = false;
        let r = cost(&apply(&net, &s).unwrap(), &NccParams::reference());
        let bits = out_c * in_c * k * k;
        prop_assert_eq!(r.layers[1].memory_bytes, (m * bits.div_ceil(8)) as u64);
        prop_assert_eq!(r.layers[1].binary_params, bits as u64);
    }

    /// Structured pruning yields a valid, consistent network: shapes re-infer and the kept
    /// filter count of every pruned conv is out_c - round(rate * out_c), at least 1.
    #[test]
    fn filter_pruning_keeps_round_of_rate(r in 1e-6f64..1.0) {
        let net = builtin("resnet8", None, None).unwrap();
        let mut s = VariantSpec::new(VariantKind::Filter);
        s.options.rate = r;
        let c = apply(&net, &s).unwrap();
        let mut again = c.network.clone();
        prop_assert!(again.infer().is_ok());
        for (old, new) in net.layers.iter().zip(&c.network.layers) {
            if let (Op::Conv { out_c: a, .. }, Op::Conv { out_c: b, .. }) = (&old.op, &new.op) {
                if old.name.ends_with(".conv1") && old.name.starts_with("layer") {
                    let want = (*a - ((*a as f64) * r).round() as usize).max(1);
                    prop_assert_eq!(*b, want, "{}", old.name);
                } else {
                    prop_assert_eq!(a, b, "{} is tied to a residual add and must not shrink", old.name);
                }
            }
        }
    }
}
