//! The AVX2 + FMA tiles and vector helpers: the f32 6 x 16 micro-kernel, the int8 6 x 16
//! tile (`vpmaddubsw` + `vpmaddwd`, see [`int8`](super::int8)), the epilogues (bias, GELU in
//! its erf form, residual), vectorised `exp`, the softmax of attention's score columns, layer
//! norm, and an int8 row's quantization (range, outliers, codes in the micro-panel layout).
//!
//! Every function here is `unsafe` or needs AVX2 + FMA (`#[target_feature]`): the drivers in
//! [`packed`](super::packed) and [`int8`](super::int8) call them after the safe entry points
//! of [`kernels`](super) have checked the CPU and the shapes. This file imports only
//! [`cpu`](super::cpu) and [`common`](super::common).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::common::{largest, QTile, RowQuant, Top, ERF_P, ERF_Q, EXP_P, MAX_CHUNKS, QMAX_A};
use super::cpu::{Epilogue, MR, NR};

/// Applies what `ep` adds besides the bias to the `rows x 16` output tile at `c` (row stride
/// `n`), whose first element is output `(i, col)`.
///
/// # Safety
/// AVX2 and FMA present; `c` is a `rows x 16` block with row stride `n`; with
/// `BiasResidual(r)`, `r` is the output's shape and holds output `(i + rows - 1, col + 15)`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn finish_tile(
    rows: usize,
    c: *mut f32,
    n: usize,
    ep: Epilogue,
    i: usize,
    col: usize,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        match ep {
            Epilogue::Bias | Epilogue::Accumulate => {}
            Epilogue::BiasGelu => {
                for r in 0..rows {
                    gelu_16(c.add(r * n));
                }
            }
            Epilogue::BiasResidual(res) => {
                let rp = res.as_ptr().add(i * n + col);
                for r in 0..rows {
                    let cr = c.add(r * n);
                    let rr = rp.add(r * n);
                    _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), _mm256_loadu_ps(rr)));
                    _mm256_storeu_ps(
                        cr.add(8),
                        _mm256_add_ps(_mm256_loadu_ps(cr.add(8)), _mm256_loadu_ps(rr.add(8))),
                    );
                }
            }
        }
    }
}

/// One `R x 16` tile over `kc` inputs (`a[kk * ak + r]`: packed `[kk][MR]` micro-panels have
/// `ak = MR`): `c = bias + a b` when `bias` is set, else `c += a b`. The panel `b` holds f32
/// values, or f16 ones when `HALF` (widened exactly: the same bits for the same values).
///
/// # Safety
/// AVX2, FMA and F16C present; `a` holds `R` rows of `kc` values at `a[kk * ak + r]`, `b` a
/// 32-byte aligned `kc x 16` panel of f32 values (unaligned f16 ones when `HALF`), `c` an `R x 16` block with row stride `ldc`, `bias` null
/// or 16 values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn tile<const R: usize, const HALF: bool>(
    kc: usize,
    a: *const f32,
    ak: usize,
    b: *const u8,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let mut acc0 = [_mm256_setzero_ps(); R];
        let mut acc1 = [_mm256_setzero_ps(); R];
        for kk in 0..kc {
            let (b0, b1) = if HALF {
                // 16 halves widened exactly: the f32 panel's values
                let bp = b.add(kk * NR * 2);
                (
                    _mm256_cvtph_ps(_mm_loadu_si128(bp as *const __m128i)),
                    _mm256_cvtph_ps(_mm_loadu_si128(bp.add(16) as *const __m128i)),
                )
            } else {
                let bp = b.add(kk * NR * 4) as *const f32;
                (_mm256_load_ps(bp), _mm256_load_ps(bp.add(8)))
            };
            for r in 0..R {
                let av = _mm256_broadcast_ss(&*a.add(kk * ak + r));
                acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
                acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
            }
        }
        if bias.is_null() {
            for r in 0..R {
                let cr = c.add(r * ldc);
                _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), acc0[r]));
                _mm256_storeu_ps(
                    cr.add(8),
                    _mm256_add_ps(_mm256_loadu_ps(cr.add(8)), acc1[r]),
                );
            }
        } else {
            let bb0 = _mm256_loadu_ps(bias);
            let bb1 = _mm256_loadu_ps(bias.add(8));
            for r in 0..R {
                let cr = c.add(r * ldc);
                _mm256_storeu_ps(cr, _mm256_add_ps(bb0, acc0[r]));
                _mm256_storeu_ps(cr.add(8), _mm256_add_ps(bb1, acc1[r]));
            }
        }
    }
}

