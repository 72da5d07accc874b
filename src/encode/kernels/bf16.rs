//! bf16 linear layers of the packed encoder (`--engine bf16`), on AVX512-BF16.
//!
//! Weights are rounded to bf16 (nearest even) once at load time and packed as 16-column
//! panels of input pairs: panel `p`, pair `g` is 16 u32, column `c`'s inputs `2g` (low half)
//! and `2g + 1` (high half), the layout `vdpbf16ps` multiplies (K padded with a zero weight to
//! an even count). Activations are rounded to bf16 by `vcvtne2ps2bf16` per block of
//! [`MC`] rows and [`KC`] inputs, row-major pairs, just before the tiles read them. The 12 x 32
//! tile ([`avx512`]'s `btile`) adds each pair's two products to f32 accumulators; the bias and
//! the f32 epilogues (GELU, residual: [`avx2`]'s `finish_tile`) run as in the f32 engine.
//! Everything outside the linear layers (attention, layer norm, embeddings) stays f32.
//!
//! Every output is one chain of `vdpbf16ps` over K in a fixed order, so, as in the f32
//! engine, a row's result does not depend on the batch it is in. The result differs from
//! f32's by the rounding of both operands to 8-bit mantissas (embeddings within cosine 0.999
//! of f32, tested on the real model).
//!
//! There is one path: a CPU without AVX512-BF16 cannot run the engine, which
//! [`Encoder::load`](crate::encode::Encoder::load) refuses with an error rather than
//! running f32 under the bf16 name.

use super::common::bf16_bits;
use super::cpu::{check_weight, Epilogue, KC, MC, NR};
use super::{avx2, avx512};

const _: () = assert!(KC.is_multiple_of(2), "a K block must hold whole pairs");

/// A weight matrix rounded to bf16 and packed as 16-column panels of input pairs (see the
/// module).
pub struct Bf16Linear {
    /// Inputs (K).
    pub k: usize,
    /// Outputs (N, a multiple of 16).
    pub n: usize,
    /// `n / 16` panels of `k.div_ceil(2) x 16` pairs, 64-byte aligned from `off`.
    data: Vec<u32>,
    off: usize,
    /// Bias, length N (f32).
    pub bias: Vec<f32>,
}

impl Bf16Linear {
    /// Rounds `w` (row-major `n x k`, PyTorch `Linear.weight`) to bf16 and packs it; `bias`
    /// (length n) stays f32. `n` must be a multiple of 16.
    pub fn pack(w: &[f32], n: usize, k: usize, bias: Vec<f32>) -> Bf16Linear {
        check_weight(w, n, k, &bias);
        let groups = k.div_ceil(2);
        let mut data = vec![0u32; n * groups + 16];
        let off = data.as_ptr().align_offset(64).min(15);
        let d = &mut data[off..off + n * groups];
        for j in 0..n {
            let (p, col) = (j / NR, j % NR);
            let row = &w[j * k..(j + 1) * k];
            for (g, pair) in row.chunks(2).enumerate() {
                let lo = bf16_bits(pair[0]) as u32;
                let hi = pair.get(1).map_or(0, |&v| bf16_bits(v) as u32);
                d[p * groups * NR + g * NR + col] = lo | hi << 16;
            }
        }
        Bf16Linear {
            k,
            n,
            data,
            off,
            bias,
        }
    }

