//! Built-in networks: CIFAR ResNet-(6n+2) with option-A shortcuts (He et al. 2016, Sec. 4.2;
//! layer names as in the widely used akamaster/pytorch_resnet_cifar10 layout) and ImageNet
//! ResNet18/50 in the torchvision layout (v1.5: the bottleneck stride sits on the 3x3 conv).
//! Non-parametric layers get unique names too (`layer1.0.relu1`, `layer1.0.add`, ...).

use super::{Layer, Network, Normalization, Op};
use crate::{Error, Result};

/// Names accepted by [`builtin`], for help texts and error messages.
pub const BUILTIN_NAMES: &str =
    "resnet20, resnet56, resnet{6n+2} (CIFAR, e.g. resnet8, resnet32, resnet110; cifar-resnet50 for the CIFAR depth 50), resnet18, resnet50 (ImageNet)";

struct Builder {
    layers: Vec<Layer>,
}

impl Builder {
    /// Appends a layer fed by `inputs` (empty = network input) and returns its index.
    fn push(&mut self, name: impl Into<String>, op: Op, inputs: Vec<usize>) -> usize {
        self.layers.push(Layer {
            name: name.into(),
            op,
            inputs,
            out_shape: [0; 3],
        });
        self.layers.len() - 1
    }
    fn conv(
        &mut self,
        name: String,
        input: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> usize {
        let op = Op::Conv {
            in_c: 0,
            out_c,
            kernel,
            stride,
            padding,
            bias: false,
        };
        self.push(name, op, vec![input])
    }
    fn bn(&mut self, name: String, input: usize) -> usize {
        self.push(name, Op::BatchNorm { channels: 0 }, vec![input])
    }
    fn relu(&mut self, name: String, input: usize) -> usize {
        self.push(name, Op::Relu, vec![input])
    }
}

fn finish(
    name: String,
    input: [usize; 3],
    num_classes: usize,
    layers: Vec<Layer>,
) -> Result<Network> {
    let normalization = match input[0] {
        3 if input[1] <= 64 => Normalization::cifar10(),
        3 => Normalization::imagenet(),
        c => Normalization::identity(c),
    };
    let mut net = Network {
        name,
        input,
        num_classes,
        normalization,
        layers,
    };
    net.infer()?;
    Ok(net)
}

/// CIFAR ResNet of depth `6n+2`: 16/32/64 channels, three stages of `n` basic blocks.
pub fn cifar_resnet(depth: usize, input: [usize; 3], num_classes: usize) -> Result<Network> {
    if depth < 8 || !(depth - 2).is_multiple_of(6) {
        return Err(Error::input(
            "model",
            format!("CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}"),
        ));
    }
    let n = (depth - 2) / 6;
    // The description alone grows with the depth (a basic block is at most 9 layers, each a
    // `Layer` plus a name): refuse before building one too big to hold.
    let per_block = 9 * (std::mem::size_of::<Layer>() as u64 + 24);
    crate::io::limits::check_memory(
        &format!("model resnet{depth}"),
        (3 * n as u64).saturating_mul(per_block),
        "choose a smaller depth",
    )?;
    // The first layer reads the network input, encoded as an empty input list.
    let mut b = Builder { layers: Vec::new() };
    b.push(
        "conv1",
        Op::Conv {
            in_c: 0,
            out_c: 16,
            kernel: 3,
            stride: 1,
            padding: 1,
            bias: false,
        },
        vec![],
    );
    let x = b.bn("bn1".into(), 0);
    let mut x = b.relu("relu".into(), x);
    let mut in_planes = 16;
    for stage in 1..=3 {
        let planes = 16 << (stage - 1);
        for blk in 0..n {
            let p = format!("layer{stage}.{blk}");
            let stride = if stage > 1 && blk == 0 { 2 } else { 1 };
            let block_in = x;
            // The shortcut is listed first (it reads only the block input) so that it exists
            // when conv2 runs, and the inference plan can fuse conv2, BN, add and activation.
            let short = if stride != 1 || in_planes != planes {
                b.push(
                    format!("{p}.shortcut"),
                    Op::ShortcutA {
                        out_c: planes,
                        stride,
                    },
                    vec![block_in],
                )
            } else {
                block_in
            };
            let y = b.conv(format!("{p}.conv1"), block_in, planes, 3, stride, 1);
            let y = b.bn(format!("{p}.bn1"), y);
            let y = b.relu(format!("{p}.relu1"), y);
            let y = b.conv(format!("{p}.conv2"), y, planes, 3, 1, 1);
            let y = b.bn(format!("{p}.bn2"), y);
            let s = b.push(format!("{p}.add"), Op::Add, vec![y, short]);
            x = b.relu(format!("{p}.relu2"), s);
            in_planes = planes;
        }
    }
    let g = b.push("avgpool", Op::GlobalAvgPool, vec![x]);
    b.push(
        "linear",
        Op::Linear {
            in_f: 0,
            out_f: num_classes,
            bias: true,
        },
        vec![g],
    );
    finish(format!("resnet{depth}"), input, num_classes, b.layers)
}

/// torchvision ResNet18 (`bottleneck = false`, blocks \[2,2,2,2\]) or ResNet50 (`true`, \[3,4,6,3\]).
pub fn imagenet_resnet(bottleneck: bool, input: [usize; 3], num_classes: usize) -> Result<Network> {
    let (blocks, expansion, depth) = if bottleneck {
        ([3, 4, 6, 3], 4, 50)
    } else {
        ([2, 2, 2, 2], 1, 18)
    };
    let mut b = Builder { layers: Vec::new() };
    b.push(
        "conv1",
        Op::Conv {
            in_c: 0,
            out_c: 64,
            kernel: 7,
            stride: 2,
            padding: 3,
            bias: false,
        },
        vec![],
    );
    let x = b.bn("bn1".into(), 0);
    let x = b.relu("relu".into(), x);
    let mut x = b.push(
        "maxpool",
        Op::MaxPool {
            kernel: 3,
            stride: 2,
            padding: 1,
        },
        vec![x],
    );
    let mut in_planes = 64;
    for (s, &nblk) in blocks.iter().enumerate() {
        let planes = 64 << s;
        for blk in 0..nblk {
            let p = format!("layer{}.{blk}", s + 1);
            let stride = if s > 0 && blk == 0 { 2 } else { 1 };
            let block_in = x;
            let out_planes = planes * expansion;
            let y = if bottleneck {
                let y = b.conv(format!("{p}.conv1"), block_in, planes, 1, 1, 0);
                let y = b.bn(format!("{p}.bn1"), y);
                let y = b.relu(format!("{p}.relu1"), y);
                let y = b.conv(format!("{p}.conv2"), y, planes, 3, stride, 1);
                let y = b.bn(format!("{p}.bn2"), y);
                let y = b.relu(format!("{p}.relu2"), y);
                let y = b.conv(format!("{p}.conv3"), y, out_planes, 1, 1, 0);
                b.bn(format!("{p}.bn3"), y)
            } else {
                let y = b.conv(format!("{p}.conv1"), block_in, planes, 3, stride, 1);
                let y = b.bn(format!("{p}.bn1"), y);
                let y = b.relu(format!("{p}.relu1"), y);
                let y = b.conv(format!("{p}.conv2"), y, planes, 3, 1, 1);
                b.bn(format!("{p}.bn2"), y)
            };
            let short = if stride != 1 || in_planes != out_planes {
                let d = b.conv(
                    format!("{p}.downsample.0"),
                    block_in,
                    out_planes,
                    1,
                    stride,
                    0,
                );
                b.bn(format!("{p}.downsample.1"), d)
            } else {
                block_in
            };
            let sum = b.push(format!("{p}.add"), Op::Add, vec![y, short]);
            x = b.relu(format!("{p}.relu{}", if bottleneck { 3 } else { 2 }), sum);
            in_planes = out_planes;
        }
    }
    let g = b.push("avgpool", Op::GlobalAvgPool, vec![x]);
    b.push(
        "fc",
        Op::Linear {
            in_f: 0,
            out_f: num_classes,
            bias: true,
        },
        vec![g],
    );
    finish(format!("resnet{depth}"), input, num_classes, b.layers)
}

/// A built-in network by name (see [`BUILTIN_NAMES`]). `input` (`[C,H,W]`) and `num_classes`
/// override the defaults (CIFAR: 3x32x32, 10 classes; ImageNet: 3x224x224, 1000 classes).
pub fn builtin(
    name: &str,
    input: Option<[usize; 3]>,
    num_classes: Option<usize>,
) -> Result<Network> {
    let lower = name.to_ascii_lowercase();
    let unknown = || {
        Error::input(
            "model",
            format!("unknown model '{name}'; built-ins: {BUILTIN_NAMES}"),
        )
    };
    match lower.as_str() {
        "resnet18" | "resnet50" => imagenet_resnet(
            lower == "resnet50",
            input.unwrap_or([3, 224, 224]),
            num_classes.unwrap_or(1000),
        ),
        _ => {
            let digits = lower
                .strip_prefix("cifar-resnet")
                .or_else(|| lower.strip_prefix("resnet"))
                .ok_or_else(unknown)?;
            let depth: usize = digits.parse().map_err(|_| unknown())?;
            if depth < 8 || !(depth - 2).is_multiple_of(6) {
                return Err(Error::input(
                    "model",
                    format!("unknown model '{name}': CIFAR ResNet depth must be 6n+2 (8, 14, 20, ...); built-ins: {BUILTIN_NAMES}"),
                ));
            }
            cifar_resnet(
                depth,
                input.unwrap_or([3, 32, 32]),
                num_classes.unwrap_or(10),
            )
        }
    }
}
