//! The training engine's operations on packed token rows: the three products of a linear layer
//! (`X W^T`, `dY W`, `dY^T X`) on the packed matmul kernels (exact f32, or bf16 operands with
//! f32 sums: [`Products`]), the attention backward (from `kernels::train`), layer norm and
//! GELU (erf) forward and backward.

use crate::encode::kernels::train::transpose_par;
pub(super) use crate::encode::kernels::train::{attention_back, Attn};
use crate::encode::kernels::{self, Bf16Linear, Epilogue, PackedLinear};
use rayon::prelude::*;

/// How the linear layers' products are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Products {
    /// Exact f32 (the default).
    F32,
    /// Both operands rounded to bf16, f32 sums (AVX512-BF16 `vdpbf16ps` tiles): faster where
    /// the CPU runs them at full width (AMD Zen 4/5).
    Bf16,
}

/// A weight matrix packed for one kind of [`Products`].
pub(super) enum Lin {
    F32(PackedLinear),
    Bf16(Bf16Linear),
}

impl Lin {
    /// Packs `w` (row-major `n x k`, `y = x W^T + b`).
    pub(super) fn pack(w: &[f32], n: usize, k: usize, bias: Vec<f32>, p: Products) -> Lin {
        match p {
            Products::F32 => Lin::F32(PackedLinear::pack(w, n, k, bias)),
            Products::Bf16 => Lin::Bf16(Bf16Linear::pack(w, n, k, bias)),
        }
    }

    /// Packs the transpose of `a` (row-major `rows x cols`) as the weight of `y = x A`: `rows`
    /// inputs, `cols` outputs, no bias.
    fn pack_transposed(a: &[f32], rows: usize, cols: usize, p: Products) -> Lin {
        match p {
            Products::F32 => Lin::F32(PackedLinear::pack_transposed(a, rows, cols)),
            Products::Bf16 => Lin::Bf16(Bf16Linear::pack_transposed(a, rows, cols)),
        }
    }

    fn dims(&self) -> (usize, usize) {
        match self {
            Lin::F32(w) => (w.k, w.n),
            Lin::Bf16(w) => (w.k, w.n),
        }
    }

    fn run(&self, x: &[f32], m: usize, out: &mut [f32], ep: Epilogue) {
        match self {
            Lin::F32(w) => kernels::linear(x, m, w, out, ep),
            Lin::Bf16(w) => kernels::linear_bf16(x, m, w, out, ep),
        }
    }
}

/// Values per task of the element-wise passes below.
const EW: usize = 16 * 1024;

/// `n` zeros, written on the pool (a step allocates hundreds of MB of activations: zeroing
/// them on one thread left the other idle).
pub(super) fn zeros(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    v.par_extend(rayon::iter::repeat_n(0f32, n));
    v
}

/// `a = a * m + r` (dropout scales `m`, if any, then the residual `r`), on the pool.
pub(super) fn mask_add(a: &mut [f32], m: Option<&[f32]>, r: &[f32]) {
    match m {
        Some(m) => a
            .par_chunks_mut(EW)
            .zip(m.par_chunks(EW))
            .zip(r.par_chunks(EW))
            .for_each(|((a, m), r)| {
                for ((a, m), r) in a.iter_mut().zip(m).zip(r) {
                    *a = *a * m + r;
                }
            }),
        None => add_into(a, r),
    }
}

/// `a += b`, on the pool.
pub(super) fn add_into(a: &mut [f32], b: &[f32]) {
    a.par_chunks_mut(EW)
        .zip(b.par_chunks(EW))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
}

/// `d * m` (dropout scales), or a copy of `d` without them, on the pool.
pub(super) fn masked(d: &[f32], m: Option<&[f32]>) -> Vec<f32> {
    let mut out = Vec::with_capacity(d.len());
    match m {
        Some(m) => out.par_extend(d.par_iter().zip(m.par_iter()).map(|(d, m)| d * m)),
        None => out.par_extend(d.par_iter().copied()),
    }
    out
}

/// `out (m x n) = x (m x k) W^T + b`, the rows split over the current rayon pool.
pub(super) fn linear(x: &[f32], m: usize, w: &Lin, out: &mut [f32]) {
    linear_ep(x, m, w, out, Epilogue::Bias);
}

/// [`linear`] with the epilogue `ep` (`Accumulate`: `out += x W^T`).
fn linear_ep(x: &[f32], m: usize, w: &Lin, out: &mut [f32], ep: Epilogue) {
    let threads = rayon::current_num_threads();
    let rows = m.div_ceil(threads.max(1)).div_ceil(kernels::MR) * kernels::MR;
    if threads <= 1 || m < 2 * kernels::MR * 4 {
        w.run(x, m, out, ep);
        return;
    }
    let (k, n) = w.dims();
    out.par_chunks_mut(rows * n).enumerate().for_each(|(j, o)| {
        let r0 = j * rows;
        let r = o.len() / n;
        w.run(&x[r0 * k..(r0 + r) * k], r, o, ep);
    });
}

