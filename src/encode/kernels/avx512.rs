//! The AVX-512 tile of the f32 linear layers, for CPUs that have it (AMD Zen 4/5, Intel
//! Skylake-SP and later): 12 x 32 output tiles, twice the rows and twice the width of the AVX2
//! 6 x 16 tile, on the same packed weights and the same packed activations.
//!
//! A 12 x 32 tile reads two of [`packed`](super::packed)'s 6-row activation micro-panels and
//! two of its 16-column weight panels; per input it makes 2 weight loads, 12 broadcasts and
//! 24 FMAs into 24 of the 32 zmm registers. Nothing is repacked, so the choice between AVX-512
//! and AVX2 is made per call at run time ([`use_avx512`](super::cpu::use_avx512)), and both give the same sums in the
//! same order (every output is one FMA chain over K, as in the AVX2 tile).
//!
//! Also the int8 12 x 32 VNNI tile ([`qtile_rows`]), the AVX-512 search for a row's outliers
//! and the row-major codes of the AMX path. This file imports only [`cpu`](super::cpu) and
//! [`common`](super::common); the choice between these tiles and AVX2's is made by the
//! callers of [`kernels`](super).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::common::{QTile, RowQuant, Top, ERF_P, ERF_Q, EXP_P, MAX_CHUNKS, QMAX_A};
use super::cpu::{MR, NR};

/// One `R x 32` tile over `kc` inputs. Row `r < 6`'s `kk`-th value is `a[kk * ak + r]`, row
/// `r >= 6`'s is `a1[kk * ak + r - 6]` (packed micro-panels: `ak = MR`, `a1 = a + MR * kc`;
/// attention: any `ak`, `a1 = a + MR`); `b0` / `b1` are two 16-column panels `[kk][16]`;
/// `c = bias + a b` when `bias` is set, else `c += a b` (row stride `ldc`).
///
/// # Safety
/// AVX-512 F and FMA present; `a` / `a1` hold `R` rows of `kc` values as described, `b0` /
/// `b1` two `kc x 16` panels, `c` an `R x 32` block with row stride `ldc`, `bias` null or 32
/// values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const HALF: bool>(
    kc: usize,
    a: *const f32,
    a1: *const f32,
    ak: usize,
    b0: *const u8,
    b1: *const u8,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        for kk in 0..kc {
            let (w0, w1) = if HALF {
                // 16 halves (32 bytes) widened exactly: the f32 panels' values
                (
                    _mm512_cvtph_ps(_mm256_loadu_si256(b0.add(kk * NR * 2) as *const __m256i)),
                    _mm512_cvtph_ps(_mm256_loadu_si256(b1.add(kk * NR * 2) as *const __m256i)),
                )
            } else {
                (
                    _mm512_loadu_ps(b0.add(kk * NR * 4) as *const f32),
                    _mm512_loadu_ps(b1.add(kk * NR * 4) as *const f32),
                )
            };
            for r in 0..R {
                let src = if r < MR {
                    a.add(kk * ak + r)
                } else {
                    a1.add(kk * ak + r - MR)
                };
                let av = _mm512_set1_ps(*src);
                acc0[r] = _mm512_fmadd_ps(av, w0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(av, w1, acc1[r]);
            }
        }
        if bias.is_null() {
            for r in 0..R {
                let cr = c.add(r * ldc);
                _mm512_storeu_ps(cr, _mm512_add_ps(_mm512_loadu_ps(cr), acc0[r]));
                _mm512_storeu_ps(
                    cr.add(NR),
                    _mm512_add_ps(_mm512_loadu_ps(cr.add(NR)), acc1[r]),
                );
            }
        } else {
            let bb0 = _mm512_loadu_ps(bias);
            let bb1 = _mm512_loadu_ps(bias.add(NR));
            for r in 0..R {
                let cr = c.add(r * ldc);
                _mm512_storeu_ps(cr, _mm512_add_ps(bb0, acc0[r]));
                _mm512_storeu_ps(cr.add(NR), _mm512_add_ps(bb1, acc1[r]));
            }
        }
    }
}

