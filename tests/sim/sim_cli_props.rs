//! Properties of the network -> simulator mapping and of the functional check, over random
//! networks, variants, layer shapes and devices.

use breakingbed::hw::Device;
use breakingbed::model::builtin;
use breakingbed::sim::check::check_layer;
use breakingbed::sim::network::layer_specs;
use breakingbed::sim::{simulate_layers, LayerKind, LayerSpec, Precision};
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use proptest::prelude::*;

fn hw(name: &str) -> Device {
    Device::load(format!("{}/hw/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

const KINDS: [VariantKind; 8] = [
    VariantKind::Vanilla,
    VariantKind::Kd,
    VariantKind::Filter,
    VariantKind::Channel,
    VariantKind::Kernel,
    VariantKind::Weight,
    VariantKind::Xnor,
    VariantKind::Abc,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// For any CIFAR ResNet-(6n+2), variant and input size: the specs are exactly the weighted
    /// layers of the compressed network, their MACs sum to the model's own dense MAC count
    /// (`Network::macs`, counted from the graph independently of the simulator), binary work is
    /// M x N times the binary layers' MACs, and total cycles are the sum of layer cycles.
    #[test]
    fn specs_cover_the_network(
        n in 1usize..4,
        kind in 0usize..8,
        m in 1usize..4,
        nb in 1usize..4,
        rate in 0.0f64..0.9,
        hw_in in 8usize..40,
    ) {
        let net = builtin(&format!("resnet{}", 6 * n + 2), Some([3, hw_in, hw_in]), None).unwrap();
        let mut spec = VariantSpec::new(KINDS[kind]);
        spec.options.m = m;
        spec.options.n = nb;
        spec.options.rate = rate;
        let c = apply(&net, &spec).unwrap();
        let specs = layer_specs(&c).unwrap();
        let weighted: Vec<&str> = c
            .network
            .layers
            .iter()
            .filter(|l| l.op.is_weighted())
            .map(|l| l.name.as_str())
            .collect();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        prop_assert_eq!(names, weighted);
        let macs: u64 = specs.iter().map(|s| s.geometry().unwrap().macs()).sum();
        prop_assert_eq!(macs, c.network.macs());

        let dev = hw("zu3eg.toml");
        let r = simulate_layers(&specs, &dev).unwrap();
        let mut want_work = 0u64;
        for s in &specs {
            let g = s.geometry().unwrap();
            want_work += match s.precision {
                Precision::Full => g.macs(),
                Precision::Binary { m, n } => (m * n) as u64 * g.macs(),
            };
        }
        prop_assert_eq!(r.layers.iter().map(|l| l.work).sum::<u64>(), want_work);
        prop_assert_eq!(r.layers.iter().map(|l| l.cycles).sum::<u64>(), r.total_cycles);
    }

    /// Random single layers (channels across word boundaries, odd sizes, strides, 1x1/3x3/5x5,
    /// linear) on the paper slice and on physical INT8 lanes: the functional check passes.
    #[test]
    fn random_layers_match(
        in_c in 1usize..70,
        out_c in 1usize..6,
        k in prop::sample::select(vec![1usize, 3, 5]),
        stride in 1usize..3,
        h in 5usize..9,
        w in 5usize..9,
        binary in any::<bool>(),
        linear in any::<bool>(),
        m in 1usize..3,
        n in 1usize..3,
        dev_name in prop::sample::select(vec!["paper.toml", "zcu102.toml", "zynq7020.toml"]),
        seed in any::<u64>(),
    ) {
        let kind = if linear {
            LayerKind::Linear { in_f: in_c * 3, out_f: out_c }
        } else {
            LayerKind::Conv { in_c, out_c, kernel: k, stride, padding: k / 2, in_h: h, in_w: w }
        };
        let precision = if binary { Precision::Binary { m, n } } else { Precision::Full };
        let spec = LayerSpec { name: "rand".into(), kind, precision };
        let c = check_layer(&spec, 0, &hw(dev_name), 1, seed).unwrap();
        prop_assert!(c.matched, "{:?}", c);
        prop_assert!(c.compared > 0);
    }
}