/// [`tile`] for `rows` (1 to 6) rows, on an f32 panel or, when `HALF`, an f16 one (the same
/// bits for the same values, half the bytes read).
///
/// # Safety
/// AVX2, FMA and F16C present; `a` holds `rows` rows of `kc` values at `a[kk * ak + r]`, `b`
/// the address of a `kc x 16` panel (32-byte aligned f32 values, or f16 ones when `HALF`), `c`
/// a `rows x 16` block with row stride `ldc`, `bias` null or 16 values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tile_rows<const HALF: bool>(
    rows: usize,
    kc: usize,
    a: *const f32,
    ak: usize,
    b: *const u8,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        match rows {
            6 => tile::<6, HALF>(kc, a, ak, b, c, ldc, bias),
            5 => tile::<5, HALF>(kc, a, ak, b, c, ldc, bias),
            4 => tile::<4, HALF>(kc, a, ak, b, c, ldc, bias),
            3 => tile::<3, HALF>(kc, a, ak, b, c, ldc, bias),
            2 => tile::<2, HALF>(kc, a, ak, b, c, ldc, bias),
            _ => tile::<1, HALF>(kc, a, ak, b, c, ldc, bias),
        }
    }
}

/// `exp(x)` on 8 lanes (Cephes polynomial, relative error ~1e-7; inputs below -87 give ~0).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn exp8(x: __m256) -> __m256 {
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-87.0)),
        _mm256_set1_ps(88.0),
    );
    let fx = _mm256_round_ps(
        _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
    );
    let x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693_359_4), x);
    let x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.121_944_4e-4), x);
    let mut y = _mm256_set1_ps(EXP_P[0]);
    for c in &EXP_P[1..] {
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(*c));
    }
    y = _mm256_fmadd_ps(
        y,
        _mm256_mul_ps(x, x),
        _mm256_add_ps(x, _mm256_set1_ps(1.0)),
    );
    let e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)),
        23,
    );
    _mm256_mul_ps(y, _mm256_castsi256_ps(e))
}

/// `erf(x / sqrt 2)` on 8 lanes: the rational approximation of Eigen and XLA (`z P(z^2) /
/// Q(z^2)` on z clamped to [-4, 4], absolute error below 2e-7), with no exp; the division is a
/// reciprocal estimate refined by one Newton step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn erf_scaled8(x: __m256) -> __m256 {
    let z = _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let z = _mm256_min_ps(_mm256_max_ps(z, _mm256_set1_ps(-4.0)), _mm256_set1_ps(4.0));
    let z2 = _mm256_mul_ps(z, z);
    let mut p = _mm256_set1_ps(ERF_P[0]);
    for c in &ERF_P[1..] {
        p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(*c));
    }
    p = _mm256_mul_ps(p, z);
    let mut q = _mm256_set1_ps(ERF_Q[0]);
    for c in &ERF_Q[1..] {
        q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(*c));
    }
    let r0 = _mm256_rcp_ps(q);
    let r = _mm256_mul_ps(r0, _mm256_fnmadd_ps(q, r0, _mm256_set1_ps(2.0)));
    _mm256_mul_ps(p, r)
}

/// `gelu(x) = x/2 (1 + erf(x / sqrt 2))` on 8 lanes, the exact (erf) form, not the tanh one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn gelu8(x: __m256) -> __m256 {
    let erf = erf_scaled8(x);
    let half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5));
    _mm256_fmadd_ps(half_x, erf, half_x)
}

