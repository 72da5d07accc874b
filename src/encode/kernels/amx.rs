//! AMX tiles for the int8 linear layers (Intel Sapphire Rapids and later), and the choice of
//! the int8 tiles a process runs ([`int8_tiles`]).
//!
//! AMX's `tdpbusd` multiplies a 16 x 64 tile of u8 codes by a 16 x 64 tile of i8 weights
//! held in 4-byte groups (`K/4` rows of 16 columns x 4 inputs) and adds each group's four
//! products into a 16 x 16 tile of i32: exactly the integers of AVX-512 VNNI's `vpdpbusd` and
//! of AVX2's `vpmaddubsw` pair (see [`int8`](super::int8)), so the integer sums, and
//! with the same last step the output bits, are the same on all three.
//!
//! [`QLinear`]'s 16-column panels are already the B tiles' layout (group `g` of a panel is
//! 64 bytes: column `c`'s four weights at `4c`), so a B tile is 1 KiB of a panel read with a
//! 64-byte stride: nothing is repacked. Activations are quantized row after row (codes
//! row-major, K padded with code 0 to a multiple of 64: a zero code adds nothing whatever the
//! weight it meets, so a last B tile may run into the next panel). One block is 32 x 32
//! outputs: 2 A tiles, 2 B tiles and 4 accumulator tiles per 64 inputs, stored to a buffer at
//! the end of K; the last step (zero point, scales, outliers in f32, bias) is the AVX-512
//! VNNI tile's, op for op, then the f32 kernels' epilogue (GELU, residual).
//!
//! Linux hands out the tile state on request only: [`amx_ready`] asks once per process
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); where the CPU lacks AMX-INT8 or
//! the kernel refuses, the int8 layers run on the VNNI (or AVX2) tiles, and a refusal on a CPU
//! that has AMX is said once on stderr. `VOCMINE_KERNELS=amx|vnni|avx2` forces a path (to
//! measure or test one on a machine that has all three).

#[cfg(target_arch = "x86_64")]
use std::arch::{asm, x86_64::*};
use std::sync::OnceLock;

use super::packed::{finish_tile, Epilogue, NR};
use super::avx512::{has_avx512, use_avx512};
use super::int8::{quantize_row_major, QLinear};

/// The int8 tiles a call runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tiles {
    /// AVX2 `vpmaddubsw` + `vpmaddwd` 6 x 16 tiles.
    Avx2,
    /// AVX-512 VNNI `vpdpbusd` 12 x 32 tiles.
    Vnni,
    /// AMX `tdpbusd` 32 x 32 blocks.
    Amx,
}

/// Bytes a weight buffer carries past its last panel, so that a B tile that runs past K
/// (into the zero codes' padding) stays inside it.
pub const B_SLACK: usize = 16 * 64;

/// Rows of quantized activations per block (a multiple of the 32-row AMX block, so that an A
/// tile never reads past the buffer).
const MC: usize = 96;

/// Whether this CPU has AMX-TILE and AMX-INT8 (CPUID leaf 7: EDX bits 24 and 25), whatever
/// the operating system allows.
pub fn cpu_has_amx_int8() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86-64 CPU.
        let (max, l7) = unsafe { (__cpuid(0).eax, __cpuid_count(7, 0)) };
        max >= 7 && (l7.edx >> 24) & 1 == 1 && (l7.edx >> 25) & 1 == 1
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Asks Linux for the tile data state (once per process): `Err` says why AMX cannot run.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tiles() -> Result<(), String> {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM) only changes which xstate components the
    // process may use; the syscall clobbers rcx and r11 and nothing else.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret == 0 {
        Ok(())
    } else {
        Err(format!(
            "arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) refused (errno {})",
            -ret
        ))
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn request_tiles() -> Result<(), String> {
    Err("AMX tile state is only requested on Linux".into())
}

/// `Ok` when the AMX tiles run here: the CPU has AMX-INT8 and AVX-512 VNNI (the blocks' last
/// step) and the kernel granted the tile state; else why not. Asked once per process.
pub fn amx_ready() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            if !cpu_has_amx_int8() {
                return Err("the CPU has no AMX-INT8".into());
            }
            if !has_avx512() {
                return Err("the CPU has AMX but no AVX-512 VNNI".into());
            }
            request_tiles()
        })
        .clone()
}