/// [`tile`] for `rows` (1 to 12) rows (see there for `a`, `a1`, `ak`), on f32 panels or, when
/// `HALF`, f16 ones (the same bits for the same values, half the bytes read).
///
/// # Safety
/// AVX-512 F and FMA present; `a` / `a1` hold `rows` rows of `kc` values as [`tile`] reads
/// them, `b0` / `b1` the addresses of two panels of `kc` x 16 values (f16 when `HALF`, else
/// f32), `c` a `rows` x 32 block with row stride `ldc`, `bias` null or 32 values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tile_rows<const HALF: bool>(
    rows: usize,
    kc: usize,
    a: *const f32,
    a1: *const f32,
    ak: usize,
    b0: *const u8,
    b1: *const u8,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        match rows {
            12 => tile::<12, HALF>(kc, a, a1, ak, b0, b1, c, ldc, bias),
            11 => tile::<11, HALF>(kc, a, a1, ak, b0, b1, c, ldc, bias),
            10 => tile::<10, HALF>(kc, a, a1, ak, b0, b1, c, ldc, bias),
            9 => tile::<9, HALF>(kc, a, a1, ak, b0, b1, c, ldc, bias),
            8 => tile::<8, HALF>(kc, a, a1, ak, b0, b1, c, ldc, bias),
            7 => tile::<7, HALF>(kc, a, a1, ak, b0, b1, c, ldc, bias),
            6 => tile::<6, HALF>(kc, a, a1, ak, b0, b1, c, ldc, bias),
            5 => tile::<5, HALF>(kc, a, a1, ak, b0, b1, c, ldc, bias),
            4 => tile::<4, HALF>(kc, a, a1, ak, b0, b1, c, ldc, bias),
            3 => tile::<3, HALF>(kc, a, a1, ak, b0, b1, c, ldc, bias),
            2 => tile::<2, HALF>(kc, a, a1, ak, b0, b1, c, ldc, bias),
            _ => tile::<1, HALF>(kc, a, a1, ak, b0, b1, c, ldc, bias),
        }
    }
}

/// One `R x 32` int8 tile over all of K (see [`int8`](super::int8)): `t.a` holds the
/// rows' codes as 6-row micro-panels (the second `t.groups * MR * 4` bytes further), `t.b`
/// the first of two weight panels (the second `t.groups * 64` bytes further), and the
/// per-column pointers cover 32 columns. `vpdpbusd` adds the four u8 x i8 products of a
/// group into i32 exactly, as `vpmaddubsw` + `vpmaddwd` do on AVX2 (which cannot saturate on
/// 7-bit codes), and the last step is the AVX2 tile's, lane for lane: the same result bits.
///
/// # Safety
/// AVX-512 F, BW and VNNI and FMA present; `t` describes an `R x 32` tile as described
/// above (two micro-panels of codes, two weight panels, 32 columns behind every column
/// pointer, `R` rows behind every row pointer), `t.c` an `R x 32` block with row stride
/// `t.ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
#[inline]
unsafe fn qtile<const R: usize>(t: &QTile) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let mut acc0 = [_mm512_setzero_si512(); R];
        let mut acc1 = [_mm512_setzero_si512(); R];
        let a0 = t.a as *const i32;
        let a1 = a0.add(t.groups * MR);
        let b0 = t.b;
        let b1 = t.b.add(t.groups * 64);
        for g in 0..t.groups {
            let w0 = _mm512_loadu_si512(b0.add(g * 64) as *const _);
            let w1 = _mm512_loadu_si512(b1.add(g * 64) as *const _);
            for r in 0..R {
                let src = if r < MR {
                    a0.add(g * MR + r)
                } else {
                    a1.add(g * MR + r - MR)
                };
                let av = _mm512_set1_epi32(src.read_unaligned());
                acc0[r] = _mm512_dpbusd_epi32(acc0[r], av, w0);
                acc1[r] = _mm512_dpbusd_epi32(acc1[r], av, w1);
            }
        }
        for (h, acc) in [acc0, acc1].iter().enumerate() {
            let col = h * NR;
            let ws = _mm512_loadu_ps(t.col_scale.add(col));
            let cs = _mm512_loadu_si512(t.col_sum.add(col) as *const _);
            let bb = _mm512_loadu_ps(t.bias.add(col));
            for (r, &acc) in acc.iter().enumerate() {
                let z = _mm512_set1_epi32(*t.row_zero.add(r));
                let sa = _mm512_set1_ps(*t.row_scale.add(r));
                let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, _mm512_mullo_epi32(z, cs)));
                let mut g = _mm512_mul_ps(v, sa);
                for o in r * t.outliers..(r + 1) * t.outliers {
                    let xv = _mm512_set1_ps(*t.oval.add(o));
                    let wp = t.wt.add(*t.oidx.add(o) as usize * t.ldc + col) as *const __m128i;
                    let w = _mm512_cvtepi8_epi32(_mm_loadu_si128(wp));
                    g = _mm512_fmadd_ps(xv, _mm512_cvtepi32_ps(w), g);
                }
                _mm512_storeu_ps(t.c.add(r * t.ldc + col), _mm512_fmadd_ps(g, ws, bb));
            }
        }
    }
}

