//! What the kernels may run on this machine, and the rules every tile shares: CPU feature
//! detection (read once per process), the forced path (`VOCMINE_KERNELS=amx|vnni|avx2`,
//! `VOCMINE_NO_AVX512`, `VOCMINE_F32_PANELS`), the tile sizes, the epilogues and the shape checks every safe entry
//! point makes before its unsafe kernel.
//!
//! This is the leaf of [`kernels`](super): it imports nothing of its siblings, and the ISA
//! files (`avx2`, `avx512`, `amx`) import only it and [`common`](super::common)
//! (`tests/architecture.rs` holds the rule).
//!
//! Linux hands out the AMX tile state on request only: [`amx_ready`] asks once per process
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); where the CPU lacks AMX-INT8 or
//! the kernel refuses, the int8 layers run on the VNNI (or AVX2) tiles, and a refusal on a CPU
//! that has AMX is said once on stderr.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
use std::arch::asm;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::sync::OnceLock;

/// Columns of one packed weight panel (two AVX registers).
pub const NR: usize = 16;
/// Rows of one micro-tile.
pub const MR: usize = 6;
/// Depth of one pass over K (a 16 x KC weight panel stays in L1).
pub const KC: usize = 384;
/// Rows of activations kept in L2 while every panel passes over them.
pub const MC: usize = 96;
/// Rows of quantized activations per block of the int8 layers (a multiple of the 32-row AMX
/// block, so that an A tile never reads past the buffer).
pub const QMC: usize = 96;
/// Bytes a weight buffer carries past its last panel, so that a B tile that runs past K
/// (into the zero codes' padding) stays inside it.
pub const B_SLACK: usize = 16 * 64;

/// Whether this CPU runs the kernels (x86-64 with AVX2, FMA and F16C: every AVX2 CPU made has
/// F16C, which widens the f16 weight panels).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the f32 (and int8) kernels use AVX-512 on this machine: the CPU has AVX-512 F,
/// BW and VNNI, and `VOCMINE_NO_AVX512` is unset (set it to measure or test the AVX2 path
/// on such a machine). Read once per process.
pub fn use_avx512() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| has_avx512() && std::env::var_os("VOCMINE_NO_AVX512").is_none())
}

/// Whether f32 layers whose weights are all f16 values keep them as f16 panels (the same
/// result bits, half the bytes read): yes unless `VOCMINE_F32_PANELS` is set (to measure the
/// f32 panels side by side). Read once per process.
pub fn half_panels() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("VOCMINE_F32_PANELS").is_none())
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

/// Whether the CPU runs the bf16 linear layers (`--engine bf16`): AVX-512 F and BW,
/// AVX512-BF16 (`vcvtne2ps2bf16`, `vdpbf16ps`), and AVX2 + FMA for the rest of the layer.
/// `VOCMINE_NO_AVX512` does not turn it off (bf16 has no AVX2 tile; the engine refuses to
/// load where this is false).
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        available()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

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

/// What the last pass over K does to each output tile besides adding the bias.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    /// y = x W^T + b.
    Bias,
    /// y = gelu(x W^T + b) (erf form).
    BiasGelu,
    /// y = x W^T + b + r, `r` with the output's shape (the residual).
    BiasResidual(&'a [f32]),
    /// y += x W^T: the sums start from the output's values, not the bias (the training
    /// engine's weight gradients; f32 and bf16 layers only).
    Accumulate,
}

/// Panics unless `w` is `n x k`, `bias` has length `n`, and `n` is a multiple of [`NR`]: the
/// shapes every packed linear layer (f32 or int8) is built from.
pub(super) fn check_weight(w: &[f32], n: usize, k: usize, bias: &[f32]) {
    assert_eq!(w.len(), n * k, "weight is not {n} x {k}");
    assert_eq!(bias.len(), n, "bias is not {n}");
    assert_eq!(n % NR, 0, "outputs {n} not a multiple of {NR}");
}

/// Panics unless the kernels (the AVX-512 ones when `wide`) run on this CPU.
pub(super) fn check_cpu(wide: bool) {
    assert!(available(), "AVX2 + FMA kernels on a CPU without them");
    assert!(
        !wide || has_avx512(),
        "AVX-512 tiles on a CPU without AVX-512"
    );
}

/// Panics unless the kernels (the AVX-512 ones when `wide`) run on this CPU and `x` is `m x k`,
/// `out` (and a residual) `m x n`: the checks every linear-layer call (f32 or int8) makes
/// before its unsafe kernel.
pub(super) fn check_call(
    x: &[f32],
    m: usize,
    k: usize,
    n: usize,
    out: &[f32],
    ep: Epilogue,
    wide: bool,
) {
    check_cpu(wide);
    assert_eq!(x.len(), m * k, "input is not {m} x {k}");
    assert_eq!(out.len(), m * n, "output is not {m} x {n}");
    if let Epilogue::BiasResidual(r) = ep {
        assert_eq!(r.len(), m * n, "residual is not {m} x {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
