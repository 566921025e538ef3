//! Binary conv2d: packed +/-1 input and filters to exact `i32` accumulators, NCHW.
//!
//! `out[n][o][oy][ox] = sum over real taps (ky, kx, c) of x[n][c][iy][ix] * w[o][c][ky][kx]`,
//! with `iy = oy*stride + ky - pad` (same for x), and zero padding that contributes exactly 0:
//! this equals PyTorch's `conv2d(sign(x), sign(w), stride, padding)` on +/-1 tensors.
//! Output size `(H + 2*pad - kh) / stride + 1` (floor), as PyTorch.
//!
//! Pipeline per image: word-major bit-im2col ([`super::im2col`]) -> conv kernel
//! ([`super::bgemm`], writes `K - 2*count` straight into the NCHW plane of each output channel)
//! -> exact zero-padding fix-up of border pixels ([`super::padding`]). Images run in parallel
//! (rayon); results are integers, so they do not depend on the thread count.
//!
//! The inference path has a second, channel-last pipeline for inputs of a multiple of 8
//! channels ([`BConv2d::forward_nhwc`] / [`BConv2d::forward_framed`]): one image, byte-packed
//! into a zero frame ([`super::frame`]), each window read in place (no im2col copy), sums
//! pixel-major, so the next layer's epilogue and packing work on contiguous channel vectors.
//! With 16, 32 or 64 channels and a multiple of 16 outputs on AVX-512 the kernel is
//! `binary::taps` (one lane per tap, padding correction and, for `forward_framed_bits`, the
//! next conv's sign bits in its store); otherwise `bgemm::dots_windows` over run-padded words
//! (`im2col::Windows`) and a border fix-up pass. All pipelines produce the same integers (each tested against the i8 reference).
//!
//! Measured: `benches/binary_conv.rs` (numbers in the README).

use std::sync::{Arc, Mutex};

use ndarray::Array4;
use rayon::prelude::*;

use super::bgemm::{dots_windows, gemm_cols, Panels, WindowRows};
use super::frame;
use super::im2col::{run_weight_rows, weight_rows, Im2col, Windows};
use super::output_transform::{write_interval_bits, SignTable};
use super::pack::{PackedActivations, PackedWeights};
use super::padding::PaddingBias;
use super::popcount::PopcountPath;
use super::taps::{dots_taps, ClassBias, TapOut, TapPanels, TapRows};
use crate::model::geom::ConvGeom;
use crate::{Error, Result};

/// Everything that depends on the input geometry, cached across calls with the same shape.
#[derive(Debug)]
struct Plan {
    g: ConvGeom,
    wpp: usize,
    im2col: Im2col,
    /// Border pixels `(pixel, padding class)`.
    border: Vec<(u32, u32)>,
    /// Per output channel, then border pixel: the exact padding bias minus the all-real `K` the
    /// kernel assumed (a flat table, so the fix-up is one add per entry).
    fix: Vec<i32>,
    /// The same corrections pixel-major for the channel-last path: `fix_pm` is `[border][O]`,
    /// and output row `oy`'s border pixels are `border[border_row[oy]..border_row[oy + 1]]`
    /// (`border` is in pixel order), so interior pixels cost nothing.
    border_row: Vec<usize>,
    fix_pm: Vec<i32>,
    /// The padding bias table `[class][O]` and each output pixel's class (`[oh][ow]`), for
    /// the tap kernel, which applies the correction in its store.
    class_bias: ClassBias,
    /// Where the channel-last kernel reads a window's words (when the width allows it).
    windows: Option<Windows>,
}

/// A binary conv layer with its filters prepared (im2col row layout, tap popcounts) and the
/// geometry-dependent plan (im2col offsets, padding bias) of the last input shape cached.
/// Build once, run many inputs; `Sync`, so one layer can serve several threads.
#[derive(Debug)]
pub struct BConv2d {
    out_channels: usize,
    in_channels: usize,
    kh: usize,
    kw: usize,
    row_words: usize,
    /// Filters as im2col rows, `[O][row_words]`.
    filters: Vec<u64>,
    /// The filter rows in the run-padded layout of [`Windows`], in panels, for the pixel-major
    /// kernel of [`BConv2d::forward_nhwc`] (only when the input width allows that path).
    panels: Option<Panels>,
    /// The filters per tap for [`super::taps`] (16, 32 or 64 input channels, outputs a
    /// multiple of 16), used by the channel-last path where that kernel runs.
    taps: Option<TapPanels>,
    /// popcount of each filter tap, `[O][kh*kw]`, for the padding bias.
    tap_pop: Vec<u32>,
    plan: Mutex<Option<Arc<Plan>>>,
    /// The sign table of the last geometry and bit intervals ([`BConv2d::sign_table`]).
    signs: Mutex<SignCache>,
}