/// The int8 tiles of this process, chosen once: `VOCMINE_KERNELS` (`amx`, `vnni` or `avx2`)
/// when set, else the best the CPU runs (AMX, then AVX-512 VNNI unless `VOCMINE_NO_AVX512`,
/// then AVX2). A path asked for or expected but unavailable falls back to the next one, said
/// once on stderr.
pub fn int8_tiles() -> Tiles {
    static TILES: OnceLock<Tiles> = OnceLock::new();
    *TILES.get_or_init(|| {
        let simd = if use_avx512() {
            Tiles::Vnni
        } else {
            Tiles::Avx2
        };
        let want = std::env::var("VOCMINE_KERNELS").unwrap_or_default();
        let (tiles, note) = match want.trim() {
            "avx2" => (Tiles::Avx2, None),
            "vnni" if has_avx512() => (Tiles::Vnni, None),
            "vnni" => (
                Tiles::Avx2,
                Some("VOCMINE_KERNELS=vnni: the CPU has no AVX-512 VNNI".to_string()),
            ),
            "amx" => match amx_ready() {
                Ok(()) => (Tiles::Amx, None),
                Err(e) => (simd, Some(format!("VOCMINE_KERNELS=amx: {e}"))),
            },
            "" | "auto" if simd == Tiles::Avx2 => (simd, None),
            "" | "auto" => match amx_ready() {
                Ok(()) => (Tiles::Amx, None),
                // a refusal on a CPU that has the tiles is worth saying; a CPU without is not
                Err(e) if cpu_has_amx_int8() => (simd, Some(e)),
                Err(_) => (simd, None),
            },
            other => (
                simd,
                Some(format!(
                    "VOCMINE_KERNELS={other} is not one of amx, vnni, avx2"
                )),
            ),
        };
        if let Some(note) = note {
            eprintln!("vocmine: {note}; the int8 layers run on {tiles:?} tiles");
        }
        tiles
    })
}

/// Per-thread buffers of [`qlinear_amx`]: row-major codes of an MC-row block, the rows'
/// scales, zero points and outliers, and one block's i32 sums.
struct AmxScratch {
    codes: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<i32>,
    oidx: Vec<u32>,
    oval: Vec<f32>,
    /// 32 x 32 i32 sums (one block), 64-byte aligned (as 64 x 16).
    acc: Vec<[i32; 16]>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<AmxScratch> = std::cell::RefCell::new(AmxScratch {
        codes: Vec::new(),
        scale: Vec::new(),
        zero: Vec::new(),
        oidx: Vec::new(),
        oval: Vec::new(),
        acc: vec![[0; 16]; 64],
    });
}

/// [`int8::qlinear`](super::int8::qlinear) on AMX tiles; shapes checked by the caller.
///
/// # Safety
/// [`amx_ready`] returned `Ok` (AMX-INT8, AVX-512 VNNI, the tile state granted); `x` is
/// `m x w.k`, `out` (and a residual) `m x w.n`.
pub(super) unsafe fn qlinear_amx(x: &[f32], m: usize, w: &QLinear, out: &mut [f32], ep: Epilogue) {
    SCRATCH.with(|cell| {
        let mut s = cell.borrow_mut();
        // SAFETY: as this function's.
        unsafe { run(x, m, w, out, ep, &mut s) }
    })
}

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