    /// Rounds and packs the transpose of `a` (row-major `rows x cols`) as the weight of
    /// `y = x A`: `rows` inputs, `cols` outputs (a multiple of 16), zero bias. The same pairs
    /// as `pack` of the transposed matrix, read straight from `a`'s rows (the training
    /// engine's `dY W` and `dY^T X`).
    pub fn pack_transposed(a: &[f32], rows: usize, cols: usize) -> Bf16Linear {
        assert_eq!(a.len(), rows * cols, "matrix is not {rows} x {cols}");
        assert_eq!(cols % NR, 0, "columns {cols} not a multiple of {NR}");
        let (k, n) = (rows, cols);
        let groups = k.div_ceil(2);
        let mut data = vec![0u32; n * groups + 16];
        let off = data.as_ptr().align_offset(64).min(15);
        let d = &mut data[off..off + n * groups];
        // one panel (16 outputs, every pair of inputs) per task on the current rayon pool
        use rayon::prelude::*;
        d.par_chunks_mut((groups * NR).max(1))
            .enumerate()
            .for_each(|(p, panel)| {
                for g in 0..groups {
                    let lo = &a[2 * g * n + p * NR..2 * g * n + (p + 1) * NR];
                    let hi = (2 * g + 1 < k)
                        .then(|| &a[(2 * g + 1) * n + p * NR..(2 * g + 1) * n + (p + 1) * NR]);
                    for (c, v) in panel[g * NR..(g + 1) * NR].iter_mut().enumerate() {
                        let h = hi.map_or(0, |h| bf16_bits(h[c]) as u32);
                        *v = bf16_bits(lo[c]) as u32 | h << 16;
                    }
                }
            });
        Bf16Linear {
            k,
            n,
            data,
            off,
            bias: vec![0.0; n],
        }
    }

    /// The packed pairs.
    pub(super) fn pairs(&self) -> &[u32] {
        let groups = self.k.div_ceil(2);
        &self.data[self.off..self.off + self.n * groups]
    }
}

