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

    fn run(&self, x: &[f32], m: usize, out: &mut [f32]) {
        match self {
            Lin::F32(w) => kernels::linear(x, m, w, out, Epilogue::Bias),
            Lin::Bf16(w) => kernels::linear_bf16(x, m, w, out, Epilogue::Bias),
        }
    }
}

/// `out (m x n) = x (m x k) W^T + b`, the rows split over the current rayon pool.
pub(super) fn linear(x: &[f32], m: usize, w: &Lin, out: &mut [f32]) {
    let threads = rayon::current_num_threads();
    let rows = m.div_ceil(threads.max(1)).div_ceil(kernels::MR) * kernels::MR;
    if threads <= 1 || m < 2 * kernels::MR * 4 {
        w.run(x, m, out);
        return;
    }
    let (k, n) = w.dims();
    out.par_chunks_mut(rows * n).enumerate().for_each(|(j, o)| {
        let r0 = j * rows;
        let r = o.len() / n;
        w.run(&x[r0 * k..(r0 + r) * k], r, o);
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
    let mut dyt = vec![0f32; n * m];
    transpose_par(dy, m, n, &mut dyt);
    let xp = Lin::pack_transposed(x, m, k, p);
    let mut tmp = vec![0f32; n * k];
    linear(&dyt, n, &xp, &mut tmp);
    // the sums of every weight and bias on the pool (each one summed as before)
    dw.par_chunks_mut(4096)
        .zip(tmp.par_chunks(4096))
        .for_each(|(d, t)| d.iter_mut().zip(t).for_each(|(d, t)| *d += t));
    db.par_iter_mut()
        .zip(dyt.par_chunks(m))
        .for_each(|(b, row)| *b += row.iter().sum::<f32>());
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
            let mean = row.iter().sum::<f32>() / width as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
            let r = 1.0 / (var + eps).sqrt();
            *rs = r;
            for j in 0..width {
                xh[j] = (row[j] - mean) * r;
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
    for (row, xh) in dy.chunks(width).zip(xhat.chunks(width)) {
        for j in 0..width {
            dg[j] += row[j] * xh[j];
            db[j] += row[j];
        }
    }
    dy.par_chunks_mut(width)
        .zip(xhat.par_chunks(width))
        .zip(rstd.par_iter())
        .for_each(|((row, xh), &r)| {
            let mut s1 = 0f32;
            let mut s2 = 0f32;
            for j in 0..width {
                let d = row[j] * g[j];
                s1 += d;
                s2 += d * xh[j];
            }
            let (m1, m2) = (s1 / width as f32, s2 / width as f32);
            for j in 0..width {
                row[j] = r * (row[j] * g[j] - m1 - xh[j] * m2);
            }
        });
}

/// GELU (erf) of `u` into `g` on the inference engine's vectorised GELU (erf to 2e-7), keeping
/// `Phi(u) = g / u` (the normal CDF; `1/2 + u phi(0)` near 0) in `cdf` for the backward pass.
pub(super) fn gelu(u: &[f32], g: &mut [f32], cdf: &mut [f32]) {
    const C: usize = 4096;
    let phi0 = 0.398_942_3_f32;
    u.par_chunks(C)
        .zip(g.par_chunks_mut(C))
        .zip(cdf.par_chunks_mut(C))
        .for_each(|((u, g), c)| {
            g.copy_from_slice(u);
            kernels::gelu_inplace(g);
            for i in 0..u.len() {
                c[i] = if u[i].abs() > 1e-3 {
                    g[i] / u[i]
                } else {
                    0.5 + u[i] * phi0
                };
            }
        });
}

/// Backward of [`gelu`]: `d` (the output gradient) becomes `d * (Phi(u) + u phi(u))`.
pub(super) fn gelu_back(d: &mut [f32], u: &[f32], cdf: &[f32]) {
    const C: usize = 4096;
    let inv_sqrt_2pi = 0.398_942_3_f32;
    d.par_chunks_mut(C)
        .zip(u.par_chunks(C))
        .zip(cdf.par_chunks(C))
        .for_each(|((d, u), c)| {
            for i in 0..d.len() {
                let pdf = (-0.5 * u[i] * u[i]).exp() * inv_sqrt_2pi;
                d[i] *= c[i] + u[i] * pdf;
            }
        });
}