/// Geometry, intervals `lo`, `hi`, and their table (`None`: not one compare).
type SignCache = Option<(ConvGeom, Vec<i32>, Vec<i32>, Option<Arc<SignTable>>)>;

impl Clone for BConv2d {
    fn clone(&self) -> Self {
        BConv2d {
            out_channels: self.out_channels,
            in_channels: self.in_channels,
            kh: self.kh,
            kw: self.kw,
            row_words: self.row_words,
            filters: self.filters.clone(),
            panels: self.panels.clone(),
            taps: self.taps.clone(),
            tap_pop: self.tap_pop.clone(),
            plan: Mutex::new(None),
            signs: Mutex::new(None),
        }
    }
}

impl BConv2d {
    pub fn new(weights: &PackedWeights) -> Self {
        let (o, c, kh, kw) = weights.dim();
        let filters = weight_rows(weights);
        let tap_pop = (0..o)
            .flat_map(|oc| (0..kh * kw).map(move |t| (oc, t / kw, t % kw)))
            .map(|(oc, ky, kx)| weights.tap(oc, ky, kx).iter().map(|v| v.count_ones()).sum())
            .collect();
        let row_words = filters.len() / o;
        BConv2d {
            out_channels: o,
            in_channels: c,
            kh,
            kw,
            row_words,
            panels: frame::supports(c).then(|| {
                let runs = run_weight_rows(weights);
                let rw = runs.len() / o;
                Panels::from_rows(&runs, o, rw)
            }),
            taps: TapPanels::new(weights),
            filters,
            tap_pop,
            plan: Mutex::new(None),
            signs: Mutex::new(None),
        }
    }

    /// `(O, C, kh, kw)`.
    pub fn dim(&self) -> (usize, usize, usize, usize) {
        (self.out_channels, self.in_channels, self.kh, self.kw)
    }

    /// Output `(OH, OW)` for an `H x W` input, or an input error if the shapes do not fit.
    pub fn output_size(
        &self,
        h: usize,
        w: usize,
        stride: usize,
        pad: usize,
    ) -> Result<(usize, usize)> {
        let g = self.geometry(h, w, stride, pad)?;
        Ok((g.ho, g.wo))
    }

    fn geometry(&self, h: usize, w: usize, stride: usize, pad: usize) -> Result<ConvGeom> {
        if stride == 0 {
            return Err(Error::input("bconv2d stride", "must be at least 1"));
        }
        let (o, c, kh, kw) = self.dim();
        ConvGeom::new((c, h, w), (o, kh, kw), stride, pad).ok_or_else(|| {
            Error::input(
                "bconv2d input",
                format!(
                    "{h}x{w} input with padding {pad} is smaller than the {}x{} kernel",
                    self.kh, self.kw
                ),
            )
        })
    }

    fn plan(&self, g: ConvGeom, wpp: usize) -> Arc<Plan> {
        let mut cache = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.as_ref() {
            if p.g == g && p.wpp == wpp {
                return Arc::clone(p);
            }
        }
        let bias = PaddingBias::new(&g, self.out_channels, &self.tap_pop);
        let border = bias.border_pixels();
        let k = g.reduction() as i32;
        let fix: Vec<i32> = (0..self.out_channels)
            .flat_map(|oc| border.iter().map(move |&(_, class)| (class, oc)))
            .map(|(class, oc)| bias.bias(class, oc) - k)
            .collect();
        debug_assert!(border.windows(2).all(|p| p[0].0 < p[1].0), "pixel order");
        let border_row = (0..=g.ho)
            .map(|oy| border.partition_point(|&(pix, _)| (pix as usize) < oy * g.wo))
            .collect();
        let o = self.out_channels;
        let nb = border.len();
        let fix_pm = (0..nb * o).map(|i| fix[(i % o) * nb + i / o]).collect();
        let plan = Arc::new(Plan {
            g,
            wpp,
            im2col: Im2col::new(g, wpp),
            border,
            fix,
            border_row,
            fix_pm,
            class_bias: ClassBias::new(bias.table().to_vec(), bias.pixel_classes(), g.wo, o),
            windows: frame::supports(g.c).then(|| Windows::new(&g)),
        });
        *cache = Some(Arc::clone(&plan));
        plan
    }

