//! Shared helpers for the report tests: record builders and an XML well-formedness checker.
#![allow(dead_code)]

use breakingbed::attack::{ImageResult, Scale, TracePoint};
use breakingbed::report::{Setting, SweepRecord};

/// A result with only the fields the metrics read set.
pub fn result(
    index: usize,
    label: usize,
    clean: usize,
    adv: usize,
    loss: Option<f32>,
) -> ImageResult {
    ImageResult {
        index,
        label,
        target: None,
        clean_pred: clean,
        adv_pred: adv,
        success: adv != label,
        scale: Scale::Pixel,
        l0: 0,
        l2: 0.0,
        linf: 0.0,
        iterations: None,
        queries: None,
        loss,
        warning: None,
        trace: Vec::new(),
    }
}

pub fn record(
    variant: &str,
    kind: &str,
    attack: &str,
    setting: Setting,
    rerun: usize,
    r: ImageResult,
) -> SweepRecord {
    SweepRecord {
        variant: variant.into(),
        variant_kind: kind.into(),
        model: variant.split('-').next().unwrap().into(),
        attack: attack.into(),
        setting,
        rerun,
        result: r,
    }
}

pub fn eps(e: f32) -> Setting {
    Setting {
        eps: Some(e),
        scale: Some(Scale::Pixel),
        ..Setting::default()
    }
}

pub fn eps_iter(e: f32, i: usize) -> Setting {
    Setting {
        eps: Some(e),
        scale: Some(Scale::Pixel),
        iterations: Some(i),
        ..Setting::default()
    }
}

pub fn trace(points: &[(usize, usize, Option<f32>)]) -> Vec<TracePoint> {
    points
        .iter()
        .map(|&(iteration, pred, loss)| TracePoint {
            iteration,
            pred,
            loss,
        })
        .collect()
}