thread_local! {
    /// The bf16 pairs of one `MC x KC` block of activations, kept per thread.
    static BPACK: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `out (m x n) = epilogue(x (m x k) W^T + b)` with `W` in bf16, all row-major and contiguous.
///
/// # Safety
/// AVX2, FMA, AVX-512 F / BW and AVX512-BF16 present (`cpu::has_avx512_bf16`); `x` is
/// `m x w.k`, `out` (and a residual in `ep`) `m x w.n` (`cpu::check_call` checks the shapes).
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn linear(x: &[f32], m: usize, w: &Bf16Linear, out: &mut [f32], ep: Epilogue) {
    BPACK.with(|cell| {
        let mut apack = cell.borrow_mut();
        if apack.len() < MC * KC / 2 {
            apack.resize(MC * KC / 2, 0);
        }
        // SAFETY: the CPU and the shapes as this function's contract; `apack` holds an
        // MC x KC / 2 block of pairs.
        unsafe { linear_blocks(x, m, w, out, ep, &mut apack) }
    })
}

/// The body of [`linear`]: K blocks of [`KC`], row blocks of [`MC`] rounded into `apack`,
/// then every pair of panels (and an odd last panel) over them in 12-row tiles.
///
/// # Safety
/// As [`linear`]'s, and `apack` holds `MC x KC / 2` pairs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn linear_blocks(
    x: &[f32],
    m: usize,
    w: &Bf16Linear,
    out: &mut [f32],
    ep: Epilogue,
    apack: &mut [u32],
) {
    // SAFETY: the CPU as the contract requires for every call; the loop bounds keep every
    // offset inside `x` (m x k), `out` (m x n), `apack` (at most MC rows of KC / 2 pairs) and
    // `w`'s panels (n / 16 panels of k.div_ceil(2) x 16 pairs; a K block starts at an even
    // input, `KC` being even), and each tile gets whole rows and whole output columns.
    unsafe {
        let (k, n) = (w.k, w.n);
        let panels = n / NR;
        let pstride = k.div_ceil(2) * NR;
        let wp = w.pairs().as_ptr();
        let xp = x.as_ptr();
        let op = out.as_mut_ptr();
        let ap = apack.as_mut_ptr();
        let mut k0 = 0;
        while k0 < k {
            let kc = KC.min(k - k0);
            let gc = kc.div_ceil(2);
            let (first, last) = (k0 == 0, k0 + kc == k);
            let mut i0 = 0;
            while i0 < m {
                let i1 = (i0 + MC).min(m);
                avx512::bf16_rows(i1 - i0, kc, xp.add(i0 * k + k0), k, ap, gc);
                let mut p = 0;
                while p < panels {
                    let two = p + 1 < panels;
                    let b = wp.add(p * pstride + (k0 / 2) * NR);
                    let bias = if first && !matches!(ep, Epilogue::Accumulate) {
                        w.bias.as_ptr().add(p * NR)
                    } else {
                        std::ptr::null()
                    };
                    let mut i = i0;
                    while i < i1 {
                        let rows = 12.min(i1 - i);
                        let c = op.add(i * n + p * NR);
                        let a = ap.add((i - i0) * gc);
                        avx512::btile_rows(rows, two, gc, a, gc, b, pstride, c, n, bias);
                        if last {
                            avx2::finish_tile(rows, c, n, ep, i, p * NR);
                            if two {
                                avx2::finish_tile(rows, c.add(NR), n, ep, i, p * NR + NR);
                            }
                        }
                        i += rows;
                    }
                    p += if two { 2 } else { 1 };
                }
                i0 = i1;
            }
            k0 += kc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::{bf16_bits, bf16_value};
    use super::super::tests::rnd;
    use super::super::{has_avx512_bf16, linear, linear_bf16, Epilogue, PackedLinear};

    #[test]
    fn packing_the_transpose_gives_the_pairs_of_the_transposed_matrix() {
        for (rows, cols) in [(7, 32), (8, 16), (33, 48)] {
            let a: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let mut t = vec![0f32; rows * cols];
            for r in 0..rows {
                for c in 0..cols {
                    t[c * rows + r] = a[r * cols + c];
                }
            }
            let want = Bf16Linear::pack(&t, cols, rows, vec![0.0; cols]);
            let got = Bf16Linear::pack_transposed(&a, rows, cols);
            assert_eq!((got.k, got.n), (want.k, want.n));
            assert_eq!(got.pairs(), want.pairs(), "{rows} x {cols}");
            assert_eq!(got.bias, want.bias);
        }
    }
    use super::*;

    /// Says why a bf16 test does not run here (never silently).
    fn skip() -> bool {
        let no = !has_avx512_bf16();
        if no {
            eprintln!("SKIP: no AVX512-BF16 on this CPU (avx512_bf16 not in /proc/cpuinfo)");
        }
        no
    }

    fn bf(v: f32) -> f64 {
        bf16_value(bf16_bits(v)) as f64
    }

    #[test]
    fn the_scalar_rounding_is_the_instructions_bit_for_bit() {
        if skip() {
            return;
        }
        let mut xs = rnd(1000, 11);
        xs.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v *= (i as f32).exp2() * 1e-3);
        xs.extend([
            0.0,
            -0.0,
            1.0,
            1.0 + 1.0 / 256.0, // tie, to even (down)
            1.0 + 3.0 / 256.0, // tie, to even (up)
            -(1.0 + 3.0 / 256.0),
            1e-40, // subnormal: to zero
            -1e-40,
            f32::MAX, // rounds to infinity
            f32::INFINITY,
            f32::NEG_INFINITY,
            65504.0,
        ]);
        let k = xs.len();
        let mut pairs = vec![0u32; k.div_ceil(2)];
        // SAFETY: AVX512-BF16 checked; one row of k values into k / 2 pairs.
        unsafe { avx512::bf16_rows(1, k, xs.as_ptr(), k, pairs.as_mut_ptr(), pairs.len()) };
        for (i, &x) in xs.iter().enumerate() {
            let got = (pairs[i / 2] >> (16 * (i % 2))) as u16;
            assert_eq!(got, bf16_bits(x), "value {i}: {x:e}");
        }
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(bf16_bits(1e-40), 0);
        assert_eq!(bf16_bits(f32::MAX), 0x7f80);
    }

    #[test]
    fn bf16_linear_is_the_exact_product_of_the_rounded_operands() {
        if skip() {
            return;
        }
        // odd K (a last pair with one input), K across blocks with an odd tail, an odd panel
        for &(m, k, n) in &[
            (13, 40, 32),
            (25, 3, 16),
            (101, 384, 48),
            (7, 701, 16),
            (200, 1536, 64),
        ] {
            let x = rnd(m * k, 1);
            let w = rnd(n * k, 2);
            let b = rnd(n, 3);
            let res = rnd(m * n, 4);
            let bl = Bf16Linear::pack(&w, n, k, b.clone());
            // f64 sums of the bf16-rounded operands; the bound is f32 accumulation's
            let (mut want, mut bound, mut exact) = (vec![0f64; m * n], vec![0f64; m * n], 0f64);
            for i in 0..m {
                for j in 0..n {
                    let (mut s, mut a, mut f) = (b[j] as f64, b[j].abs() as f64, b[j] as f64);
                    for kk in 0..k {
                        let p = bf(x[i * k + kk]) * bf(w[j * k + kk]);
                        s += p;
                        a += p.abs();
                        f += x[i * k + kk] as f64 * w[j * k + kk] as f64;
                    }
                    want[i * n + j] = s;
                    bound[i * n + j] = 2.0 * (k as f64).sqrt() * a * f32::EPSILON as f64;
                    exact = exact.max((f - s).abs() / (bound[i * n + j] + 1e-30));
                }
            }
            // the operands are rounded (else the f32 product would be within the bound too)
            assert!(exact > 1.0, "m{m} k{k} n{n}: not rounded to bf16?");
            let mut out = vec![0f32; m * n];
            for ep in [
                Epilogue::Bias,
                Epilogue::BiasGelu,
                Epilogue::BiasResidual(&res),
            ] {
                out.iter_mut().for_each(|o| *o = f32::NAN);
                linear_bf16(&x, m, &bl, &mut out, ep);
                // the epilogues are the f32 engine's: compare Bias strictly, the others
                // through the f32 kernel's epilogue on the same sums
                if let Epilogue::Bias = ep {
                    for (idx, (&o, &wv)) in out.iter().zip(&want).enumerate() {
                        let tol = bound[idx] + 1e-7;
                        assert!(
                            (o as f64 - wv).abs() <= tol,
                            "m{m} k{k} n{n} [{idx}]: {o} vs {wv} (tol {tol:e})"
                        );
                    }
                } else {
                    let mut plain = vec![0f32; m * n];
                    linear_bf16(&x, m, &bl, &mut plain, Epilogue::Bias);
                    // f32 identity weights carry `plain` through the f32 kernel's epilogue
                    let mut eye = vec![0f32; n * n];
                    (0..n).for_each(|j| eye[j * n + j] = 1.0);
                    let id = PackedLinear::pack(&eye, n, n, vec![0.0; n]);
                    let mut via = vec![0f32; m * n];
                    linear(&plain, m, &id, &mut via, ep);
                    assert_eq!(out, via, "m{m} k{k} n{n}: epilogue");
                }
            }
            // Accumulate: the sums start from the output's values instead of the bias
            let mut acc = res.clone();
            linear_bf16(&x, m, &bl, &mut acc, Epilogue::Accumulate);
            for (idx, (&o, &wv)) in acc.iter().zip(&want).enumerate() {
                let e = wv - b[idx % n] as f64 + res[idx] as f64;
                let tol = bound[idx] + 2e-6 * (1.0 + e.abs());
                assert!(
                    (o as f64 - e).abs() <= tol,
                    "m{m} k{k} n{n} [{idx}]: accumulate {o} vs {e} (tol {tol:e})"
                );
            }
        }
    }

    #[test]
    fn a_rows_bf16_result_does_not_depend_on_its_batch() {
        if skip() {
            return;
        }
        let (m, k, n) = (150, 1536, 384);
        let x = rnd(m * k, 21);
        let bl = Bf16Linear::pack(&rnd(n * k, 22), n, k, rnd(n, 23));
        let mut all = vec![0f32; m * n];
        linear_bf16(&x, m, &bl, &mut all, Epilogue::BiasGelu);
        for i in [0, 5, 11, 12, 97, 149] {
            let mut one = vec![0f32; n];
            linear_bf16(&x[i * k..(i + 1) * k], 1, &bl, &mut one, Epilogue::BiasGelu);
            assert_eq!(one, all[i * n..(i + 1) * n], "row {i}");
        }
    }
}