    /// Runs the conv with the fastest popcount path.
    pub fn forward(
        &self,
        input: &PackedActivations,
        stride: usize,
        pad: usize,
    ) -> Result<Array4<i32>> {
        self.forward_with(PopcountPath::detect(), input, stride, pad)
    }

    /// Runs the conv on a given popcount path (unavailable path: input error).
    pub fn forward_with(
        &self,
        path: PopcountPath,
        input: &PackedActivations,
        stride: usize,
        pad: usize,
    ) -> Result<Array4<i32>> {
        let path = path.checked()?;
        let (n, c, h, w) = input.dim();
        if c != self.in_channels {
            return Err(Error::input(
                "bconv2d input",
                format!("{c} channels, weights expect {}", self.in_channels),
            ));
        }
        let g = self.geometry(h, w, stride, pad)?;
        let o = self.out_channels;
        let p = g.pixels();
        let mut out = vec![0i32; n * o * p];
        if n == 0 {
            return Ok(Array4::from_shape_vec((n, o, g.ho, g.wo), out).expect("sizes match"));
        }
        let plan = self.plan(g, input.words_per_pixel());
        let image_words = h * w * input.words_per_pixel();
        let run = |buf: &mut Vec<u64>, (img, dst): (usize, &mut [i32])| {
            let src = &input.as_words()[img * image_words..(img + 1) * image_words];
            self.image(path, &plan, src, buf, dst);
        };
        let new_buf = || vec![0u64; plan.im2col.len()];
        if n == 1 {
            run(&mut new_buf(), (0, &mut out));
        } else {
            out.par_chunks_mut(o * p)
                .enumerate()
                .for_each_init(new_buf, run);
        }
        Ok(Array4::from_shape_vec((n, o, g.ho, g.wo), out).expect("sizes match"))
    }

    /// Whether [`BConv2d::forward_nhwc`] takes this layer's input width.
    pub fn supports_nhwc(&self) -> bool {
        self.panels.is_some()
    }

    /// The conv of one channel-last image for the inference path: `x` is NHWC `h * w * C`
    /// floats, binarized here (sign(0) = +1, NaN an error naming `[image, c, y, x]`), and
    /// `emit(oy, sums)` receives each output row's exact zero-padded +/-1 sums pixel-major
    /// (`[ow][O]`), the same integers [`BConv2d::forward`] puts in NCHW. Needs
    /// [`BConv2d::supports_nhwc`] (else an input error); the popcount path as
    /// [`BConv2d::forward_with`].
    ///
    /// Pipeline: byte-packed framed image ([`super::frame`]) -> [`BConv2d::forward_framed`].
    #[allow(clippy::too_many_arguments)]
    pub fn forward_nhwc(
        &self,
        path: PopcountPath,
        x: &[f32],
        (h, w): (usize, usize),
        stride: usize,
        pad: usize,
        image: usize,
        emit: impl FnMut(usize, &[i32]),
    ) -> Result<()> {
        let c = self.check_nhwc()?;
        if x.len() != h * w * c {
            return Err(Error::input(
                "bconv2d input",
                format!("{} values for a {h}x{w}x{c} image", x.len()),
            ));
        }
        let mut framed = vec![0u8; frame::framed_len(h, w, c, pad)];
        frame::pack_framed(x, (h, w, c), pad, image, &mut framed)?;
        self.forward_framed(path, &framed, (h, w), stride, pad, emit)
    }

