//! Network descriptions and variant plumbing: TOML parsing, serde round trips, rate-override
//! patterns, projection-shortcut detection, output-format helper.

use breakingbed::cli::format::{render, Format, Tabular};
use breakingbed::model::{builtin, custom, Op};
use breakingbed::variant::prune::{glob_match, rate_for};
use breakingbed::variant::{
    apply, is_projection_shortcut, LayerPrecision, ShortcutPrecision, VariantKind, VariantSpec,
};

#[test]
fn example_custom_network_parses_with_inferred_channels() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/custom_net.toml"
    ))
    .unwrap();
    let net = custom::from_toml_str(&text, "custom_net.toml").unwrap();
    assert_eq!(net.input, [1, 28, 28]);
    let conv2 = &net.layers[net.index_of("conv2").unwrap()];
    // conv2 reads pool1's 16 channels at 14x14 (28 / max-pool 2).
    assert!(matches!(
        conv2.op,
        Op::Conv {
            in_c: 16,
            out_c: 32,
            ..
        }
    ));
    assert_eq!(conv2.out_shape, [32, 14, 14]);
    let add = &net.layers[net.index_of("add").unwrap()];
    assert_eq!(
        add.inputs,
        vec![net.index_of("bn3").unwrap(), net.index_of("act2").unwrap()]
    );
    let fc = net.layers.last().unwrap();
    assert!(matches!(
        fc.op,
        Op::Linear {
            in_f: 1568,
            out_f: 10,
            bias: true
        }
    ));
}

#[test]
fn custom_network_errors_name_the_layer_or_field() {
    let e = custom::from_toml_str(
        "name='a'\ninput=[1,4,4]\nnum_classes=2\n[[layers]]\nop='relu'\n",
        "f.toml",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("layers[0]") && e.to_string().contains("name"),
        "{e}"
    );
    let e = custom::from_toml_str(
        "name='a'\ninput=[1,4,4]\nnum_classes=2\n[[layers]]\nname='c'\nop='conv'\nout_c=2\nkernel=5\n",
        "f.toml",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("layer 'c'") && e.to_string().contains("do not fit"),
        "{e}"
    );
    let e = custom::from_toml_str(
        "name='a'\ninput=[1,4,4]\nnum_classes=2\n[[layers]]\nname='fc'\nop='linear'\nout_f=3\n",
        "f.toml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("num_classes"), "{e}");
    let e = custom::from_toml_str(
        "name='a'\ninput=[1,4,4]\nnum_classes=2\n[[layers]]\nname='fc'\nop='linear'\nout_f=2\ninputs=['nope']\n",
        "f.toml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("'nope'"), "{e}");
}

#[test]
fn descriptions_round_trip_through_json() {
    let net = builtin("resnet8", None, None).unwrap();
    let back: breakingbed::model::Network =
        serde_json::from_str(&serde_json::to_string(&net).unwrap()).unwrap();
    assert_eq!(back, net);
    let mut spec = VariantSpec::new(VariantKind::Abc);
    spec.options.m = 3;
    let c = apply(&net, &spec).unwrap();
    let back: breakingbed::variant::CompressedNetwork =
        serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn rate_patterns_prefer_the_longest_match() {
    assert!(glob_match("layer1.*", "layer1.0.conv1"));
    assert!(glob_match("*conv2", "layer3.2.conv2"));
    assert!(!glob_match("layer2.*", "layer1.0.conv1"));
    assert!(glob_match("a*b*c", "aXbYc") && !glob_match("a*b*c", "aXcYb"));
    let mut s = VariantSpec::new(VariantKind::Weight);
    s.options.rate = 0.1;
    s.options.rates.insert("layer1.*".into(), 0.2);
    s.options.rates.insert("layer1.0.conv1".into(), 0.3);
    assert_eq!(rate_for(&s, "layer1.0.conv1"), 0.3);
    assert_eq!(rate_for(&s, "layer1.1.conv1"), 0.2);
    assert_eq!(rate_for(&s, "layer2.0.conv1"), 0.1);
}

#[test]
fn projection_shortcuts_are_exactly_the_downsample_convs() {
    for model in ["resnet18", "resnet50", "resnet20"] {
        let net = builtin(model, None, None).unwrap();
        for (i, l) in net.layers.iter().enumerate() {
            assert_eq!(
                is_projection_shortcut(&net, i),
                l.name.ends_with("downsample.0"),
                "{model} {}",
                l.name
            );
        }
    }
    let net = builtin("resnet50", None, None).unwrap();
    let mut s = VariantSpec::new(VariantKind::Xnor);
    s.options.shortcut = ShortcutPrecision::Full;
    let c = apply(&net, &s).unwrap();
    // ResNet50 has 4 downsample convs; with conv1 and fc, 6 weighted layers stay fp.
    let fp = net
        .layers
        .iter()
        .zip(&c.layers)
        .filter(|(l, lc)| l.op.is_weighted() && lc.precision == LayerPrecision::Full)
        .count();
    assert_eq!(fp, 6);
}

#[test]
fn format_helper_quotes_csv_and_escapes_markdown() {
    let mut t = Tabular::new(&["a", "b"]);
    t.push(vec!["x,y".into(), "say \"hi\"".into()]);
    t.push(vec!["p|q".into(), "1.5".into()]);
    assert_eq!(
        render(Format::Csv, &t, &()),
        "a,b\n\"x,y\",\"say \"\"hi\"\"\"\np|q,1.5\n"
    );
    assert!(render(Format::Md, &t, &()).contains("| p\\|q | 1.5 |"));
    let text = render(Format::Table, &t, &());
    assert_eq!(text.lines().count(), 4);
    assert_eq!(
        render(Format::Json, &t, &vec![1, 2]).trim(),
        "[\n  1,\n  2\n]"
    );
}