/// [`qtile`] for `rows` (1 to 12) rows.
///
/// # Safety
/// AVX-512 F, BW and VNNI and FMA present; `t` describes a `rows x 32` tile whose buffers
/// hold what [`qtile`] reads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
pub(super) unsafe fn qtile_rows(rows: usize, t: &QTile) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        match rows {
            12 => qtile::<12>(t),
            11 => qtile::<11>(t),
            10 => qtile::<10>(t),
            9 => qtile::<9>(t),
            8 => qtile::<8>(t),
            7 => qtile::<7>(t),
            6 => qtile::<6>(t),
            5 => qtile::<5>(t),
            4 => qtile::<4>(t),
            3 => qtile::<3>(t),
            2 => qtile::<2>(t),
            _ => qtile::<1>(t),
        }
    }
}

/// AVX2's `take_outliers` 16 lanes a step on AVX-512 (the same buckets' bound from 32 buckets
/// in two registers, the same candidates in the same order): the same outliers and range;
/// `None` (nothing written) for rows it does not take: more than 8 outliers, fewer than 16
/// or more than `MAX_CHUNKS x 8` values (AVX2's search takes those).
///
/// # Safety
/// AVX-512 F and BW, AVX2 and FMA present; `idx` and `val` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
pub(super) unsafe fn take_outliers(
    row: &[f32],
    idx: &mut [u32],
    val: &mut [f32],
) -> Option<(f32, f32)> {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let (k, t) = (row.len(), idx.len());
        if t > 8 || !(16..=MAX_CHUNKS * 8).contains(&k) {
            return None;
        }
        let k16 = k / 16 * 16;
        let p = row.as_ptr();
        let ld = |kk: usize| _mm512_abs_ps(_mm512_loadu_ps(p.add(kk)));
        let (mut m0, mut m1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut kk = 0;
        while kk + 32 <= k16 {
            m0 = _mm512_max_ps(m0, ld(kk));
            m1 = _mm512_max_ps(m1, ld(kk + 16));
            kk += 32;
        }
        if kk < k16 {
            m0 = _mm512_max_ps(m0, ld(kk));
        }
        let mut buckets = [0f32; 32];
        _mm512_storeu_ps(buckets.as_mut_ptr(), m0);
        _mm512_storeu_ps(buckets.as_mut_ptr().add(16), m1);
        // the t-th largest bucket maximum (see AVX2's `take_outliers`), two mask compares per bucket
        let mut thr = f32::INFINITY;
        for &v in &buckets {
            let vv = _mm512_set1_ps(v);
            let above = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(m0, vv).count_ones()
                + _mm512_cmp_ps_mask::<_CMP_GT_OQ>(m1, vv).count_ones();
            if (above as usize) < t {
                thr = thr.min(v);
            }
        }
        let tv = _mm512_set1_ps(thr);
        let mut top = Top::new(idx, val);
        let (mut lo, mut hi) = (0f32, 0f32);
        let mut out = |v: Option<f32>| {
            if let Some(v) = v {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        };
        let (mut vlo, mut vhi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut flagged = [0u16; MAX_CHUNKS / 2];
        let chunks = k16 / 16;
        for (ch, f) in flagged.iter_mut().enumerate().take(chunks) {
            let v = _mm512_loadu_ps(p.add(ch * 16));
            let big = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_abs_ps(v), tv);
            let small = _mm512_maskz_mov_ps(!big, v);
            vlo = _mm512_min_ps(vlo, small);
            vhi = _mm512_max_ps(vhi, small);
            *f = big;
        }
        for (ch, &f) in flagged.iter().enumerate().take(chunks) {
            let mut bits = f as u32;
            while bits != 0 {
                let i = ch * 16 + bits.trailing_zeros() as usize;
                out(top.insert(i, row[i]));
                bits &= bits - 1;
            }
        }
        for (i, &v) in row.iter().enumerate().skip(k16) {
            out(if v.abs() >= thr {
                top.insert(i, v)
            } else {
                Some(v)
            });
        }
        let mut l = [0f32; 16];
        let mut h = [0f32; 16];
        _mm512_storeu_ps(l.as_mut_ptr(), vlo);
        _mm512_storeu_ps(h.as_mut_ptr(), vhi);
        let lo = l.iter().fold(lo, |a, &b| a.min(b));
        let hi = h.iter().fold(hi, |a, &b| a.max(b));
        Some((lo, hi))
    }
}

/// Writes the codes of `row` under `q` row-major at `dst` (inputs `k..kpa` get code 0): the
/// AMX path's layout, the same codes as AVX2's `write_codes` (16 values a step).
///
/// # Safety
/// AVX-512 F and BW present; `dst` holds `kpa >= row.len()` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn write_codes_row_major(row: &[f32], kpa: usize, dst: *mut u8, q: RowQuant) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let k = row.len();
        let k16 = k / 16 * 16;
        let p = row.as_ptr();
        let inv = _mm512_set1_ps(1.0 / q.scale);
        let zero = _mm512_set1_epi32(q.zero);
        let (min, max) = (_mm512_setzero_si512(), _mm512_set1_epi32(QMAX_A));
        let mut kk = 0;
        while kk < k16 {
            let v = _mm512_mul_ps(_mm512_loadu_ps(p.add(kk)), inv);
            let c = _mm512_add_epi32(_mm512_cvtps_epi32(v), zero);
            let c = _mm512_min_epi32(_mm512_max_epi32(c, min), max);
            _mm_storeu_si128(dst.add(kk) as *mut __m128i, _mm512_cvtepi32_epi8(c));
            kk += 16;
        }
        for (kk, &v) in row.iter().enumerate().skip(k16) {
            *dst.add(kk) = q.code(v);
        }
        std::ptr::write_bytes(dst.add(k), 0, kpa - k);
    }
}

