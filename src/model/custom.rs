//! User-described networks in TOML (schema documented in README.md, example in
//! `configs/custom_net.toml`). Each `[[layers]]` table has `name`, `op` (the [`Op`] kind in
//! snake_case) and that op's fields; `inputs` lists producer layer names (default: the previous
//! layer; `"input"` is the network input). Channel counts of the producer are inferred.

use std::path::Path;

use serde::Deserialize;

use super::{Layer, Network, Normalization, Op};
use crate::{Error, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    input: [usize; 3],
    num_classes: usize,
    normalization: Option<Normalization>,
    layers: Vec<toml::Table>,
}

/// Parses a network from TOML text; `origin` (usually the file path) prefixes every error.
pub fn from_toml_str(text: &str, origin: &str) -> Result<Network> {
    let file: File = toml::from_str(text)
        .map_err(|e| Error::input(origin, format!("malformed network TOML: {e}")))?;
    let mut layers: Vec<Layer> = Vec::with_capacity(file.layers.len());
    for (i, table) in file.layers.into_iter().enumerate() {
        let mut table = table;
        let ctx = |field: &str| format!("{origin}: layers[{i}]{field}");
        let name = match table.remove("name") {
            Some(toml::Value::String(s)) => s,
            Some(_) => return Err(Error::input(ctx(".name"), "must be a string")),
            None => return Err(Error::input(ctx(""), "missing field 'name'")),
        };
        let inputs = match table.remove("inputs") {
            None if i == 0 => vec![],
            None => vec![i - 1],
            Some(toml::Value::Array(names)) => {
                let names_len = names.len();
                let mut idx = Vec::new();
                for n in names {
                    let toml::Value::String(n) = n else {
                        return Err(Error::input(
                            ctx(".inputs"),
                            "must be a list of layer names",
                        ));
                    };
                    if n == "input" {
                        // An empty input list is the network input, so it must stand alone.
                        if names_len != 1 {
                            return Err(Error::input(
                                ctx(".inputs"),
                                "\"input\" (the network input) must be the only entry",
                            ));
                        }
                        continue;
                    }
                    let p = layers.iter().position(|l| l.name == n).ok_or_else(|| {
                        Error::input(
                            ctx(".inputs"),
                            format!("'{n}' is not an earlier layer of layer '{name}'"),
                        )
                    })?;
                    idx.push(p);
                }
                idx
            }
            Some(_) => {
                return Err(Error::input(
                    ctx(".inputs"),
                    "must be a list of layer names",
                ))
            }
        };
        let op: Op = toml::Value::Table(table)
            .try_into()
            .map_err(|e| Error::input(ctx(""), format!("layer '{name}': bad op: {e}")))?;
        layers.push(Layer {
            name,
            op,
            inputs,
            out_shape: [0; 3],
        });
    }
    let normalization = file
        .normalization
        .unwrap_or_else(|| Normalization::identity(file.input[0]));
    if normalization.mean.len() != file.input[0] || normalization.std.len() != file.input[0] {
        return Err(Error::input(
            format!("{origin}: normalization"),
            "mean and std need one value per input channel",
        ));
    }
    if normalization.std.iter().any(|&s| s.is_nan() || s <= 0.0) {
        return Err(Error::input(
            format!("{origin}: normalization.std"),
            "every std must be > 0",
        ));
    }
    let mut net = Network {
        name: file.name,
        input: file.input,
        num_classes: file.num_classes,
        normalization,
        layers,
    };
    net.infer()
        .map_err(|e| Error::input(origin, e.to_string()))?;
    Ok(net)
}

/// Reads and parses a network TOML file.
pub fn load(path: &Path) -> Result<Network> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    from_toml_str(&text, &path.display().to_string())
}