    /// [`BConv2d::forward_nhwc`] on an image already packed into its frame (as
    /// [`super::frame`] lays it out for this `pad`, e.g. by the previous layer's
    /// [`BConv2d::forward_framed_bits`]): per output row, the window kernel reads each
    /// window's words in place ([`Windows`], sums pixel-major), and border pixels get their
    /// padding correction.
    pub fn forward_framed(
        &self,
        path: PopcountPath,
        framed: &[u8],
        (h, w): (usize, usize),
        stride: usize,
        pad: usize,
        mut emit: impl FnMut(usize, &[i32]),
    ) -> Result<()> {
        let (path, plan) = self.framed_plan(path, framed, (h, w), stride, pad)?;
        let g = plan.g;
        let mut sums = vec![0i32; g.wo * self.out_channels];
        for oy in 0..g.ho {
            self.row_sums(path, &plan, framed, oy, &mut sums);
            emit(oy, &sums);
        }
        Ok(())
    }

    /// [`BConv2d::forward_framed`] for a layer whose output the next conv reads only as signs:
    /// pixel `p`, channel `o` of output row `oy` gets bit 1 iff `lo[o] <= sum <= hi[o]`
    /// (see [`super::output_transform`]), written into `dst`, the next conv's frame
    /// with padding `dst_pad` (its frame bytes are left as they are: zero for a fresh frame).
    /// Where the tap kernel runs, the bits come straight from its registers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_framed_bits(
        &self,
        path: PopcountPath,
        framed: &[u8],
        (h, w): (usize, usize),
        stride: usize,
        pad: usize,
        (lo, hi): (&[i32], &[i32]),
        dst: &mut [u8],
        dst_pad: usize,
    ) -> Result<()> {
        let (path, plan) = self.framed_plan(path, framed, (h, w), stride, pad)?;
        let (g, o) = (plan.g, self.out_channels);
        let bpp = o / 8;
        if !frame::supports(o)
            || lo.len() != o
            || hi.len() != o
            || dst.len() != frame::framed_len(g.ho, g.wo, o, dst_pad)
        {
            return Err(Error::input(
                "bconv2d sign output",
                format!("{o} outputs: needs a multiple of 8, {o} bounds each and a matching frame"),
            ));
        }
        let row_at = |oy: usize| frame::row_start(oy, g.wo, o, dst_pad);
        let tap_signs = self
            .tap_kernel(path)
            .and_then(|t| Some((t, self.sign_table(&plan, t, (lo, hi))?)));
        if let Some((t, signs)) = tap_signs {
            let out = TapOut::Bits {
                signs: &signs,
                row_step: plan.windows.as_ref().expect("width checked").row_step,
                out: dst,
                base: row_at(0),
                step: (g.wo + 2 * dst_pad) * bpp,
            };
            dots_taps(&self.tap_rows(&plan, framed, 0), t, out);
            return Ok(());
        }
        let mut sums = vec![0i32; g.wo * o];
        for oy in 0..g.ho {
            self.row_sums(path, &plan, framed, oy, &mut sums);
            let at = row_at(oy);
            write_interval_bits(&sums, lo, hi, &mut dst[at..at + g.wo * bpp]);
        }
        Ok(())
    }

    /// The tap kernel's sign table for bit intervals `lo..=hi` on `plan`'s geometry (cached
    /// for the last geometry and intervals); `None` if the intervals need two compares.
    fn sign_table(
        &self,
        plan: &Plan,
        t: &TapPanels,
        (lo, hi): (&[i32], &[i32]),
    ) -> Option<Arc<SignTable>> {
        let mut cache = self.signs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, l, h, table)) = cache.as_ref() {
            if *g == plan.g && l == lo && h == hi {
                return table.clone();
            }
        }
        let o = self.out_channels;
        let table = SignTable::new(
            plan.class_bias.parts(),
            t.unit,
            o,
            (lo, hi),
            plan.g.reduction(),
        )
        .map(Arc::new);
        *cache = Some((plan.g, lo.to_vec(), hi.to_vec(), table.clone()));
        table
    }

    /// The checked path and the plan of a channel-last conv on a framed image.
    fn framed_plan(
        &self,
        path: PopcountPath,
        framed: &[u8],
        (h, w): (usize, usize),
        stride: usize,
        pad: usize,
    ) -> Result<(PopcountPath, Arc<Plan>)> {
        let path = path.checked()?;
        let c = self.check_nhwc()?;
        if framed.len() != frame::framed_len(h, w, c, pad) {
            return Err(Error::input(
                "bconv2d input",
                format!(
                    "{} bytes for a framed {h}x{w}x{c} image with padding {pad}",
                    framed.len()
                ),
            ));
        }
        let g = self.geometry(h, w, stride, pad)?;
        Ok((path, self.plan(g, super::pack::words_for(c))))
    }

    /// The tap kernel's filters, if that kernel runs this layer on `path`.
    fn tap_kernel(&self, path: PopcountPath) -> Option<&TapPanels> {
        self.taps
            .as_ref()
            .filter(|t| path == PopcountPath::Avx512 && t.usable())
    }

    /// The windows of output row `oy` for the tap kernel.
    #[inline]
    fn tap_rows<'a>(&self, plan: &'a Plan, framed: &'a [u8], oy: usize) -> TapRows<'a> {
        let win = plan.windows.as_ref().expect("width checked");
        TapRows {
            frame: framed,
            base: oy * win.row_step,
            step: win.step,
            tap_off: &win.tap_off,
            rows: plan.g.wo,
        }
    }

    /// Output row `oy`'s exact sums, pixel-major `[ow][O]`, into `sums`.
    fn row_sums(
        &self,
        path: PopcountPath,
        plan: &Plan,
        framed: &[u8],
        oy: usize,
        sums: &mut [i32],
    ) {
        let (g, o) = (&plan.g, self.out_channels);
        if let Some(t) = self.tap_kernel(path) {
            let out = TapOut::Sums {
                bias: plan.class_bias.row(oy),
                out: sums,
                ld: o,
            };
            return dots_taps(&self.tap_rows(plan, framed, oy), t, out);
        }
        let win = plan.windows.as_ref().expect("width checked");
        let rows = WindowRows {
            frame: framed,
            base: oy * win.row_step,
            step: win.step,
            off: &win.off,
            mask: &win.mask,
            rows: g.wo,
        };
        let panels = self.panels.as_ref().expect("checked by check_nhwc");
        dots_windows(path, &rows, panels, g.reduction() as i32, sums, o);
        // The kernel assumed every tap real (bias K); border pixels get their exact bias.
        for b in plan.border_row[oy]..plan.border_row[oy + 1] {
            let ox = plan.border[b].0 as usize - oy * g.wo;
            let fix = &plan.fix_pm[b * o..(b + 1) * o];
            let s = &mut sums[ox * o..(ox + 1) * o];
            s.iter_mut().zip(fix).for_each(|(d, &f)| *d += f);
        }
    }

    /// The input width, or an input error if the channel-last path cannot take it.
    fn check_nhwc(&self) -> Result<usize> {
        let c = self.in_channels;
        if !self.supports_nhwc() {
            return Err(Error::input(
                "bconv2d input",
                format!("the channel-last path needs a multiple of 8 channels, got {c}"),
            ));
        }
        Ok(c)
    }

    fn image(
        &self,
        path: PopcountPath,
        plan: &Plan,
        src: &[u64],
        buf: &mut [u64],
        dst: &mut [i32],
    ) {
        let g = &plan.g;
        let p = g.pixels();
        let k = g.reduction() as i32;
        plan.im2col.fill(src, buf);
        gemm_cols(
            path,
            buf,
            p,
            plan.im2col.cols8(),
            &self.filters,
            self.row_words,
            k,
            dst,
        );
        // The kernel assumed every tap real (bias K); border pixels get their exact bias.
        // Channel-outer: a pixel-outer walk would hop between planes 4*p bytes apart, which for
        // p = 1024 maps every access to one L1 set.
        let nb = plan.border.len();
        for (plane, fix) in dst
            .chunks_exact_mut(p)
            .zip(plan.fix.chunks_exact(nb.max(1)))
        {
            for (&(pix, _), &d) in plan.border.iter().zip(fix) {
                plane[pix as usize] += d;
            }
        }
    }
}

