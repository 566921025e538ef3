//! The inference plan: everything [`Net::infer`] needs that does not depend on the images,
//! prepared once ([`InferPlan`]): each output's last reader, the fusion groups (conv + BN +
//! residual add + activation evaluated as one pass), float weights and folded BN, and the
//! layout decisions between layers (which binary convs hand the next one sign bits, which
//! write their float output's sign bits too, which float convs write channel-last).

use std::sync::OnceLock;

use ndarray::{Array1, Array4};

use super::binary_layer::{bitwise_nhwc, pair_scale, NhwcOut};
use super::params::{p1, p4, BinWeights};
use super::{Net, BN_EPS};
use crate::engine::binary::BitsOut;
use crate::engine::ops;
use crate::model::Op;
use crate::{Error, Result};

/// What [`Net::infer`] prepares once per call: the layer plan and the float parameters in
/// the form the layers use (float conv/linear weights, biases, folded eval-mode BN).
pub struct InferPlan {
    /// Last reader of each layer's output; the network input is the last slot.
    pub(super) last_use: Vec<usize>,
    pub(super) fusion: Vec<Option<Fusion>>,
    pub(super) absorbed: Vec<bool>,
    pub(super) weights: Vec<Option<Array4<f32>>>,
    pub(super) biases: Vec<Option<Array1<f32>>>,
    /// `(scale, shift)` of each BN layer.
    pub(super) bn: Vec<Option<(Array1<f32>, Array1<f32>)>>,
    /// Binary convs that hand the next binary conv sign bits instead of floats (bitwise
    /// backend only; see [`Net::sign_intervals`]).
    pub(super) bits_out: Vec<Option<BitsOut>>,
    /// Channel-last binary convs with float output that a binary conv reads: the padding of
    /// that conv's frame, which they also write (see [`Net::frame_target`]).
    pub(super) frame_out: Vec<Option<usize>>,
    /// Float convs (without a fused residual) whose output a channel-last binary conv reads,
    /// so they write it NHWC.
    pub(super) nhwc_out: Vec<bool>,
    /// The pixel-major epilogue of each channel-last binary conv, built on first use.
    pub(super) pixel_rows: Vec<OnceLock<ops::epilogue::PixelRows>>,
}

impl InferPlan {
    /// Layers that hand the next binary conv sign bits instead of floats (used by the
    /// bitwise backend).
    pub fn sign_bit_layers(&self) -> usize {
        self.bits_out.iter().flatten().count()
    }

    /// How channel-last binary conv `i` hands its output on.
    pub(super) fn nhwc_out(&self, i: usize) -> NhwcOut<'_> {
        NhwcOut {
            bits: self.bits_out[i].as_ref(),
            frame: self.frame_out[i],
            rows: &self.pixel_rows[i],
        }
    }

    /// Layers that write the sign bits of their float output for the binary conv reading it.
    pub fn framed_float_layers(&self) -> usize {
        self.frame_out.iter().flatten().count()
    }
}

/// A conv layer evaluated together with the layers after it (see [`Net::infer`]).
pub(super) struct Fusion {
    pub(super) bn: Option<usize>,
    /// The other input of the absorbed residual add.
    pub(super) residual: Option<usize>,
    pub(super) act: ops::epilogue::Activation,
    /// The last absorbed layer: the group's output is stored as its output.
    pub(super) tail: usize,
}

