//! Golden vectors: written files read back and re-checked against the naive references (not
//! against the simulator that wrote them).

use breakingbed::hw::Device;
use breakingbed::sim::reference::{binary_conv, fixed_conv};
use breakingbed::sim::vectors::{read, write, VectorData};
use breakingbed::sim::{FixedFormat, LayerKind, LayerSpec, Precision};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn hw(name: &str) -> Device {
    Device::load(format!("{}/hw/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn spec(in_c: usize, out_c: usize, p: Precision) -> LayerSpec {
    LayerSpec {
        name: "layer1.0.conv1".into(),
        kind: LayerKind::Conv {
            in_c,
            out_c,
            kernel: 3,
            stride: 1,
            padding: 1,
            in_h: 5,
            in_w: 4,
        },
        precision: p,
    }
}

/// Decodes a channel-packed word stream back to +/-1 per the manifest's bit order.
fn unpack(words: &[u64], lanes: usize, c: usize, positions: usize) -> Vec<Vec<i8>> {
    let wpp = c.div_ceil(lanes);
    (0..positions)
        .map(|p| {
            (0..c)
                .map(|ch| {
                    let bit = (words[p * wpp + ch / lanes] >> (ch % lanes)) & 1;
                    if bit == 0 {
                        1
                    } else {
                        -1
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn binary_vectors_round_trip() {
    let dev = hw("zcu102.toml");
    let (ic, oc, images) = (50, 3, 2);
    let s = spec(ic, oc, Precision::Binary { m: 1, n: 1 });
    let g = s.geometry().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut pm = |n: usize| -> Vec<i8> { (0..n).map(|_| if rng.gen() { 1 } else { -1 }).collect() };
    let w = pm(oc * ic * 9);
    let xs: Vec<Vec<i8>> = (0..images).map(|_| pm(ic * 20)).collect();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &s,
        &dev,
        &VectorData::Binary {
            weights: w.clone(),
            images: xs.clone(),
        },
    )
    .unwrap();

    // The hex files are plain $readmemh lines of 12 hex digits (48-bit words).
    let text = std::fs::read_to_string(dir.path().join("weights.hex")).unwrap();
    assert!(text
        .lines()
        .all(|l| l.len() == 12 && l.chars().all(|c| c.is_ascii_hexdigit())));

    let gs = read(dir.path()).unwrap();
    assert_eq!(gs.manifest.kind, "binary");
    assert_eq!(gs.manifest.weights.word_width, 48);
    let lanes = gs.manifest.weights.word_width as usize;
    // Weights: [out_c][kh][kw][word] -> back to [out][in][kh][kw].
    let taps = unpack(&gs.weights, lanes, ic, oc * 9);
    let mut w_back = vec![0i8; w.len()];
    for o in 0..oc {
        for t in 0..9 {
            for i in 0..ic {
                w_back[(o * ic + i) * 9 + t] = taps[o * 9 + t][i];
            }
        }
    }
    assert_eq!(w_back, w);
    let wpp = ic.div_ceil(lanes);
    for (n, x) in xs.iter().enumerate() {
        let pix = unpack(
            &gs.activations[n * 20 * wpp..(n + 1) * 20 * wpp],
            lanes,
            ic,
            20,
        );
        let mut x_back = vec![0i8; x.len()];
        for (p, v) in pix.iter().enumerate() {
            for i in 0..ic {
                x_back[i * 20 + p] = v[i];
            }
        }
        assert_eq!(&x_back, x);
        let expect: Vec<i64> = binary_conv(&g, &w_back, &x_back)
            .into_iter()
            .map(i64::from)
            .collect();
        let per = oc * g.pixels();
        assert_eq!(&gs.expected[n * per..(n + 1) * per], &expect[..]);
    }
}

#[test]
fn fixed_vectors_round_trip() {
    let dev = hw("zu3eg.toml");
    let (ic, oc) = (4, 5);
    let s = spec(ic, oc, Precision::Full);
    let g = s.geometry().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let w: Vec<i32> = (0..oc * ic * 9)
        .map(|_| rng.gen_range(-32768..32768))
        .collect();
    let x: Vec<i32> = (0..ic * 20).map(|_| rng.gen_range(-32768..32768)).collect();
    let dir = tempfile::tempdir().unwrap();
    let fmt = FixedFormat::for_width(16);
    write(
        dir.path(),
        &s,
        &dev,
        &VectorData::Fixed {
            format: fmt,
            weights: w.clone(),
            images: vec![x.clone()],
        },
    )
    .unwrap();
    let gs = read(dir.path()).unwrap();
    assert_eq!(gs.manifest.fixed_format, Some(fmt));
    let sext16 = |v: &u64| ((*v as u16) as i16) as i32;
    let w_back: Vec<i32> = gs.weights.iter().map(sext16).collect();
    let x_back: Vec<i32> = gs.activations.iter().map(sext16).collect();
    assert_eq!((w_back.clone(), x_back.clone()), (w, x));
    assert_eq!(gs.expected, fixed_conv(&g, &w_back, &x_back));
}

#[test]
fn wrong_precision_and_corrupt_files_are_errors() {
    let dev = hw("zu3eg.toml");
    let dir = tempfile::tempdir().unwrap();
    let abc = spec(2, 1, Precision::Binary { m: 2, n: 1 });
    let e = write(
        dir.path(),
        &abc,
        &dev,
        &VectorData::Binary {
            weights: vec![1; 18],
            images: vec![],
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("precision"), "{e}");
    let s = spec(2, 1, Precision::Binary { m: 1, n: 1 });
    write(
        dir.path(),
        &s,
        &dev,
        &VectorData::Binary {
            weights: vec![1; 18],
            images: vec![vec![-1; 40]],
        },
    )
    .unwrap();
    std::fs::write(dir.path().join("acts.hex"), "zz\n").unwrap();
    let e = read(dir.path()).unwrap_err();
    assert!(e.to_string().contains("acts.hex: line 1"), "{e}");
}