/// Binary conv2d with the fastest popcount path: NCHW `i32` accumulators equal to the +/-1 conv
/// with exact zero padding. Channel mismatch, stride 0 or a kernel larger than the padded input
/// are input errors.
pub fn bconv2d(
    input: &PackedActivations,
    weights: &PackedWeights,
    stride: usize,
    pad: usize,
) -> Result<Array4<i32>> {
    BConv2d::new(weights).forward(input, stride, pad)
}

/// [`bconv2d`] on a given popcount path.
pub fn bconv2d_with(
    path: PopcountPath,
    input: &PackedActivations,
    weights: &PackedWeights,
    stride: usize,
    pad: usize,
) -> Result<Array4<i32>> {
    BConv2d::new(weights).forward_with(path, input, stride, pad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::binary::pack::pack_weights_i8;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The sign-bit output against the interval rule applied to [`BConv2d::forward_framed`]'s
    /// sums (themselves tested against the i8 reference), on every path, for shapes that take
    /// the tap kernel and shapes that do not; the output frame's border stays untouched.
    #[test]
    fn framed_bits_follow_the_interval_rule_on_the_sums() {
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        for &(c, o, k, stride, pad, h, w, p2) in &[
            (16, 16, 3, 1, 1, 7, 9, 1),
            (16, 32, 3, 2, 1, 8, 8, 1),
            (32, 32, 3, 1, 1, 5, 6, 0),
            (32, 64, 3, 2, 1, 9, 7, 2),
            (64, 16, 3, 1, 1, 4, 4, 1),
            (8, 24, 1, 1, 0, 3, 5, 1),
            (16, 48, 5, 1, 2, 6, 5, 1),
        ] {
            let wt = Array4::from_shape_fn((o, c, k, k), |_| if rng.gen() { 1i8 } else { -1 });
            let layer = BConv2d::new(&pack_weights_i8(&wt).unwrap());
            let x: Vec<f32> = (0..h * w * c).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let mut framed = vec![0u8; frame::framed_len(h, w, c, pad)];
            frame::pack_framed(&x, (h, w, c), pad, 0, &mut framed).unwrap();
            let (oh, ow) = layer.output_size(h, w, stride, pad).unwrap();
            let kk = (k * k * c) as i32;
            // Random intervals (mostly inside `-kk..=kk`: sums compared in the kernel's
            // fallback), then one-sided ones as a monotone epilogue gives (prefix, suffix,
            // empty, all: the tap kernel's one-compare sign table, `super::output_transform`).
            let lo: Vec<i32> = (0..o).map(|_| rng.gen_range(-kk..kk / 2)).collect();
            let hi: Vec<i32> = lo.iter().map(|&l| l + rng.gen_range(-3..kk)).collect();
            let one_sided: Vec<(i32, i32)> = (0..o)
                .map(|ch| match ch % 4 {
                    0 => (-kk, rng.gen_range(-kk..kk)),
                    1 => (rng.gen_range(-kk..kk), kk),
                    2 => (1, 0),
                    _ => (-kk, kk),
                })
                .collect();
            let (lo1, hi1): (Vec<i32>, Vec<i32>) = one_sided.into_iter().unzip();
            for ((lo, hi), path) in [(&lo, &hi), (&lo1, &hi1)]
                .into_iter()
                .flat_map(|b| PopcountPath::available().into_iter().map(move |p| (b, p)))
            {
                let mut want = vec![0u8; frame::framed_len(oh, ow, o, p2)];
                layer
                    .forward_framed(path, &framed, (h, w), stride, pad, |oy, sums| {
                        for (ox, px) in sums.chunks_exact(o).enumerate() {
                            let at = ((oy + p2) * (ow + 2 * p2) + p2 + ox) * (o / 8);
                            for (ch, &s) in px.iter().enumerate() {
                                let bit = u8::from(lo[ch] <= s && s <= hi[ch]);
                                want[at + ch / 8] |= bit << (ch % 8);
                            }
                        }
                    })
                    .unwrap();
                let mut got = vec![0u8; want.len()];
                let bounds = (lo.as_slice(), hi.as_slice());
                layer
                    .forward_framed_bits(path, &framed, (h, w), stride, pad, bounds, &mut got, p2)
                    .unwrap();
                assert_eq!(got, want, "{path:?} C{c} O{o} k{k} s{stride} p{pad}");
            }
            let mut short = vec![0u8; frame::framed_len(oh, ow, o, p2) - 1];
            let bounds = (lo.as_slice(), hi.as_slice());
            let path = PopcountPath::detect();
            let err = layer.forward_framed_bits(
                path,
                &framed,
                (h, w),
                stride,
                pad,
                bounds,
                &mut short,
                p2,
            );
            assert!(err.is_err(), "a frame of the wrong size is an input error");
        }
    }
}