/// `out (m x k) = dy (m x n) W`, `W` row-major `n x k` (the input gradient of `y = x W^T`).
pub(super) fn input_grad(
    dy: &[f32],
    m: usize,
    w: &[f32],
    (n, k): (usize, usize),
    p: Products,
    out: &mut [f32],
) {
    let wt = Lin::pack_transposed(w, n, k, p);
    linear(dy, m, &wt, out);
}

/// `dw (n x k) += dy^T (n x m) x (m x k)` and `db (n) += column sums of dy`: the weight and
/// bias gradients of `y = x W^T + b` over `m` token rows.
#[allow(clippy::too_many_arguments)]
pub(super) fn weight_grad(
    dy: &[f32],
    x: &[f32],
    m: usize,
    n: usize,
    k: usize,
    p: Products,
    dw: &mut [f32],
    db: &mut [f32],
) {
    let mut dyt = zeros(n * m);
    transpose_par(dy, m, n, &mut dyt);
    let xp = Lin::pack_transposed(x, m, k, p);
    linear_ep(&dyt, n, &xp, dw, Epilogue::Accumulate);
    drop(dyt);
    // the bias sums: 64 columns of dy a task, the rows added in order (vectorised over columns)
    const C: usize = 64;
    db.par_chunks_mut(C).enumerate().for_each(|(c, d)| {
        let c0 = c * C;
        let mut acc = [0f32; C];
        for row in dy.chunks_exact(n) {
            acc.iter_mut()
                .zip(&row[c0..c0 + d.len()])
                .for_each(|(a, v)| *a += v);
        }
        d.iter_mut().zip(acc).for_each(|(d, a)| *d += a);
    });
}

/// The sum of `v`, in 8 interleaved partial sums (vectorised; a fixed order, so the same bits
/// on every run).
fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        acc.iter_mut().zip(c).for_each(|(a, x)| *a += x);
    }
    let tail: f32 = chunks.remainder().iter().sum();
    acc.iter().sum::<f32>() + tail
}

/// The sum of `a[j] * b[j]`, as [`sum8`] sums.
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// Layer norm of each `width` row of `x` in place; `xhat` and `rstd` receive the normalised
/// rows and `1 / sqrt(var + eps)` per row (for the backward pass).
pub(super) fn layer_norm(
    x: &mut [f32],
    width: usize,
    g: &[f32],
    b: &[f32],
    eps: f32,
    xhat: &mut [f32],
    rstd: &mut [f32],
) {
    x.par_chunks_mut(width)
        .zip(xhat.par_chunks_mut(width))
        .zip(rstd.par_iter_mut())
        .for_each(|((row, xh), rs)| {
            let mean = sum8(row) / width as f32;
            xh.iter_mut()
                .zip(row.iter())
                .for_each(|(d, v)| *d = v - mean);
            let var = dot8(xh, xh) / width as f32;
            let r = 1.0 / (var + eps).sqrt();
            *rs = r;
            for j in 0..width {
                xh[j] *= r;
                row[j] = xh[j] * g[j] + b[j];
            }
        });
}

/// Backward of [`layer_norm`]: `dy` (rows of `width`) becomes the input gradient in place;
/// `dg`, `db` receive the gain and bias gradients.
pub(super) fn layer_norm_back(
    dy: &mut [f32],
    width: usize,
    g: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    dg: &mut [f32],
    db: &mut [f32],
) {
    // the gain and bias sums: 64 columns a task, the rows added in order
    const C: usize = 64;
    dg.par_chunks_mut(C)
        .zip(db.par_chunks_mut(C))
        .enumerate()
        .for_each(|(c, (dg, db))| {
            let c0 = c * C;
            let w = dg.len();
            for (row, xh) in dy.chunks_exact(width).zip(xhat.chunks_exact(width)) {
                let (row, xh) = (&row[c0..c0 + w], &xh[c0..c0 + w]);
                for j in 0..w {
                    dg[j] += row[j] * xh[j];
                    db[j] += row[j];
                }
            }
        });
    dy.par_chunks_mut(width)
        .zip(xhat.par_chunks(width))
        .zip(rstd.par_iter())
        .for_each(|((row, xh), &r)| {
            row.iter_mut().zip(g).for_each(|(d, g)| *d *= g);
            let (m1, m2) = (sum8(row) / width as f32, dot8(row, xh) / width as f32);
            for j in 0..width {
                row[j] = r * (row[j] - m1 - xh[j] * m2);
            }
        });
}

/// GELU (erf) of `u` into `g` on the vectorised erf of the inference engine (to 2e-7), and its
/// derivative `Phi(u) + u phi(u)` into `dg` for the backward pass.
pub(super) fn gelu(u: &[f32], g: &mut [f32], dg: &mut [f32]) {
    const C: usize = 4096;
    u.par_chunks(C)
        .zip(g.par_chunks_mut(C))
        .zip(dg.par_chunks_mut(C))
        .for_each(|((u, g), d)| kernels::gelu_with_grad(u, g, d));
}

/// Backward of [`gelu`]: `d` (the output gradient) becomes `d * dg`.
pub(super) fn gelu_back(d: &mut [f32], dg: &[f32]) {
    const C: usize = 4096;
    d.par_chunks_mut(C)
        .zip(dg.par_chunks(C))
        .for_each(|(d, g)| d.iter_mut().zip(g).for_each(|(d, g)| *d *= g));
}