/// Check that `doc` is well-formed XML (XML 1.0 section 2.1: one root element, properly nested
/// and matching tags, quoted attributes without '<', only the predefined or numeric entity
/// references) and return the root element's name. A deliberately small, independent parser.
pub fn check_xml(doc: &str) -> Result<String, String> {
    let b = doc.as_bytes();
    let mut i = 0;
    let mut stack: Vec<String> = Vec::new();
    let mut root: Option<String> = None;
    let name_end = |mut j: usize| {
        while j < b.len() && !b[j].is_ascii_whitespace() && !b"/>=".contains(&b[j]) {
            j += 1;
        }
        j
    };
    let check_text = |t: &str| -> Result<(), String> {
        let mut rest = t;
        while let Some(p) = rest.find('&') {
            let end = rest[p..].find(';').ok_or("unterminated entity")? + p;
            let ent = &rest[p + 1..end];
            let ok = matches!(ent, "amp" | "lt" | "gt" | "quot" | "apos")
                || (ent.starts_with("#x") && u32::from_str_radix(&ent[2..], 16).is_ok())
                || (ent.starts_with('#') && ent[1..].parse::<u32>().is_ok());
            if !ok {
                return Err(format!("bad entity &{ent};"));
            }
            rest = &rest[end + 1..];
        }
        Ok(())
    };
    while i < b.len() {
        if b[i] != b'<' {
            let next = doc[i..].find('<').map_or(b.len(), |p| i + p);
            let text = &doc[i..next];
            if stack.is_empty() && !text.trim().is_empty() {
                return Err(format!("text outside the root element at byte {i}"));
            }
            check_text(text)?;
            i = next;
            continue;
        }
        let rest = &doc[i..];
        if rest.starts_with("<?") {
            i += rest.find("?>").ok_or("unterminated <?")? + 2;
        } else if rest.starts_with("<!--") {
            i += rest.find("-->").ok_or("unterminated comment")? + 3;
        } else if rest.starts_with("<![CDATA[") {
            i += rest.find("]]>").ok_or("unterminated CDATA")? + 3;
        } else if rest.starts_with("<!") {
            i += rest.find('>').ok_or("unterminated <!")? + 1;
        } else if rest.starts_with("</") {
            let e = name_end(i + 2);
            let name = &doc[i + 2..e];
            let open = stack.pop().ok_or(format!("stray </{name}>"))?;
            if open != name {
                return Err(format!("</{name}> closes <{open}>"));
            }
            i = e + doc[e..].find('>').ok_or("unterminated end tag")? + 1;
        } else {
            let e = name_end(i + 1);
            let name = doc[i + 1..e].to_string();
            if name.is_empty() {
                return Err(format!("empty tag name at byte {i}"));
            }
            if stack.is_empty() {
                if root.is_some() {
                    return Err("more than one root element".into());
                }
                root = Some(name.clone());
            }
            let mut j = e;
            let mut attrs = std::collections::HashSet::new();
            loop {
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j >= b.len() {
                    return Err(format!("unterminated <{name}>"));
                }
                if b[j] == b'>' {
                    stack.push(name.clone());
                    j += 1;
                    break;
                }
                if doc[j..].starts_with("/>") {
                    j += 2;
                    break;
                }
                let ae = name_end(j);
                let attr = &doc[j..ae];
                if attr.is_empty() || !attrs.insert(attr.to_string()) {
                    return Err(format!("bad or duplicate attribute {attr:?} in <{name}>"));
                }
                j = ae;
                if b.get(j) != Some(&b'=') {
                    return Err(format!("attribute {attr} in <{name}> has no value"));
                }
                let q = *b.get(j + 1).ok_or("truncated")?;
                if q != b'"' && q != b'\'' {
                    return Err(format!("unquoted attribute {attr} in <{name}>"));
                }
                let close = doc[j + 2..]
                    .find(q as char)
                    .ok_or("unterminated attribute")?
                    + j
                    + 2;
                let val = &doc[j + 2..close];
                if val.contains('<') {
                    return Err(format!("'<' in attribute {attr}"));
                }
                check_text(val)?;
                j = close + 1;
            }
            i = j;
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> never closed"));
    }
    root.ok_or_else(|| "no root element".into())
}

#[test]
fn xml_checker_accepts_and_rejects() {
    assert_eq!(
        check_xml("<?xml version=\"1.0\"?><svg a='1'><g/><t>x &amp; &#60;</t></svg>").unwrap(),
        "svg"
    );
    for bad in [
        "<svg><g></svg>",
        "<svg a=1></svg>",
        "<svg>&nbsp;</svg>",
        "<svg></svg><svg></svg>",
        "<svg a=\"1\" a=\"2\"/>",
        "<svg>",
        "text<svg/>",
    ] {
        assert!(check_xml(bad).is_err(), "{bad}");
    }
}

/// A seeded synthetic sweep over the paper's Table 2 grid (reduced image count), with traced
/// 5-rerun PGD runs and a targeted GenAttack, so every figure and table of the report has data.
/// `robust[v]` in [0,1] sets how well variant `v` resists; the numbers are made up, only the shape
/// of the data matters.
pub fn synthetic_sweep(seed: u64, images: usize) -> Vec<SweepRecord> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let variants = [
        ("resnet20-vanilla", "vanilla", 0.2f32),
        ("resnet20-xnor", "xnor", 0.7),
        ("resnet20-kd-kl", "kd-kl", 0.45),
        ("resnet56-vanilla", "vanilla", 0.3),
        ("resnet56-xnor", "xnor", 0.8),
    ];
    let mut out = Vec::new();
    let cell = |rng: &mut rand_chacha::ChaCha8Rng,
                out: &mut Vec<SweepRecord>,
                (v, kind, rob): (&str, &str, f32),
                attack: &str,
                s: Setting,
                stress01: f32,
                rerun: usize,
                traced: Option<(usize, usize)>,
                target: bool| {
        for k in 0..images {
            let label = k % 10;
            let clean_ok = rng.gen::<f32>() < 0.9;
            let clean = if clean_ok { label } else { (label + 1) % 10 };
            let survive = clean_ok && rng.gen::<f32>() < rob * (1.0 - stress01) + 0.05;
            let mut r = result(
                k,
                label,
                clean,
                if survive { label } else { (label + 3) % 10 },
                Some(0.0),
            );
            if target {
                r.target = Some((label + 5) % 10);
            }
            if let Some((every, total)) = traced {
                // Fooled at a random step (robust variants later), if at all.
                let fooled_at = if survive {
                    usize::MAX
                } else {
                    1 + (rng.gen::<f32>() * total as f32 * rob) as usize
                };
                let pts: Vec<(usize, usize, Option<f32>)> = (1..=total / every)
                    .map(|t| {
                        let i = t * every;
                        let pred = if !clean_ok {
                            clean
                        } else if i >= fooled_at {
                            r.target.unwrap_or((label + 3) % 10)
                        } else {
                            label
                        };
                        (i, pred, Some(0.1 * i as f32 * (1.0 - rob)))
                    })
                    .collect();
                r.adv_pred = pts.last().unwrap().1;
                r.trace = trace(&pts);
            }
            r.loss = Some(rng.gen::<f32>() * 3.0 * (1.0 - rob) + stress01);
            out.push(record(v, kind, attack, s.clone(), rerun, r));
        }
    };
    for &v in &variants {
        for e in [2.0f32, 4.0, 8.0, 16.0] {
            cell(
                &mut rng,
                &mut out,
                v,
                "FGSM",
                eps(e),
                e / 16.0,
                0,
                None,
                false,
            );
        }
        for e in [0.1f32, 0.5, 1.0, 2.0] {
            for i in [2usize, 3, 4, 5] {
                cell(
                    &mut rng,
                    &mut out,
                    v,
                    "PGD",
                    eps_iter(e, i),
                    (e / 2.0) * (i as f32 / 5.0),
                    0,
                    None,
                    false,
                );
            }
        }
        for rerun in 0..5 {
            cell(
                &mut rng,
                &mut out,
                v,
                "PGD",
                eps_iter(2.0, 100),
                0.9,
                rerun,
                Some((5, 100)),
                false,
            );
        }
        for c in [0.01f32, 0.1, 1.0, 5.0, 10.0] {
            for i in [1usize, 10, 20, 50] {
                let s = Setting {
                    c: Some(c),
                    iterations: Some(i),
                    ..Setting::default()
                };
                cell(
                    &mut rng,
                    &mut out,
                    v,
                    "CW",
                    s,
                    (i as f32 / 50.0).sqrt(),
                    0,
                    None,
                    false,
                );
            }
        }
        for i in [1usize, 5, 10, 20] {
            let s = Setting {
                iterations: Some(i),
                ..Setting::default()
            };
            cell(
                &mut rng,
                &mut out,
                v,
                "DeepFool",
                s,
                i as f32 / 20.0,
                0,
                None,
                false,
            );
        }
        for e in [8.0f32, 16.0, 32.0] {
            for i in [50usize, 100, 150, 200] {
                cell(
                    &mut rng,
                    &mut out,
                    v,
                    "LocalSearch",
                    eps_iter(e, i),
                    (e / 32.0) * (i as f32 / 200.0) * 0.6,
                    0,
                    None,
                    false,
                );
            }
        }
        for e in [8.0f32, 12.0] {
            for n in [6usize, 16] {
                for i in [50usize, 100, 150, 200] {
                    let s = Setting {
                        population: Some(n),
                        ..eps_iter(e, i)
                    };
                    cell(
                        &mut rng,
                        &mut out,
                        v,
                        "GenAttack",
                        s,
                        (i as f32 / 200.0) * 0.8,
                        0,
                        Some((10, i)),
                        true,
                    );
                }
            }
        }
    }
    out
}

