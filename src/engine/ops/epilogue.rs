//! What happens to a convolution's output on its way out: bias, eval-mode batch-norm
//! (`s * v + t` with the folded running statistics), a residual add and an activation, in that
//! order, in one pass while the values are still in cache.
//!
//! Every step uses the same scalar expression as the stand-alone op it replaces (`v + b` as the
//! conv bias, `s * v + t` as [`super::batchnorm::scale_shift`], `v + r` as the `Add` op,
//! `max(v, 0)` / `clamp(v, -1, 1)`), and rounds after each step as they do, so a fused layer
//! gives bit-identical values to the unfused sequence: the tape-free inference path and the
//! taped forward pass agree exactly, and the two engines stay bit-identical. BN is deliberately
//! not folded into the weights (that changes the rounding of the convolution itself).

use std::mem::MaybeUninit;

/// Elementwise activation applied last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// `max(v, 0)`.
    Relu,
    /// `clamp(v, -1, 1)`.
    Hardtanh,
}

/// Per-output-channel parameters of the epilogue (the residual is per element and is passed
/// with each row).
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// Conv bias `b[o]`.
    pub bias: Option<&'a [f32]>,
    /// Eval-mode batch-norm as `(scale[o], shift[o])`.
    pub bn: Option<(&'a [f32], &'a [f32])>,
    pub act: Activation,
}

impl Epilogue<'_> {
    /// Nothing to do: the conv output as the GEMM produced it.
    pub const IDENTITY: Epilogue<'static> = Epilogue {
        bias: None,
        bn: None,
        act: Activation::Identity,
    };

    /// `dst = act(bn(src + bias) + residual)` for one row of output channel `o`, in one sweep
    /// with the steps' roundings in order.
    pub fn row(&self, o: usize, dst: &mut [f32], src: &[f32], residual: Option<&[f32]>) {
        // SAFETY: `row_uninit` only writes initialised values, so viewing initialised floats as
        // possibly-uninitialised ones for the write cannot leave anything uninitialised.
        let dst = unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) };
        self.row_uninit(o, dst, src, residual)
    }

    /// As [`Epilogue::row`] into memory not yet initialised (the convolution writes its
    /// output only through here, so it does not zero it first); writes every element of `dst`.
    pub fn row_uninit(
        &self,
        o: usize,
        dst: &mut [MaybeUninit<f32>],
        src: &[f32],
        residual: Option<&[f32]>,
    ) {
        self.row_map(o, dst, src, |v| v, residual)
    }

    /// As [`Epilogue::row_uninit`] with each source value first mapped by `to` (e.g. the
    /// scaling of a binary conv's integer sums), in the same sweep.
    pub fn row_map<T: Copy>(
        &self,
        o: usize,
        dst: &mut [MaybeUninit<f32>],
        src: &[T],
        to: impl Fn(T) -> f32,
        residual: Option<&[f32]>,
    ) {
        assert_eq!(dst.len(), src.len(), "epilogue row lengths");
        let bias = self.bias.map(|b| b[o]);
        let bn = self.bn.map(|(s, t)| (s[o], t[o]));
        // One monomorphised loop per combination: a branch per element cost more than the
        // arithmetic.
        let a = self.act;
        match (bias, bn, residual) {
            (None, None, None) => sweep(dst, src, a, |v, _| to(v)),
            (None, Some((s, t)), None) => sweep(dst, src, a, |v, _| s * to(v) + t),
            (None, Some((s, t)), Some(r)) => sweep(dst, src, a, |v, k| s * to(v) + t + r[k]),
            (Some(b), None, None) => sweep(dst, src, a, |v, _| to(v) + b),
            (Some(b), Some((s, t)), None) => sweep(dst, src, a, |v, _| s * (to(v) + b) + t),
            (Some(b), Some((s, t)), Some(r)) => {
                sweep(dst, src, a, |v, k| s * (to(v) + b) + t + r[k])
            }
            (None, None, Some(r)) => sweep(dst, src, a, |v, k| to(v) + r[k]),
            (Some(b), None, Some(r)) => sweep(dst, src, a, |v, k| to(v) + b + r[k]),
        }
    }

    /// As [`Epilogue::row`], in place (through a small stack buffer, so source and
    /// destination never alias).
    pub fn row_inplace(&self, o: usize, dst: &mut [f32], residual: Option<&[f32]>) {
        const B: usize = 256;
        let mut buf = [0.0f32; B];
        for (i, d) in dst.chunks_mut(B).enumerate() {
            let src = &mut buf[..d.len()];
            src.copy_from_slice(d);
            let r = residual.map(|r| &r[i * B..i * B + d.len()]);
            self.row(o, d, src, r);
        }
    }
}

/// `dst[k] = act(f(src[k], k))`, one loop per activation.
#[inline(always)]
fn sweep<T: Copy>(
    dst: &mut [MaybeUninit<f32>],
    src: &[T],
    act: Activation,
    f: impl Fn(T, usize) -> f32,
) {
    let it = dst.iter_mut().zip(src).enumerate();
    match act {
        Activation::Identity => it.for_each(|(k, (d, &v))| {
            d.write(f(v, k));
        }),
        Activation::Relu => it.for_each(|(k, (d, &v))| {
            d.write(f(v, k).max(0.0));
        }),
        Activation::Hardtanh => it.for_each(|(k, (d, &v))| {
            d.write(f(v, k).clamp(-1.0, 1.0));
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused row equals the unfused sequence of stand-alone expressions, bit for bit.
    #[test]
    fn fused_row_equals_the_unfused_sequence() {
        let src: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let res: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let (b, s, t) = ([0.3f32, -0.7], [1.7f32, 0.4], [-0.2f32, 0.9]);
        for act in [Activation::Identity, Activation::Relu, Activation::Hardtanh] {
            let ep = Epilogue {
                bias: Some(&b),
                bn: Some((&s, &t)),
                act,
            };
            let mut got = vec![0.0; 37];
            ep.row(1, &mut got, &src, Some(&res));
            let want: Vec<f32> = src
                .iter()
                .zip(&res)
                .map(|(&v, &r)| {
                    let z = s[1] * (v + b[1]) + t[1] + r;
                    match act {
                        Activation::Identity => z,
                        Activation::Relu => z.max(0.0),
                        Activation::Hardtanh => z.clamp(-1.0, 1.0),
                    }
                })
                .collect();
            assert_eq!(got, want, "{act:?}");
            let mut inplace = src.clone();
            ep.row_inplace(1, &mut inplace, Some(&res));
            assert_eq!(inplace, want, "{act:?} in place");
        }
    }
}