/// One `R x (W * 16)` bf16 tile over `groups` pairs of inputs (`vdpbf16ps`, f32 sums): row
/// `r`'s pair `g` (inputs `2g`, `2g + 1` as bf16, the first in the low half) is the u32
/// `a[r * lda + g]`; the tile's `W` weight panels are `[g][16]` u32 pairs, `ldb` u32 apart,
/// from `b`; `c = bias + a b` when `bias` is set, else `c += a b` (row stride `ldc`). Each
/// output is one chain of `vdpbf16ps` over the pairs in order, so its bits do not depend on
/// the rows beside it.
///
/// # Safety
/// AVX-512 F and AVX512-BF16 present; `a` holds `R` rows of `groups` u32 at stride `lda`,
/// `b` `W` panels of `groups x 16` u32 at stride `ldb`, `c` an `R x (W * 16)` block with row
/// stride `ldc`, `bias` null or `W * 16` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn btile<const R: usize, const W: usize>(
    groups: usize,
    a: *const u32,
    lda: usize,
    b: *const u32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below; `__m512i` and
    // `__m512bh` are both 64 bytes of plain lanes.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); W]; R];
        for g in 0..groups {
            let w: [__m512bh; W] = std::array::from_fn(|h| {
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    b.add(h * ldb + g * NR) as *const _,
                ))
            });
            for (r, acc) in acc.iter_mut().enumerate() {
                let pair = a.add(r * lda + g).read() as i32;
                let av = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair));
                for (acc, &w) in acc.iter_mut().zip(&w) {
                    *acc = _mm512_dpbf16_ps(*acc, av, w);
                }
            }
        }
        let bb: [Option<__m512>; W] =
            std::array::from_fn(|h| (!bias.is_null()).then(|| _mm512_loadu_ps(bias.add(h * NR))));
        for (r, acc) in acc.iter().enumerate() {
            for (h, (&v, bb)) in acc.iter().zip(&bb).enumerate() {
                let cr = c.add(r * ldc + h * NR);
                let add = match bb {
                    Some(bb) => *bb,
                    None => _mm512_loadu_ps(cr),
                };
                _mm512_storeu_ps(cr, _mm512_add_ps(add, v));
            }
        }
    }
}

