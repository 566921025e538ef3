//! Parameter and MAC counts of the built-in networks against published figures, layer naming
//! against the PyTorch state-dict layouts, and analytic cost of binarized variants.

use breakingbed::cost::{cost, NccParams};
use breakingbed::model::{builtin, Op};
use breakingbed::variant::{apply, ShortcutPrecision, VariantKind, VariantSpec};

// Published counts (params incl. BN affine; MACs of conv + linear, one fused multiply-add = one):
// - ResNet18 / ResNet50: torchvision model documentation lists 11,689,512 and 25,557,032
//   parameters and 1.81 / 4.09 GFLOPS (fvcore, 224x224; one fused multiply-add = one); the exact
//   MACs are fvcore's count of conv + linear layers (ResNet50 = torchvision v1.5).
// - ResNet20 / ResNet56 option A: He et al. 2016 (Table 6: 0.27M, 0.85M params); exact
//   counts of the akamaster/pytorch_resnet_cifar10 models (GitHub).
#[test]
fn resnet18_params_and_macs_match_torchvision() {
    let n = builtin("resnet18", None, None).unwrap();
    assert_eq!(n.num_params(), 11_689_512);
    assert_eq!(n.macs(), 1_814_073_344);
}

#[test]
fn resnet50_params_and_macs_match_torchvision() {
    let n = builtin("resnet50", None, None).unwrap();
    assert_eq!(n.num_params(), 25_557_032);
    assert_eq!(n.macs(), 4_089_184_256);
}

#[test]
fn resnet20_params_and_macs_match_published() {
    let n = builtin("resnet20", None, None).unwrap();
    assert_eq!(n.num_params(), 269_722);
    assert_eq!(n.macs(), 40_551_040);
}

#[test]
fn resnet56_params_and_macs_match_published() {
    let n = builtin("resnet56", None, None).unwrap();
    assert_eq!(n.num_params(), 853_018);
    assert_eq!(n.macs(), 125_485_696);
}

#[test]
fn resnet_6n_plus_2_params_follow_closed_form() {
    // Option A, by hand: conv1 3*16*9, per stage s (planes p = 16*2^s) n blocks of two 3x3
    // convs, the first of stages 2/3 reading p/2 channels; BN affine 2 per channel; linear 64*10+10.
    for n in [1usize, 2, 5, 18] {
        let mut params = 3 * 16 * 9 + 2 * 16 + 64 * 10 + 10;
        for (s, p) in [16usize, 32, 64].into_iter().enumerate() {
            let first_in = if s == 0 { p } else { p / 2 };
            params += first_in * p * 9 + p * p * 9 + (n - 1) * 2 * p * p * 9 + n * 2 * 2 * p;
        }
        let net = builtin(&format!("resnet{}", 6 * n + 2), None, None).unwrap();
        assert_eq!(net.num_params(), params as u64, "resnet{}", 6 * n + 2);
    }
}

#[test]
fn state_dict_names_follow_pytorch_layouts() {
    let r20 = builtin("resnet20", None, None).unwrap();
    let names: Vec<String> = r20.param_shapes().into_iter().map(|(n, _)| n).collect();
    for want in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer3.2.bn2.bias",
        "linear.weight",
        "linear.bias",
    ] {
        assert!(names.contains(&want.to_string()), "missing {want}");
    }
    // akamaster ResNet20: 19 convs + 1 linear weight, 19 BN x 4 tensors, 1 linear bias.
    assert_eq!(names.len(), 20 + 19 * 4 + 1);
    let r18 = builtin("resnet18", None, None).unwrap();
    let shapes = r18.param_shapes();
    let get = |n: &str| {
        shapes
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("missing {n}"))
    };
    assert_eq!(get("conv1.weight"), vec![64, 3, 7, 7]);
    assert_eq!(get("layer2.0.downsample.0.weight"), vec![128, 64, 1, 1]);
    assert_eq!(get("layer2.0.downsample.1.running_mean"), vec![128]);
    assert_eq!(get("fc.weight"), vec![1000, 512]);
    let r50 = builtin("resnet50", None, None).unwrap();
    let s50 = r50.param_shapes();
    // torchvision v1.5: stride 2 on the 3x3 conv2, bottleneck width 128 in layer2.
    let l2 = r50
        .layers
        .iter()
        .find(|l| l.name == "layer2.0.conv2")
        .unwrap();
    assert!(matches!(
        l2.op,
        Op::Conv {
            stride: 2,
            in_c: 128,
            out_c: 128,
            kernel: 3,
            ..
        }
    ));
    assert!(s50
        .iter()
        .any(|(n, s)| n == "layer4.2.conv3.weight" && *s == vec![2048, 512, 1, 1]));
    // torchvision's ResNet50 state dict has 320 entries, 53 of them BN num_batches_tracked
    // (not listed here): 53 conv weights + 53 BN x 4 + fc weight and bias = 267.
    assert_eq!(s50.len(), 53 + 53 * 4 + 2);
}