impl Net {
    /// Conv layers whose output flows, each through its sole reader, into a batch-norm, a
    /// two-input residual add (whose other input is already computed when the conv runs) and
    /// an activation: the tape-free pass evaluates such a chain as one convolution with an
    /// [`ops::epilogue::Epilogue`]. A batch-norm that follows no conv heads the same kind of
    /// chain (its add and activation). Returns the fusion per head and which layers are
    /// absorbed into a head.
    fn fusions(&self, last_use: &[usize]) -> (Vec<Option<Fusion>>, Vec<bool>) {
        let layers = &self.cn.network.layers;
        let nl = layers.len();
        let mut readers = vec![Vec::new(); nl];
        for (i, l) in layers.iter().enumerate() {
            for &j in &l.inputs {
                readers[j].push(i);
            }
        }
        let sole = |cur: usize| match readers[cur].as_slice() {
            [r] if last_use[cur] == *r => Some(*r),
            _ => None,
        };
        let mut fusion: Vec<Option<Fusion>> = (0..nl).map(|_| None).collect();
        let mut absorbed = vec![false; nl];
        for (i, l) in layers.iter().enumerate() {
            let mut f = Fusion {
                bn: None,
                residual: None,
                act: ops::epilogue::Activation::Identity,
                tail: i,
            };
            match l.op {
                Op::Conv { .. } => {
                    if let Some(j) = sole(f.tail) {
                        if matches!(layers[j].op, Op::BatchNorm { .. })
                            && layers[j].inputs == [f.tail]
                        {
                            f.bn = Some(j);
                            f.tail = j;
                        }
                    }
                }
                // A batch-norm no conv absorbed heads its own group.
                Op::BatchNorm { .. } if !absorbed[i] => f.bn = Some(i),
                _ => continue,
            }
            if let Some(k) = sole(f.tail) {
                if let (Op::Add, [a, b]) = (&layers[k].op, layers[k].inputs.as_slice()) {
                    let other = if *a == f.tail { *b } else { *a };
                    if (*a == f.tail) != (*b == f.tail) && other < i {
                        f.residual = Some(other);
                        f.tail = k;
                    }
                }
            }
            if let Some(m) = sole(f.tail) {
                let act = match layers[m].op {
                    Op::Relu => Some(ops::epilogue::Activation::Relu),
                    Op::Hardtanh => Some(ops::epilogue::Activation::Hardtanh),
                    _ => None,
                };
                if let (Some(act), true) = (act, layers[m].inputs == [f.tail]) {
                    f.act = act;
                    f.tail = m;
                }
            }
            if f.tail != i {
                // Every layer of the chain between head and tail is absorbed.
                let mut cur = i;
                while cur != f.tail {
                    cur = readers[cur][0];
                    absorbed[cur] = true;
                }
                fusion[i] = Some(f);
            }
        }
        (fusion, absorbed)
    }

    /// The image-independent part of [`Net::infer`]: a snapshot of the parameters, so build
    /// it again after changing them.
    pub fn infer_plan(&self, bw: &[Option<BinWeights>]) -> Result<InferPlan> {
        let net = &self.cn.network;
        let nl = net.layers.len();
        if nl == 0 {
            return Err(Error::input("network", "has no layers"));
        }
        // Last consumer of each layer's output (the network input is slot nl).
        let mut last_use = vec![usize::MAX; nl + 1];
        for (i, l) in net.layers.iter().enumerate() {
            if l.inputs.is_empty() {
                last_use[nl] = i;
            }
            for &j in &l.inputs {
                last_use[j] = i;
            }
        }
        let (fusion, absorbed) = self.fusions(&last_use);
        let mut weights = vec![None; nl];
        let mut biases = vec![None; nl];
        let mut bn = vec![None; nl];
        for (i, l) in net.layers.iter().enumerate() {
            let name = &l.name;
            match &l.op {
                Op::Conv { bias, .. } | Op::Linear { bias, .. } => {
                    if bw[i].is_none() {
                        weights[i] = Some(p4(&self.params, &format!("{name}.weight"))?);
                    }
                    if *bias {
                        biases[i] = Some(p1(&self.params, &format!("{name}.bias"))?);
                    }
                }
                Op::BatchNorm { .. } => {
                    let g = p1(&self.params, &format!("{name}.weight"))?;
                    let b = p1(&self.params, &format!("{name}.bias"))?;
                    let rm = p1(&self.params, &format!("{name}.running_mean"))?;
                    let rv = p1(&self.params, &format!("{name}.running_var"))?;
                    bn[i] = Some(ops::batchnorm::fold(&g, &b, &rm, &rv, BN_EPS)?);
                }
                _ => {}
            }
        }
        // A conv's fused BN must match its output channels (checked once here, not per image).
        for (i, f) in fusion.iter().enumerate() {
            let Some((s, _)) = f.as_ref().and_then(|f| f.bn).and_then(|j| bn[j].as_ref()) else {
                continue;
            };
            if matches!(net.layers[i].op, Op::Conv { .. }) && s.len() != self.out_channels(i)? {
                return Err(Error::input(
                    &net.layers[i].name,
                    format!(
                        "{} output channels, its BN has {}",
                        self.out_channels(i)?,
                        s.len()
                    ),
                ));
            }
        }
        let mut plan = InferPlan {
            last_use,
            fusion,
            absorbed,
            weights,
            biases,
            bn,
            bits_out: Vec::new(),
            frame_out: Vec::new(),
            nhwc_out: Vec::new(),
            pixel_rows: (0..nl).map(|_| OnceLock::new()).collect(),
        };
        plan.bits_out = (0..nl).map(|i| self.sign_intervals(&plan, bw, i)).collect();
        plan.frame_out = (0..nl).map(|i| self.frame_target(&plan, bw, i)).collect();
        plan.nhwc_out = (0..nl)
            .map(|i| {
                let f = plan.fusion[i].as_ref();
                bw[i].is_none()
                    && !plan.absorbed[i]
                    && matches!(net.layers[i].op, Op::Conv { .. })
                    && f.is_none_or(|f| f.residual.is_none())
                    && self
                        .channel_last_reader(bw, f.map_or(i, |f| f.tail))
                        .is_some()
            })
            .collect();
        Ok(plan)
    }

