//! Shared helpers for the report tests: record builders and an XML well-formedness checker.
#![allow(dead_code)]

use breakingbed::attack::{ImageResult, Scale, TracePoint};
use breakingbed::report::{Setting, SweepRecord};

/// A result with only the fields the metrics read set.
pub fn result(index: usize, label: usize, clean: usize, adv: usize, loss: Option<f32>) -> ImageResult {
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
        trace: Vec::new(),
    }
}

pub fn record(variant: &str, kind: &str, attack: &str, setting: Setting, rerun: usize, r: ImageResult) -> SweepRecord {
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
        .map(|&(iteration, pred, loss)| TracePoint { iteration, pred, loss })
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
                let close = doc[j + 2..].find(q as char).ok_or("unterminated attribute")? + j + 2;
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
    assert_eq!(check_xml("<?xml version=\"1.0\"?><svg a='1'><g/><t>x &amp; &#60;</t></svg>").unwrap(), "svg");
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