/// The body of [`qlinear_amx`]: blocks of MC rows quantized, then 32 x 32 blocks of outputs.
///
/// # Safety
/// As [`qlinear_amx`]'s.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
unsafe fn run(x: &[f32], m: usize, w: &QLinear, out: &mut [f32], ep: Epilogue, s: &mut AmxScratch) {
    let (k, kp, n, no) = (w.k, w.kp(), w.n, w.outliers);
    let kpa = kp.div_ceil(64) * 64;
    if s.codes.len() < MC * kpa {
        s.codes.resize(MC * kpa, 0);
    }
    s.scale.resize(MC, 1.0);
    s.zero.resize(MC, 0);
    s.oidx.resize(MC * no, 0);
    s.oval.resize(MC * no, 0.0);
    let cfg = TileConfig::all_16x64();
    asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
    let op = out.as_mut_ptr();
    let panels = n / NR;
    let acc = s.acc.as_mut_ptr() as *mut i32;
    let mut i0 = 0;
    while i0 < m {
        let i1 = (i0 + MC).min(m);
        for r in 0..i1 - i0 {
            let q = quantize_row_major(
                &x[(i0 + r) * k..(i0 + r + 1) * k],
                kpa,
                s.codes.as_mut_ptr().add(r * kpa),
                &mut s.oidx[r * no..(r + 1) * no],
                &mut s.oval[r * no..(r + 1) * no],
            );
            s.scale[r] = q.scale;
            s.zero[r] = q.zero;
        }
        let mut p = 0;
        while p < panels {
            let two_c = p + 1 < panels;
            let col = p * NR;
            let b = w.data_ptr().add(col * kp);
            let mut r = 0;
            while r < i1 - i0 {
                let rows = 32.min(i1 - i0 - r);
                let a = s.codes.as_ptr().add(r * kpa);
                match (rows > 16, two_c) {
                    (true, true) => block::<true, true>(a, kpa, b, kp * NR, kpa / 64, acc),
                    (true, false) => block::<true, false>(a, kpa, b, kp * NR, kpa / 64, acc),
                    (false, true) => block::<false, true>(a, kpa, b, kp * NR, kpa / 64, acc),
                    (false, false) => block::<false, false>(a, kpa, b, kp * NR, kpa / 64, acc),
                }
                let cp = op.add((i0 + r) * n + col);
                if two_c {
                    last_step::<2>(w, s, r, rows, acc, col, cp);
                } else {
                    last_step::<1>(w, s, r, rows, acc, col, cp);
                }
                for h in 0..1 + two_c as usize {
                    finish_tile(rows, cp.add(h * NR), n, ep, i0 + r, col + h * NR);
                }
                r += rows;
            }
            p += 1 + two_c as usize;
        }
        i0 = i1;
    }
    asm!("tilerelease", options(nostack, nomem));
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
unsafe fn block<const TWO_R: bool, const TWO_C: bool>(
    a: *const u8,
    lda: usize,
    b: *const i8,
    ldb: usize,
    steps: usize,
    acc: *mut i32,
) {
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

/// The last step of `H` x 16 columns (from `col`) of rows `r .. r + rows` of the block: the
/// AVX-512 VNNI tile's, op for op on every output (zero point, row scale, outliers in f32 in
/// the same order, column scale, bias), from the sums at `acc` (row stride 32) to `c` (row
/// stride `w.n`). Both halves of a row share each outlier's broadcast and address.
///
/// # Safety
/// AVX-512 F/BW and FMA present; `s` holds the quantized rows `r .. r + rows`, `acc` their
/// sums, `col + H * 16 <= w.n`, `c` a `rows x (H * 16)` block of the output.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,fma")]
#[inline]
unsafe fn last_step<const H: usize>(
    w: &QLinear,
    s: &AmxScratch,
    r: usize,
    rows: usize,
    acc: *const i32,
    col: usize,
    c: *mut f32,
) {
    let (n, no) = (w.n, w.outliers);
    let mut ws = [_mm512_setzero_ps(); H];
    let mut cs = [_mm512_setzero_si512(); H];
    let mut bb = [_mm512_setzero_ps(); H];
    for h in 0..H {
        ws[h] = _mm512_loadu_ps(w.scale_ptr().add(col + h * NR));
        cs[h] = _mm512_loadu_si512(w.colsum_ptr().add(col + h * NR) as *const _);
        bb[h] = _mm512_loadu_ps(w.bias.as_ptr().add(col + h * NR));
    }
    let wt = w.wt_ptr().wrapping_add(col);
    for i in 0..rows {
        let row = r + i;
        let z = _mm512_set1_epi32(*s.zero.get_unchecked(row));
        let sa = _mm512_set1_ps(*s.scale.get_unchecked(row));
        let mut g = [_mm512_setzero_ps(); H];
        for h in 0..H {
            let sum = _mm512_loadu_si512(acc.add(i * 32 + h * NR) as *const _);
            let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(sum, _mm512_mullo_epi32(z, cs[h])));
            g[h] = _mm512_mul_ps(v, sa);
        }
        for o in row * no..(row + 1) * no {
            let xv = _mm512_set1_ps(*s.oval.get_unchecked(o));
            let wp = wt.add(*s.oidx.get_unchecked(o) as usize * n);
            for (h, gh) in g.iter_mut().enumerate() {
                let wv = _mm512_cvtepi8_epi32(_mm_loadu_si128(wp.add(h * NR) as *const __m128i));
                *gh = _mm512_fmadd_ps(xv, _mm512_cvtepi32_ps(wv), *gh);
            }
        }
        for h in 0..H {
            _mm512_storeu_ps(c.add(i * n + h * NR), _mm512_fmadd_ps(g[h], ws[h], bb[h]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::packed::tests::rnd;
    use super::super::packed::Epilogue;
    use super::super::int8::{qlinear_on, QLinear};
    use super::*;

    #[test]
    fn amx_tiles_give_the_vnni_and_avx2_tiles_results_bit_for_bit() {
        if let Err(why) = amx_ready() {
            eprintln!("SKIP: no AMX here ({why}); the VNNI and AVX2 tiles run alone");
            return;
        }
        // ragged M (1 row, a partial 16-row and 32-row block, more than one MC block), K not
        // a multiple of 4, 64 or 8, an odd panel count, with and without outliers, and the
        // encoder's shapes
        for &(m, k, n, outliers) in &[
            (1, 40, 16, 8),
            (13, 40, 32, 8),
            (17, 37, 48, 3),
            (33, 701, 16, 0),
            (101, 384, 48, 8),
            (200, 1536, 64, 8),
            (97, 384, 1152, 8),
            (130, 1536, 384, 8),
        ] {
            let mut x = rnd(m * k, 41);
            for i in 0..m {
                x[i * k + 3 % k] *= 25.0;
            }
            let w = rnd(n * k, 42);
            let b = rnd(n, 43);
            let res = rnd(m * n, 44);
            let ql = QLinear::quantize(&w, n, k, b, outliers);
            for ep in [
                Epilogue::Bias,
                Epilogue::BiasGelu,
                Epilogue::BiasResidual(&res),
            ] {
                let run = |tiles| {
                    let mut out = vec![f32::NAN; m * n];
                    qlinear_on(&x, m, &ql, &mut out, ep, tiles);
                    out
                };
                let amx = run(Tiles::Amx);
                for other in [Tiles::Vnni, Tiles::Avx2] {
                    let o = run(other);
                    for (idx, (a, b)) in amx.iter().zip(&o).enumerate() {
                        assert_eq!(
                            a.to_bits(),
                            b.to_bits(),
                            "m{m} k{k} n{n} outliers {outliers} {other:?} [{idx}]: {a} vs {b}"
                        );
                    }
                }
                assert!(amx.iter().all(|v| v.is_finite()));
            }
        }
    }

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

    #[test]
    fn the_process_tiles_follow_the_cpu() {
        let t = int8_tiles();
        match t {
            Tiles::Amx => assert!(amx_ready().is_ok()),
            Tiles::Vnni => assert!(has_avx512()),
            Tiles::Avx2 => {}
        }
        if std::env::var_os("VOCMINE_KERNELS").is_none()
            && std::env::var_os("VOCMINE_NO_AVX512").is_none()
        {
            assert_eq!(t == Tiles::Amx, amx_ready().is_ok());
        }
    }
}