    /// Whether channel-last binary conv `i`, whose output stays float (it has other readers,
    /// e.g. a residual add), should also write that output's sign bits framed for a binary
    /// conv that reads it, and with which padding: the reader then skips packing the map.
    /// The bits come from the same float values (sign(0) = +1), so this changes no result;
    /// a NaN among them drops the frame and the reader packs, reporting the NaN as before.
    fn frame_target(&self, plan: &InferPlan, bw: &[Option<BinWeights>], i: usize) -> Option<usize> {
        let layers = &self.cn.network.layers;
        if !matches!(layers[i].op, Op::Conv { .. })
            || !bitwise_nhwc(bw, i)
            || plan.absorbed[i]
            || plan.bits_out[i].is_some()
        {
            return None;
        }
        let tail = plan.fusion[i].as_ref().map_or(i, |f| f.tail);
        self.channel_last_reader(bw, tail)
    }

    /// The padding of a channel-last binary conv (bitwise backend) that reads slot `slot` as
    /// its only input, if there is one.
    fn channel_last_reader(&self, bw: &[Option<BinWeights>], slot: usize) -> Option<usize> {
        let layers = &self.cn.network.layers;
        layers.iter().enumerate().find_map(|(j, l)| match l.op {
            Op::Conv { padding, .. } if l.inputs == [slot] && bitwise_nhwc(bw, j) => Some(padding),
            _ => None,
        })
    }

    /// Whether binary conv `i` can hand its output to the next binary conv as sign bits, and
    /// with which intervals. It can when both run channel-last (bitwise XNOR), its fusion
    /// group has no residual add (so its epilogue depends on its own sum alone) and the
    /// group's output has exactly one reader, that conv. The reader only takes `sign(v)` of
    /// each value `v = act(bn(0 + k*s + b))`, so each channel's bit is a function of the
    /// integer sum `s` in `-K..=K` (`K` = bits per window). That function is tabulated
    /// ([`BitsOut::tabulate`]) with the very epilogue the float path runs
    /// ([`ops::epilogue::Epilogue::row_map`] over every `s`), so it is exact by construction;
    /// each step is monotone in `s`, so the negative values form one interval (checked:
    /// otherwise, or on NaN, the layer keeps its float output and the reader's own packing,
    /// errors included).
    fn sign_intervals(
        &self,
        plan: &InferPlan,
        bw: &[Option<BinWeights>],
        i: usize,
    ) -> Option<BitsOut> {
        let layers = &self.cn.network.layers;
        if !matches!(layers[i].op, Op::Conv { .. }) || !bitwise_nhwc(bw, i) || plan.absorbed[i] {
            return None;
        }
        let f = plan.fusion[i].as_ref();
        if f.is_some_and(|f| f.residual.is_some()) {
            return None;
        }
        let tail = f.map_or(i, |f| f.tail);
        let readers: Vec<usize> = (0..layers.len())
            .filter(|&j| layers[j].inputs.contains(&tail))
            .collect();
        let &[j] = readers.as_slice() else {
            return None;
        };
        let Op::Conv { padding, .. } = layers[j].op else {
            return None;
        };
        if plan.last_use[tail] != j || layers[j].inputs != [tail] || !bitwise_nhwc(bw, j) {
            return None;
        }
        let bwi = bw[i].as_ref()?;
        let (o, c, kh, kw) = bwi.bases[0].dim();
        let kmax = c * kh * kw;
        let k = pair_scale(bwi, 0, 0);
        let bn = f.and_then(|f| f.bn).and_then(|b| plan.bn[b].as_ref());
        if bn.is_some_and(|(s, _)| s.len() != o) || k.len() != o {
            return None;
        }
        let bias = plan.biases[i].as_ref().map(|b| b.to_vec());
        if bias.as_ref().is_some_and(|b| b.len() != o) {
            return None;
        }
        let ep = ops::epilogue::Epilogue {
            bias: bias.as_deref(),
            bn: bn.map(|(s, t)| (s.as_slice().expect("1-D"), t.as_slice().expect("1-D"))),
            act: f.map_or(ops::epilogue::Activation::Identity, |f| f.act),
        };
        BitsOut::tabulate(padding, kmax, o, |ch, sums| {
            let mut v = vec![std::mem::MaybeUninit::<f32>::uninit(); sums.len()];
            ep.row_map(ch, &mut v, sums, |s| 0.0 + k[ch] * s as f32, None);
            // SAFETY: `row_map` writes every element.
            v.iter().map(|x| unsafe { x.assume_init() }).collect()
        })
    }
}