/// [`btile`] for `rows` (1 to 12) rows on two panels (`two`) or one.
///
/// # Safety
/// As [`btile`]'s with `R = rows` and `W` = 2 when `two`, else 1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn btile_rows(
    rows: usize,
    two: bool,
    groups: usize,
    a: *const u32,
    lda: usize,
    b: *const u32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
) {
    macro_rules! by_rows {
        ($w:literal) => {
            match rows {
                12 => btile::<12, $w>(groups, a, lda, b, ldb, c, ldc, bias),
                11 => btile::<11, $w>(groups, a, lda, b, ldb, c, ldc, bias),
                10 => btile::<10, $w>(groups, a, lda, b, ldb, c, ldc, bias),
                9 => btile::<9, $w>(groups, a, lda, b, ldb, c, ldc, bias),
                8 => btile::<8, $w>(groups, a, lda, b, ldb, c, ldc, bias),
                7 => btile::<7, $w>(groups, a, lda, b, ldb, c, ldc, bias),
                6 => btile::<6, $w>(groups, a, lda, b, ldb, c, ldc, bias),
                5 => btile::<5, $w>(groups, a, lda, b, ldb, c, ldc, bias),
                4 => btile::<4, $w>(groups, a, lda, b, ldb, c, ldc, bias),
                3 => btile::<3, $w>(groups, a, lda, b, ldb, c, ldc, bias),
                2 => btile::<2, $w>(groups, a, lda, b, ldb, c, ldc, bias),
                _ => btile::<1, $w>(groups, a, lda, b, ldb, c, ldc, bias),
            }
        };
    }
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        if two {
            by_rows!(2)
        } else {
            by_rows!(1)
        }
    }
}

/// Converts `rows` rows of `kc` f32 inputs (`x`, row stride `ldx`) to bf16 pairs, rounded to
/// nearest even by `vcvtne2ps2bf16`: row `r`'s pair `g` (inputs `2g`, `2g + 1`, the first in
/// the low half; the high half 0 past `kc`) goes to `dst[r * ldd + g]`, 32 inputs a step.
///
/// # Safety
/// AVX-512 F, BW and AVX512-BF16 present; `x` holds `rows` rows of `kc` values at stride
/// `ldx`, `dst` `rows` rows of `kc.div_ceil(2)` u32 at stride `ldd`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn bf16_rows(
    rows: usize,
    kc: usize,
    x: *const f32,
    ldx: usize,
    dst: *mut u32,
    ldd: usize,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths); a partial step's loads and store are masked to the row's values and
    // pairs; `__m512bh` and `__m512i` are both 64 bytes of plain lanes.
    unsafe {
        let mask = |n: usize| -> u16 { (((1u32 << n.min(16)) - 1) & 0xffff) as u16 };
        for r in 0..rows {
            let src = x.add(r * ldx);
            let out = dst.add(r * ldd) as *mut i32;
            let mut kk = 0;
            while kk < kc {
                let left = kc - kk;
                let (lo, hi) = if left >= 32 {
                    (
                        _mm512_loadu_ps(src.add(kk)),
                        _mm512_loadu_ps(src.add(kk + 16)),
                    )
                } else {
                    (
                        _mm512_maskz_loadu_ps(mask(left), src.add(kk)),
                        _mm512_maskz_loadu_ps(mask(left.saturating_sub(16)), src.add(kk + 16)),
                    )
                };
                let pairs = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_mask_storeu_epi32(out.add(kk / 2), mask(left.div_ceil(2)), pairs);
                kk += 32;
            }
        }
    }
}

