//! AMX tiles for the int8 linear layers (Intel Sapphire Rapids and later).
//!
//! AMX's `tdpbusd` multiplies a 16 x 64 tile of u8 codes by a 16 x 64 tile of i8 weights
//! held in 4-byte groups (`K/4` rows of 16 columns x 4 inputs) and adds each group's four
//! products into a 16 x 16 tile of i32: exactly the integers of AVX-512 VNNI's `vpdpbusd` and
//! of AVX2's `vpmaddubsw` pair (see [`int8`](super::int8)), so the integer sums, and
//! with the same last step the output bits, are the same on all three.
//!
//! `QLinear`'s 16-column panels are already the B tiles' layout (group `g` of a panel is
//! 64 bytes: column `c`'s four weights at `4c`), so a B tile is 1 KiB of a panel read with a
//! 64-byte stride: nothing is repacked. Activations are quantized row after row (codes
//! row-major, K padded with code 0 to a multiple of 64: a zero code adds nothing whatever the
//! weight it meets, so a last B tile may run into the next panel). One block is 32 x 32
//! outputs: 2 A tiles, 2 B tiles and 4 accumulator tiles per 64 inputs, stored to a buffer at
//! the end of K; the last step (zero point, scales, outliers in f32, bias) is the AVX-512
//! VNNI tile's, op for op, then the f32 kernels' epilogue (GELU, residual).
//!
//! This file holds the AMX instructions only (tile configuration, the blocks of sums, their
//! last step); the driver that quantizes rows and walks the blocks is in
//! [`int8`](super::int8), the choice of tiles in [`cpu`](super::cpu). It imports only `cpu`
//! and [`common`](super::common).

#[cfg(target_arch = "x86_64")]
use std::arch::{asm, x86_64::*};

use super::common::QTile;
use super::cpu::NR;

/// The tile configuration: palette 1, tiles 0..8 all 16 rows x 64 bytes (tiles 0-3 the
/// sums, 4-5 A, 6-7 B).
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn all_16x64() -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes());
            c[48 + t] = 16;
        }
        TileConfig(c)
    }
}

/// Loads the tile configuration of [`TileConfig::all_16x64`] on this thread.
///
/// # Safety
/// AMX-TILE present and the tile state granted (`cpu::amx_ready` returned `Ok`); the caller
/// calls [`release_tiles`] when done.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) unsafe fn load_tiles() {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let cfg = TileConfig::all_16x64();
        asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
    }
}

/// Releases the tile state loaded by [`load_tiles`].
///
/// # Safety
/// AMX-TILE present.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) unsafe fn release_tiles() {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        asm!("tilerelease", options(nostack, nomem));
    }
}

/// The i32 sums of one block: rows `0..16` (and `16..32` when `TWO_R`) of the codes at `a`
/// (row stride `lda`) times the panel at `b` (and the next one, `ldb` bytes further, when
/// `TWO_C`) over `steps` x 64 inputs, stored to `acc` (32 x 32, row stride 32).
///
/// # Safety
/// The tile configuration of [`TileConfig::all_16x64`] is loaded on this thread; `a` holds
/// 16 (32 when `TWO_R`) rows of `steps * 64` codes at stride `lda`; `b` (and `b + ldb`) can
/// be read for `steps * 1024` bytes; `acc` holds 32 x 32 i32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn block<const TWO_R: bool, const TWO_C: bool>(
    a: *const u8,
    lda: usize,
    b: *const i8,
    ldb: usize,
    steps: usize,
    acc: *mut i32,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        let a1 = a.add(16 * lda);
        let b1 = b.add(ldb);
        for st in 0..steps {
            asm!("tileloadd tmm4, [{p} + {s}]", p = in(reg) a.add(st * 64), s = in(reg) lda, options(nostack, readonly));
            asm!("tileloadd tmm6, [{p} + {s}]", p = in(reg) b.add(st * 1024), s = in(reg) 64usize, options(nostack, readonly));
            asm!("tdpbusd tmm0, tmm4, tmm6", options(nostack, nomem));
            if TWO_C {
                asm!("tileloadd tmm7, [{p} + {s}]", p = in(reg) b1.add(st * 1024), s = in(reg) 64usize, options(nostack, readonly));
                asm!("tdpbusd tmm1, tmm4, tmm7", options(nostack, nomem));
            }
            if TWO_R {
                asm!("tileloadd tmm5, [{p} + {s}]", p = in(reg) a1.add(st * 64), s = in(reg) lda, options(nostack, readonly));
                asm!("tdpbusd tmm2, tmm5, tmm6", options(nostack, nomem));
                if TWO_C {
                    asm!("tdpbusd tmm3, tmm5, tmm7", options(nostack, nomem));
                }
            }
        }
        let s = 128usize;
        asm!("tilestored [{p} + {s}], tmm0", p = in(reg) acc, s = in(reg) s, options(nostack));
        if TWO_C {
            asm!("tilestored [{p} + {s}], tmm1", p = in(reg) acc.add(16), s = in(reg) s, options(nostack));
        }
        if TWO_R {
            asm!("tilestored [{p} + {s}], tmm2", p = in(reg) acc.add(16 * 32), s = in(reg) s, options(nostack));
            if TWO_C {
                asm!("tilestored [{p} + {s}], tmm3", p = in(reg) acc.add(16 * 32 + 16), s = in(reg) s, options(nostack));
            }
        }
    }
}