/// CAM rows: a synthetic "image" and feature maps per variant, clean and two attacked panels.
pub fn synthetic_cams() -> Vec<breakingbed::report::cam::CamRow> {
    use breakingbed::report::cam::{CamInput, CamRow};
    use ndarray::{Array2, Array3};
    ["resnet20-vanilla", "resnet20-xnor"]
        .iter()
        .enumerate()
        .map(|(vi, v)| CamRow {
            variant: v.to_string(),
            panels: ["clean", "DeepFool i=1", "DeepFool i=5"]
                .iter()
                .enumerate()
                .map(|(j, label)| CamInput {
                    label: label.to_string(),
                    image: Array3::from_shape_fn((3, 32, 32), |(c, y, x)| {
                        ((c * 7 + y + x) % 32) as f32 / 31.0
                    }),
                    features: Array3::from_shape_fn((4, 8, 8), |(k, y, x)| {
                        let (cy, cx) = (2.0 + k as f32 + j as f32, 3.0 + vi as f32);
                        (-((y as f32 - cy).powi(2) + (x as f32 - cx).powi(2)) / 6.0).exp()
                    }),
                    weights: Array2::from_shape_fn((10, 4), |(c, k)| ((c + k) % 3) as f32 - 0.5),
                    class: 1,
                    class_name: Some("automobile".into()),
                })
                .collect(),
        })
        .collect()
}