#[test]
fn input_override_changes_shapes_not_params_of_convs() {
    let n = builtin("resnet20", Some([1, 28, 28]), Some(10)).unwrap();
    // Only conv1's in-channels change: 16*9*(3-1) fewer weights.
    assert_eq!(n.num_params(), 269_722 - 16 * 9 * 2);
    // 28 -> 28 -> 14 -> 7 spatial, by the conv output-size rule.
    let last_conv = n
        .layers
        .iter()
        .rfind(|l| matches!(l.op, Op::Conv { .. }))
        .unwrap();
    assert_eq!(last_conv.out_shape, [64, 7, 7]);
}

fn ncc_m(model: &str, spec: &VariantSpec) -> (f64, f64) {
    let net = builtin(model, None, None).unwrap();
    let r = cost(&apply(&net, spec).unwrap(), &NccParams::reference());
    (r.total.memory_mb, r.total.ncc)
}

#[test]
fn xnor_resnet20_ncc_is_fp_macs_plus_binary_over_48() {
    // By hand: conv1 3*16*9*32*32 = 442,368 MACs, linear 640 MACs stay fp; the rest of the
    // published 40,551,040 MACs are XNOR-popcount MACs spread over 48 DSP48 lanes.
    let fp = 442_368.0 + 640.0;
    let bin = 40_551_040.0 - fp;
    let (_, ncc) = ncc_m("resnet20", &VariantSpec::new(VariantKind::Xnor));
    assert!((ncc - (fp + bin / 48.0) / 1e6).abs() < 1e-12);
    for m in [3usize, 5] {
        let mut s = VariantSpec::new(VariantKind::Abc);
        s.options.m = m;
        s.options.n = m;
        let (_, ncc) = ncc_m("resnet20", &s);
        assert!((ncc - (fp + (m * m) as f64 * bin / 48.0) / 1e6).abs() < 1e-9);
    }
}

#[test]
fn xnor_resnet20_memory_by_hand() {
    // Weights-only accounting: fp32 conv1 (432) + linear (640) weights; 1 bit per binary weight
    // of the 18 binary convs (268,336 - 1,072 = 267,264 bits); scales: one fp32 alpha per output
    // channel of the binary convs (6*16 + 6*32 + 6*64 = 672); biases off.
    let mut s = VariantSpec::new(VariantKind::Xnor);
    s.options.bias = false;
    let (mem, _) = ncc_m("resnet20", &s);
    let bytes = (432 + 640) * 4 + 267_264 / 8 + 672 * 4;
    assert!((mem - bytes as f64 / 1e6).abs() < 1e-12, "{mem}");
}

#[test]
fn xnor_resnet18_full_precision_shortcuts_cost_their_macs() {
    // The three 1x1 downsample convs each have 6,422,528 MACs (64*128*28*28 etc.); keeping them
    // fp moves them from the /48 part to the fp part.
    let mut full = VariantSpec::new(VariantKind::Xnor);
    full.options.shortcut = ShortcutPrecision::Full;
    let (_, a) = ncc_m("resnet18", &full);
    let (_, b) = ncc_m("resnet18", &VariantSpec::new(VariantKind::Xnor));
    let ds = 3.0 * 6_422_528.0;
    assert!(((a - b) - (ds - ds / 48.0) / 1e6).abs() < 1e-9);
}

#[test]
fn counted_bn_and_biases_give_the_published_parameter_counts() {
    // With BN counted (2 affine values per channel) and biases counted, the stored fp32 values
    // of the vanilla network are exactly the published parameter counts.
    let mut s = VariantSpec::new(VariantKind::Vanilla);
    s.options.bn = breakingbed::variant::BnMode::Counted;
    for (model, params) in [
        ("resnet20", 269_722u64),
        ("resnet56", 853_018),
        ("resnet18", 11_689_512),
        ("resnet50", 25_557_032),
    ] {
        let net = builtin(model, None, None).unwrap();
        let t = cost(&apply(&net, &s).unwrap(), &NccParams::reference()).total;
        assert_eq!(t.fp_params, params, "{model}");
        assert_eq!(t.memory_bytes, 4 * params, "{model}");
    }
}
