//! The AVX-512 tile of the f32 linear layers, for CPUs that have it (AMD Zen 4/5, Intel
//! Skylake-SP and later): 12 x 32 output tiles, twice the rows and twice the width of the AVX2
//! 6 x 16 tile, on the same packed weights and the same packed activations.
//!
//! A 12 x 32 tile reads two of [`packed`](super::packed)' 6-row activation micro-panels and
//! two of its 16-column weight panels; per input it makes 2 weight loads, 12 broadcasts and
//! 24 FMAs into 24 of the 32 zmm registers. Nothing is repacked, so the choice between AVX-512
//! and AVX2 is made per call at run time ([`use_avx512`]), and both give the same sums in the
//! same order (every output is one FMA chain over K, as in the AVX2 tile).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::packed::{MR, NR};
use super::int8::QTile;

/// Whether the f32 (and int8) kernels use AVX-512 on this machine: the CPU has AVX-512 F,
/// BW and VNNI, and `VOCMINE_NO_AVX512` is unset (set it to measure or test the AVX2 path
/// on such a machine). Read once per process.
pub fn use_avx512() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| has_avx512() && std::env::var_os("VOCMINE_NO_AVX512").is_none())
}

/// Whether the CPU has AVX-512 F, BW and VNNI (whatever the environment says).
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One `R x 32` tile over `kc` inputs. Row `r < 6`'s `kk`-th value is `a[kk * ak + r]`, row
/// `r >= 6`'s is `a1[kk * ak + r - 6]` (packed micro-panels: `ak = MR`, `a1 = a + MR * kc`;
/// attention: any `ak`, `a1 = a + MR`); `b0` / `b1` are two 16-column panels `[kk][16]`;
/// `c = bias + a b` when `bias` is set, else `c += a b` (row stride `ldc`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(
    kc: usize,
    a: *const f32,
    a1: *const f32,
    ak: usize,
    b0: *const f32,
    b1: *const f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
) {
    let mut acc0 = [_mm512_setzero_ps(); R];
    let mut acc1 = [_mm512_setzero_ps(); R];
    for kk in 0..kc {
        let w0 = _mm512_loadu_ps(b0.add(kk * NR));
        let w1 = _mm512_loadu_ps(b1.add(kk * NR));
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

/// [`tile`] for `rows` (1 to 12) rows (see there for `a`, `a1`, `ak`).
///
/// # Safety
/// AVX-512 F and FMA present; `a` / `a1` hold `rows` rows of `kc` values as [`tile`] reads
/// them, `b0` / `b1` two panels of `kc` x 16, `c` a `rows` x 32 block with row stride `ldc`,
/// `bias` null or 32 values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tile_rows(
    rows: usize,
    kc: usize,
    a: *const f32,
    a1: *const f32,
    ak: usize,
    b0: *const f32,
    b1: *const f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
) {
    match rows {
        12 => tile::<12>(kc, a, a1, ak, b0, b1, c, ldc, bias),
        11 => tile::<11>(kc, a, a1, ak, b0, b1, c, ldc, bias),
        10 => tile::<10>(kc, a, a1, ak, b0, b1, c, ldc, bias),
        9 => tile::<9>(kc, a, a1, ak, b0, b1, c, ldc, bias),
        8 => tile::<8>(kc, a, a1, ak, b0, b1, c, ldc, bias),
        7 => tile::<7>(kc, a, a1, ak, b0, b1, c, ldc, bias),
        6 => tile::<6>(kc, a, a1, ak, b0, b1, c, ldc, bias),
        5 => tile::<5>(kc, a, a1, ak, b0, b1, c, ldc, bias),
        4 => tile::<4>(kc, a, a1, ak, b0, b1, c, ldc, bias),
        3 => tile::<3>(kc, a, a1, ak, b0, b1, c, ldc, bias),
        2 => tile::<2>(kc, a, a1, ak, b0, b1, c, ldc, bias),
        _ => tile::<1>(kc, a, a1, ak, b0, b1, c, ldc, bias),
    }
}

/// One `R x 32` int8 tile over all of K (see [`int8`](super::int8)): `t.a` holds the
/// rows' codes as 6-row micro-panels (the second `t.groups * MR * 4` bytes further), `t.b`
/// the first of two weight panels (the second `t.groups * 64` bytes further), and the
/// per-column pointers cover 32 columns. `vpdpbusd` adds the four u8 x i8 products of a
/// group into i32 exactly, as `vpmaddubsw` + `vpmaddwd` do on AVX2 (which cannot saturate on
/// 7-bit codes), and the last step is the AVX2 tile's, lane for lane: the same result bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
#[inline]
unsafe fn qtile<const R: usize>(t: &QTile) {
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

/// [`qtile`] for `rows` (1 to 12) rows.
///
/// # Safety
/// AVX-512 F, BW and VNNI and FMA present; `t` describes a `rows x 32` tile whose buffers
/// hold what [`qtile`] reads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
pub(super) unsafe fn qtile_rows(rows: usize, t: &QTile) {
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

#[cfg(test)]
mod tests {
    use super::super::amx::Tiles;
    use super::super::packed::tests::rnd;
    use super::super::packed::{
        attention_on, available, linear_on, AttnScratch, Epilogue, PackedLinear,
    };
    use super::super::int8::{qlinear_on, QLinear};
    use super::*;

    /// Runs `run(epilogue, wide, out)` narrow and wide with every epilogue (`res` the residual)
    /// and asserts the same bits in all `len` outputs.
    fn same_bits(what: &str, len: usize, res: &[f32], run: impl Fn(Epilogue, bool, &mut [f32])) {
        for ep in [
            Epilogue::Bias,
            Epilogue::BiasGelu,
            Epilogue::BiasResidual(res),
        ] {
            let mut narrow = vec![f32::NAN; len];
            let mut wide = vec![f32::NAN; len];
            run(ep, false, &mut narrow);
            run(ep, true, &mut wide);
            for (idx, (a, b)) in narrow.iter().zip(&wide).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{what} [{idx}]: {a} vs {b}");
            }
        }
    }

    #[test]
    fn avx512_tiles_give_the_avx2_tiles_sums_bit_for_bit() {
        if !available() || !has_avx512() {
            eprintln!("SKIP: no AVX-512 on this CPU (the AVX2 tiles run alone)");
            return;
        }
        // partial 12-row and 6-row tiles, K blocks, an odd panel count, the encoder's shapes
        for &(m, k, n) in &[
            (13, 40, 32),
            (101, 384, 48),
            (7, 700, 16),
            (200, 1536, 64),
            (97, 384, 1152),
        ] {
            let x = rnd(m * k, 11);
            let w = rnd(n * k, 12);
            let b = rnd(n, 13);
            let res = rnd(m * n, 14);
            let pl = PackedLinear::pack(&w, n, k, b);
            let what = format!("m{m} k{k} n{n}");
            same_bits(&what, m * n, &res, |ep, wide, out| {
                linear_on(&x, m, &pl, out, ep, wide)
            });
        }
    }

    #[test]
    fn avx512_int8_tiles_give_the_avx2_tiles_results_bit_for_bit() {
        if !available() || !has_avx512() {
            eprintln!("SKIP: no AVX-512 VNNI on this CPU (the AVX2 tiles run alone)");
            return;
        }
        // K not a multiple of 4 or 8, partial tiles, an odd panel count, with and without
        // outliers, the encoder's shapes
        for &(m, k, n, outliers) in &[
            (13, 40, 32, 8),
            (101, 384, 48, 8),
            (7, 701, 16, 0),
            (200, 1536, 64, 8),
            (97, 384, 1152, 3),
        ] {
            let x = rnd(m * k, 21);
            let w = rnd(n * k, 22);
            let b = rnd(n, 23);
            let res = rnd(m * n, 24);
            let ql = QLinear::quantize(&w, n, k, b, outliers);
            let what = format!("m{m} k{k} n{n} outliers {outliers}");
            same_bits(&what, m * n, &res, |ep, wide, out| {
                let tiles = if wide { Tiles::Vnni } else { Tiles::Avx2 };
                qlinear_on(&x, m, &ql, out, ep, tiles)
            });
        }
    }

    #[test]
    fn avx512_attention_gives_the_avx2_attention_bit_for_bit() {
        if !available() || !has_avx512() {
            eprintln!("SKIP: no AVX-512 on this CPU (the AVX2 tiles run alone)");
            return;
        }
        // e5-small's heads (12 x 32); lengths with odd and even query panels, partial tiles
        let (hidden, heads) = (384, 12);
        let mut s = AttnScratch::default();
        for len in [1usize, 5, 12, 17, 40, 128] {
            let qkv: Vec<f32> = rnd(len * 3 * hidden, 30 + len as u64)
                .iter()
                .map(|v| v * 4.0)
                .collect();
            let mut narrow = vec![f32::NAN; len * hidden];
            let mut wide = vec![f32::NAN; len * hidden];
            attention_on(&qkv, len, hidden, heads, &mut narrow, &mut s, false);
            attention_on(&qkv, len, hidden, heads, &mut wide, &mut s, true);
            for (idx, (a, b)) in narrow.iter().zip(&wide).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "len {len} [{idx}]: {a} vs {b}");
            }
        }
    }
}