/// The last step of `H` x 16 columns of the first `rows` rows of a block: the AVX-512 VNNI
/// tile's, op for op on every output (zero point, row scale, outliers in f32 in the same
/// order, column scale, bias), from the sums at `acc` (row stride 32) to `t.c` (row stride
/// `t.ldc`). `t`'s row pointers start at the block's first row, its column pointers at its
/// first column; `t.a`, `t.b` and `t.groups` are not read. Both halves of a row share each
/// outlier's broadcast and address.
///
/// # Safety
/// AVX-512 F/BW and FMA present; `t`'s row pointers hold `rows` rows (and `rows x
/// t.outliers` outliers), its column pointers `H x 16` columns, every outlier index is a row
/// of the transposed weights at `t.wt` (row stride `t.ldc`, `H x 16` columns readable), `acc`
/// holds `rows x 32` sums, `t.c` is a `rows x (H * 16)` block of the output.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,fma")]
#[inline]
pub(super) unsafe fn last_step<const H: usize>(t: &QTile, rows: usize, acc: *const i32) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let (n, no) = (t.ldc, t.outliers);
        let mut ws = [_mm512_setzero_ps(); H];
        let mut cs = [_mm512_setzero_si512(); H];
        let mut bb = [_mm512_setzero_ps(); H];
        for h in 0..H {
            ws[h] = _mm512_loadu_ps(t.col_scale.add(h * NR));
            cs[h] = _mm512_loadu_si512(t.col_sum.add(h * NR) as *const _);
            bb[h] = _mm512_loadu_ps(t.bias.add(h * NR));
        }
        let wt = t.wt;
        for i in 0..rows {
            let z = _mm512_set1_epi32(*t.row_zero.add(i));
            let sa = _mm512_set1_ps(*t.row_scale.add(i));
            let mut g = [_mm512_setzero_ps(); H];
            for h in 0..H {
                let sum = _mm512_loadu_si512(acc.add(i * 32 + h * NR) as *const _);
                let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(sum, _mm512_mullo_epi32(z, cs[h])));
                g[h] = _mm512_mul_ps(v, sa);
            }
            for o in i * no..(i + 1) * no {
                let xv = _mm512_set1_ps(*t.oval.add(o));
                let wp = wt.add(*t.oidx.add(o) as usize * n);
                for (h, gh) in g.iter_mut().enumerate() {
                    let wv =
                        _mm512_cvtepi8_epi32(_mm_loadu_si128(wp.add(h * NR) as *const __m128i));
                    *gh = _mm512_fmadd_ps(xv, _mm512_cvtepi32_ps(wv), *gh);
                }
            }
            for h in 0..H {
                _mm512_storeu_ps(t.c.add(i * n + h * NR), _mm512_fmadd_ps(g[h], ws[h], bb[h]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tile_configuration_is_palette_1_with_eight_16x64_tiles() {
        let c = TileConfig::all_16x64();
        assert_eq!(c.0[0], 1);
        assert_eq!(c.0.as_ptr() as usize % 64, 0);
        for t in 0..8 {
            assert_eq!(u16::from_le_bytes([c.0[16 + 2 * t], c.0[17 + 2 * t]]), 64);
            assert_eq!(c.0[48 + t], 16);
        }
        assert!(c.0[32..48].iter().all(|&b| b == 0) && c.0[56..].iter().all(|&b| b == 0));
    }
}