/// GELU (erf form) of `u` into `g` and its derivative `Phi(u) + u phi(u)` into `dg` (`Phi`,
/// `phi` the normal CDF and density), 8 lanes at a time, the tail through a padded copy.
///
/// # Safety
/// AVX2 and FMA present; `g` and `dg` as long as `u`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gelu_grad_slice(u: &[f32], g: &mut [f32], dg: &mut [f32]) {
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn both(x: __m256) -> (__m256, __m256) {
        let erf = erf_scaled8(x);
        let half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5));
        let g = _mm256_fmadd_ps(half_x, erf, half_x);
        let cdf = _mm256_fmadd_ps(_mm256_set1_ps(0.5), erf, _mm256_set1_ps(0.5));
        let pdf = _mm256_mul_ps(
            exp8(_mm256_mul_ps(half_x, _mm256_sub_ps(_mm256_setzero_ps(), x))),
            _mm256_set1_ps(0.398_942_3),
        );
        (g, _mm256_fmadd_ps(x, pdf, cdf))
    }
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features and
    // lengths); every access below is inside the three slices or the local arrays.
    unsafe {
        let n = u.len() / 8 * 8;
        for i in (0..n).step_by(8) {
            let (a, b) = both(_mm256_loadu_ps(u.as_ptr().add(i)));
            _mm256_storeu_ps(g.as_mut_ptr().add(i), a);
            _mm256_storeu_ps(dg.as_mut_ptr().add(i), b);
        }
        let rest = u.len() - n;
        if rest > 0 {
            let mut t = [0f32; 8];
            t[..rest].copy_from_slice(&u[n..]);
            let (a, b) = both(_mm256_loadu_ps(t.as_ptr()));
            let (mut ta, mut tb) = ([0f32; 8], [0f32; 8]);
            _mm256_storeu_ps(ta.as_mut_ptr(), a);
            _mm256_storeu_ps(tb.as_mut_ptr(), b);
            g[n..].copy_from_slice(&ta[..rest]);
            dg[n..].copy_from_slice(&tb[..rest]);
        }
    }
}

/// # Safety
/// AVX2 and FMA present; `c` holds 16 values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn gelu_16(c: *mut f32) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        _mm256_storeu_ps(c, gelu8(_mm256_loadu_ps(c)));
        _mm256_storeu_ps(c.add(8), gelu8(_mm256_loadu_ps(c.add(8))));
    }
}

/// # Safety
/// AVX2 and FMA present; `width` a multiple of 8, `x` whole rows of `width`, `g` and `b`
/// of length `width`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn layer_norm(x: &mut [f32], width: usize, g: &[f32], b: &[f32], eps: f32) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let inv_w = 1.0 / width as f32;
        for row in x.chunks_exact_mut(width) {
            let p = row.as_mut_ptr();
            let mut s = _mm256_setzero_ps();
            for j in (0..width).step_by(8) {
                s = _mm256_add_ps(s, _mm256_loadu_ps(p.add(j)));
            }
            let mean = hsum(s) * inv_w;
            let mv = _mm256_set1_ps(mean);
            let mut q = _mm256_setzero_ps();
            for j in (0..width).step_by(8) {
                let d = _mm256_sub_ps(_mm256_loadu_ps(p.add(j)), mv);
                q = _mm256_fmadd_ps(d, d, q);
            }
            let inv = 1.0 / (hsum(q) * inv_w + eps).sqrt();
            let iv = _mm256_set1_ps(inv);
            for j in (0..width).step_by(8) {
                let d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(p.add(j)), mv), iv);
                let y = _mm256_fmadd_ps(
                    d,
                    _mm256_loadu_ps(g.as_ptr().add(j)),
                    _mm256_loadu_ps(b.as_ptr().add(j)),
                );
                _mm256_storeu_ps(p.add(j), y);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// The softmax of each of the `lq` columns of the `len x lq` scores at `st` (row stride `lq`),