/// `erf(x / sqrt 2)` on 16 lanes: AVX2's rational approximation ([`ERF_P`], [`ERF_Q`]) on 16 lanes
/// (the reciprocal estimate is `vrcp14ps`, refined by one Newton step: not the AVX2 bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[inline]
fn erf_scaled16(x: __m512) -> __m512 {
    let z = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let z = _mm512_min_ps(_mm512_max_ps(z, _mm512_set1_ps(-4.0)), _mm512_set1_ps(4.0));
    let z2 = _mm512_mul_ps(z, z);
    let mut p = _mm512_set1_ps(ERF_P[0]);
    for c in &ERF_P[1..] {
        p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(*c));
    }
    p = _mm512_mul_ps(p, z);
    let mut q = _mm512_set1_ps(ERF_Q[0]);
    for c in &ERF_Q[1..] {
        q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(*c));
    }
    let r0 = _mm512_rcp14_ps(q);
    let r = _mm512_mul_ps(r0, _mm512_fnmadd_ps(q, r0, _mm512_set1_ps(2.0)));
    _mm512_mul_ps(p, r)
}

/// `exp(x)` on 16 lanes (AVX2's Cephes polynomial [`EXP_P`] on 16 lanes; inputs below -87 give ~0).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[inline]
fn exp16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(-87.0)),
        _mm512_set1_ps(88.0),
    );
    let fx = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693_359_4), x);
    let x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.121_944_4e-4), x);
    let mut y = _mm512_set1_ps(EXP_P[0]);
    for c in &EXP_P[1..] {
        y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(*c));
    }
    y = _mm512_fmadd_ps(
        y,
        _mm512_mul_ps(x, x),
        _mm512_add_ps(x, _mm512_set1_ps(1.0)),
    );
    let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(fx),
        _mm512_set1_epi32(127),
    ));
    _mm512_mul_ps(y, _mm512_castsi512_ps(e))
}

/// GELU (erf form) of `u` into `g` and its derivative `Phi(u) + u phi(u)` into `dg`, 16 lanes
/// at a time, the tail masked.
///
/// # Safety
/// AVX-512 F and FMA present; `g` and `dg` as long as `u`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
pub(super) unsafe fn gelu_grad_slice(u: &[f32], g: &mut [f32], dg: &mut [f32]) {
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn both(x: __m512) -> (__m512, __m512) {
        let erf = erf_scaled16(x);
        let half_x = _mm512_mul_ps(x, _mm512_set1_ps(0.5));
        let g = _mm512_fmadd_ps(half_x, erf, half_x);
        let cdf = _mm512_fmadd_ps(_mm512_set1_ps(0.5), erf, _mm512_set1_ps(0.5));
        let pdf = _mm512_mul_ps(
            exp16(_mm512_mul_ps(half_x, _mm512_sub_ps(_mm512_setzero_ps(), x))),
            _mm512_set1_ps(0.398_942_3),
        );
        (g, _mm512_fmadd_ps(x, pdf, cdf))
    }
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features and
    // lengths); the full vectors lie inside the three slices, the tail is masked to them.
    unsafe {
        let n = u.len() / 16 * 16;
        for i in (0..n).step_by(16) {
            let (a, b) = both(_mm512_loadu_ps(u.as_ptr().add(i)));
            _mm512_storeu_ps(g.as_mut_ptr().add(i), a);
            _mm512_storeu_ps(dg.as_mut_ptr().add(i), b);
        }
        let rest = u.len() - n;
        if rest > 0 {
            let k: __mmask16 = (1u32 << rest) as u16 - 1;
            let (a, b) = both(_mm512_maskz_loadu_ps(k, u.as_ptr().add(n)));
            _mm512_mask_storeu_ps(g.as_mut_ptr().add(n), k, a);
            _mm512_mask_storeu_ps(dg.as_mut_ptr().add(n), k, b);
        }
    }
}