/// in place, 8 columns per vector: attention's scores, keys down, queries across.
///
/// # Safety
/// AVX2 and FMA present; `st` holds `len x lq` values, `lq` a multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn softmax_columns(st: *mut f32, len: usize, lq: usize) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        for cb in 0..lq / 8 {
            let col = st.add(cb * 8);
            let mut mx = _mm256_set1_ps(f32::NEG_INFINITY);
            for j in 0..len {
                mx = _mm256_max_ps(mx, _mm256_loadu_ps(col.add(j * lq)));
            }
            let mut sum = _mm256_setzero_ps();
            for j in 0..len {
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(col.add(j * lq)), mx));
                sum = _mm256_add_ps(sum, e);
                _mm256_storeu_ps(col.add(j * lq), e);
            }
            let inv = _mm256_div_ps(_mm256_set1_ps(1.0), sum);
            for j in 0..len {
                let p = col.add(j * lq);
                _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_loadu_ps(p), inv));
            }
        }
    }
}

/// `c = col_scale x (row_scale x (a b - zero x col_sum) + outliers x b[outliers]) + bias` for
/// one `R x 16` tile over all of K.
///
/// # Safety
/// AVX2 and FMA present; `t` describes an `R x 16` tile: `t.a` holds `t.groups` groups of
/// `MR x 4` codes, `t.b` one panel of `t.groups x 64` bytes, the row pointers `R` rows (and
/// `R x t.outliers` outliers whose inputs are rows of `t.wt`), the column pointers 16
/// columns, `t.c` an `R x 16` block with row stride `t.ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn qtile<const R: usize>(t: &QTile) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut acc0 = [_mm256_setzero_si256(); R];
        let mut acc1 = [_mm256_setzero_si256(); R];
        let a = t.a as *const i32;
        for g in 0..t.groups {
            let b0 = _mm256_loadu_si256(t.b.add(g * 64) as *const __m256i);
            let b1 = _mm256_loadu_si256(t.b.add(g * 64 + 32) as *const __m256i);
            for r in 0..R {
                let av = _mm256_set1_epi32(a.add(g * MR + r).read_unaligned());
                acc0[r] = _mm256_add_epi32(
                    acc0[r],
                    _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones),
                );
                acc1[r] = _mm256_add_epi32(
                    acc1[r],
                    _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones),
                );
            }
        }
        let ws0 = _mm256_loadu_ps(t.col_scale);
        let ws1 = _mm256_loadu_ps(t.col_scale.add(8));
        let cs0 = _mm256_loadu_si256(t.col_sum as *const __m256i);
        let cs1 = _mm256_loadu_si256(t.col_sum.add(8) as *const __m256i);
        let bb0 = _mm256_loadu_ps(t.bias);
        let bb1 = _mm256_loadu_ps(t.bias.add(8));
        for r in 0..R {
            let z = _mm256_set1_epi32(*t.row_zero.add(r));
            let sa = _mm256_set1_ps(*t.row_scale.add(r));
            let v0 = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc0[r], _mm256_mullo_epi32(z, cs0)));
            let v1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc1[r], _mm256_mullo_epi32(z, cs1)));
            // the outliers' products with their channels' integer weights: input `c`'s 16
            // weights of this tile, contiguous in the transposed copy, sign-extended
            let (mut g0, mut g1) = (_mm256_mul_ps(v0, sa), _mm256_mul_ps(v1, sa));
            for o in r * t.outliers..(r + 1) * t.outliers {
                let xv = _mm256_set1_ps(*t.oval.add(o));
                let wp = t.wt.add(*t.oidx.add(o) as usize * t.ldc) as *const __m128i;
                let w0 = _mm256_cvtepi8_epi32(_mm_loadl_epi64(wp));
                let w1 = _mm256_cvtepi8_epi32(_mm_loadl_epi64(wp.cast::<i8>().add(8).cast()));
                g0 = _mm256_fmadd_ps(xv, _mm256_cvtepi32_ps(w0), g0);
                g1 = _mm256_fmadd_ps(xv, _mm256_cvtepi32_ps(w1), g1);
            }
            let f0 = _mm256_fmadd_ps(g0, ws0, bb0);
            let f1 = _mm256_fmadd_ps(g1, ws1, bb1);
            let cr = t.c.add(r * t.ldc);
            _mm256_storeu_ps(cr, f0);
            _mm256_storeu_ps(cr.add(8), f1);
        }
    }
}

/// [`qtile`] for `rows` (1 to 6) rows.
///
/// # Safety
/// AVX2 and FMA present; `t` describes a `rows x 16` tile whose buffers hold what [`qtile`]
/// reads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn qtile_rows(rows: usize, t: &QTile) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        match rows {
            6 => qtile::<6>(t),
            5 => qtile::<5>(t),
            4 => qtile::<4>(t),
            3 => qtile::<3>(t),
            2 => qtile::<2>(t),
            _ => qtile::<1>(t),
        }
    }
}

/// The smallest and largest value of `row`, widened to include 0.
///
/// # Safety
/// AVX2 and FMA present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn min_max(row: &[f32]) -> (f32, f32) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let k = row.len();
        let p = row.as_ptr();
        let mut lo = _mm256_setzero_ps();
        let mut hi = _mm256_setzero_ps();
        let k8 = k / 8 * 8;
        let mut kk = 0;
        while kk < k8 {
            let v = _mm256_loadu_ps(p.add(kk));
            lo = _mm256_min_ps(lo, v);
            hi = _mm256_max_ps(hi, v);
            kk += 8;
        }
        let mut l = [0f32; 8];
        let mut h = [0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), lo);
        _mm256_storeu_ps(h.as_mut_ptr(), hi);
        let mut lo_s = l.iter().fold(0f32, |a, &b| a.min(b));
        let mut hi_s = h.iter().fold(0f32, |a, &b| a.max(b));
        for &v in &row[k8..] {
            lo_s = lo_s.min(v);
            hi_s = hi_s.max(v);
        }
        (lo_s, hi_s)
    }
}

/// Writes the codes of `row` under `q` in the micro-panel layout (see `int8::quantize_row`).
///
/// # Safety
/// AVX2 and FMA present; `dst` holds the micro-panel layout of `kp.div_ceil(4)` groups
/// (`kp >= row.len()`, 4 codes of each group at `dst + g * MR * 4`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn write_codes(row: &[f32], kp: usize, dst: *mut u8, q: RowQuant) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let k = row.len();
        let k8 = k / 8 * 8;
        let p = row.as_ptr();
        let inv = _mm256_set1_ps(1.0 / q.scale);
        let zero = _mm256_set1_epi32(q.zero);
        let (min, max) = (_mm256_setzero_si256(), _mm256_set1_epi32(QMAX_A));
        // byte 0 of each i32 to the low four bytes of each 128-bit lane
        let pick = _mm256_setr_epi8(
            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1,
            -1, -1, -1, -1, -1, -1, -1, -1, -1,
        );
        let mut kk = 0;
        while kk < k8 {
            let v = _mm256_mul_ps(_mm256_loadu_ps(p.add(kk)), inv);
            let c = _mm256_add_epi32(_mm256_cvtps_epi32(v), zero);
            let c = _mm256_shuffle_epi8(_mm256_min_epi32(_mm256_max_epi32(c, min), max), pick);
            let g = kk / 4;
            (dst.add(g * MR * 4) as *mut i32).write_unaligned(_mm256_extract_epi32::<0>(c));
            (dst.add((g + 1) * MR * 4) as *mut i32).write_unaligned(_mm256_extract_epi32::<4>(c));
            kk += 8;
        }
        for kk in k8..kp {
            let code = row.get(kk).map_or(0, |&v| q.code(v));
            *dst.add((kk / 4) * MR * 4 + kk % 4) = code;
        }
    }
}

/// [`largest`] and the range of the other values, widened to include 0, in two passes: the
/// `t`-th largest of 32 buckets' maxima bounds the `t`-th largest magnitude from below,
/// so only the values at or above it (a few) go through the insertion; the values below it
/// are in the range, and so is each candidate the insertion turns away or pushes out.
///
/// # Safety
/// AVX2 and FMA present; `idx` and `val` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn take_outliers(row: &[f32], idx: &mut [u32], val: &mut [f32]) -> (f32, f32) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let (k, t) = (row.len(), idx.len());
        if t > 8 || k < 8 {
            largest(row, idx, val);
            let mut range = (0f32, 0f32);
            for (i, &v) in row.iter().enumerate() {
                if !idx.contains(&(i as u32)) {
                    range = (range.0.min(v), range.1.max(v));
                }
            }
            return range;
        }
        let k8 = k / 8 * 8;
        let p = row.as_ptr();
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        // 32 buckets (4 accumulators x 8 lanes): their t-th largest maximum is a tight bound
        // (four named accumulators: an array indexed by kk kept them in memory)
        let ld = |kk: usize| _mm256_and_ps(_mm256_loadu_ps(p.add(kk)), abs);
        let (mut m0, mut m1, mut m2, mut m3) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        let mut kk = 0;
        while kk + 32 <= k8 {
            m0 = _mm256_max_ps(m0, ld(kk));
            m1 = _mm256_max_ps(m1, ld(kk + 8));
            m2 = _mm256_max_ps(m2, ld(kk + 16));
            m3 = _mm256_max_ps(m3, ld(kk + 24));
            kk += 32;
        }
        if kk < k8 {
            m0 = _mm256_max_ps(m0, ld(kk));
        }
        if kk + 8 < k8 {
            m1 = _mm256_max_ps(m1, ld(kk + 8));
        }
        if kk + 16 < k8 {
            m2 = _mm256_max_ps(m2, ld(kk + 16));
        }
        let mx = [m0, m1, m2, m3];
        let mut buckets = [0f32; 32];
        for (b, m) in mx.iter().enumerate() {
            _mm256_storeu_ps(buckets.as_mut_ptr().add(8 * b), *m);
        }
        // the t-th largest bucket maximum: the smallest maximum with fewer than t maxima above
        // it, counted with vector compares (no branch to mispredict; a sort or an insertion
        // cost 3-5% of the int8 pass)
        let mut thr = f32::INFINITY;
        for &v in &buckets {
            let vv = _mm256_set1_ps(v);
            let mut above = 0;
            for m in &mx {
                above += _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(*m, vv)).count_ones();
            }
            if (above as usize) < t {
                thr = thr.min(v);
            }
        }
        let tv = _mm256_set1_ps(thr);
        let mut top = Top::new(idx, val);
        let (mut lo, mut hi) = (0f32, 0f32);
        let mut out = |v: Option<f32>| {
            if let Some(v) = v {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        };
        // one pass of pure vector work (the range of the values below the threshold, and which
        // 8-value chunks hold candidates), then the few candidates through the insertion
        let (mut vlo, mut vhi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut flagged = [0u8; MAX_CHUNKS];
        let chunks = (k8 / 8).min(MAX_CHUNKS);
        for (ch, f) in flagged.iter_mut().enumerate().take(chunks) {
            let v = _mm256_loadu_ps(p.add(ch * 8));
            let big = _mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_and_ps(v, abs), tv);
            let small = _mm256_andnot_ps(big, v);
            vlo = _mm256_min_ps(vlo, small);
            vhi = _mm256_max_ps(vhi, small);
            *f = _mm256_movemask_ps(big) as u8;
        }
        for (ch, &f) in flagged.iter().enumerate().take(chunks) {
            let mut bits = f as u32;
            while bits != 0 {
                let i = ch * 8 + bits.trailing_zeros() as usize;
                out(top.insert(i, row[i]));
                bits &= bits - 1;
            }
        }
        // rows longer than MAX_CHUNKS x 8 (none in BERT-small) go on one value at a time
        for (i, &v) in row.iter().enumerate().take(k8).skip(chunks * 8) {
            out(if v.abs() >= thr {
                top.insert(i, v)
            } else {
                Some(v)
            });
        }
        for (i, &v) in row.iter().enumerate().skip(k8) {
            out(if v.abs() >= thr {
                top.insert(i, v)
            } else {
                Some(v)
            });
        }
        let mut l = [0f32; 8];
        let mut h = [0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), vlo);
        _mm256_storeu_ps(h.as_mut_ptr(), vhi);
        let lo = l.iter().fold(lo, |a, &b| a.min(b));
        let hi = h.iter().fold(hi, |a, &b| a.max(b));
        (lo, hi)
    }
}
