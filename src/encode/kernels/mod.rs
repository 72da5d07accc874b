//! The CPU kernels of the packed encoder and the training engine, in one place: the safe entry
//! points the rest of the crate calls, each of which checks the CPU and the shapes and then
//! dispatches to the tiles of the instruction set the process runs on.
//!
//! | file | holds |
//! |---|---|
//! | `cpu.rs` | CPU feature detection, the forced path (`VOCMINE_KERNELS`, `VOCMINE_NO_AVX512`), tile sizes, epilogues, shape checks |
//! | `common.rs` | what several instruction sets share: a row's quantization, an int8 tile's operands, the scalar top-k |
//! | `avx2.rs` | AVX2 + FMA: the f32 and int8 6 x 16 tiles, epilogues (GELU, residual), exp, softmax, layer norm, row quantization |
//! | `avx512.rs` | AVX-512: the f32, int8 (VNNI) and bf16 (`vdpbf16ps`) 12 x 32 tiles, the outlier search, row-major codes, bf16 rows |
//! | `amx.rs` | AMX: tile configuration, `tdpbusd` blocks, their last step |
//! | `packed.rs` | the f32 packed weights and the drivers of the matmul and attention |
//! | `bf16.rs` | the bf16 weights (pairs of inputs) and the driver of the bf16 matmul (AVX512-BF16) |
//! | `int8.rs` | the int8 weights and the drivers of the int8 matmul (AVX2, VNNI, AMX) |
//! | `train.rs` | the training engine's attention forward and backward, plain loops compiled for the widest vectors |
//! | `team.rs` | the spinning team that runs the column parts of one small forward pass's products |
//!
//! Dependency rule (`tests/architecture.rs`): the ISA files (`avx2`, `avx512`, `amx`) import
//! only `cpu` and `common`, which import nothing of `kernels`; the drivers import those; this
//! file imports them all. Only the safe functions and types below leave `kernels`; all
//! SIMD is private to it. Every path gives the same result bits as every other (the tests
//! compare them bit for bit), so the choice of tiles is a matter of speed only; the bf16
//! layers ([`linear_bf16`], `--engine bf16`) are the exception: another precision, one path.

mod amx;
mod avx2;
mod avx512;
mod bf16;
mod common;
mod cpu;
mod int8;
mod packed;
mod team;
#[cfg(test)]
mod tests;
pub(crate) mod train;

pub(crate) use bf16::Bf16Linear;
pub use cpu::{
    amx_ready, available, cpu_has_amx_int8, half_panels, has_avx512, has_avx512_bf16, int8_tiles,
    use_avx512, Tiles,
};
pub(crate) use cpu::{Epilogue, MR};
pub(crate) use int8::{QLinear, OUTLIERS};
pub(crate) use packed::{AttnScratch, PackedLinear};
pub(crate) use team::{on_team, with_team};

/// `out (m x n) = epilogue(x (m x k) W^T + b)`, all row-major and contiguous, on the AVX-512
/// tiles where [`use_avx512`], else on the AVX2 ones. Panics on a CPU without AVX2 + FMA
/// ([`available`]) or on shapes that do not match.
pub(crate) fn linear(x: &[f32], m: usize, w: &PackedLinear, out: &mut [f32], ep: Epilogue) {
    linear_on(x, m, w, out, ep, use_avx512());
}

/// [`linear`] on AVX-512 tiles when `wide` (the CPU must have AVX-512), else on AVX2 tiles.
pub(crate) fn linear_on(
    x: &[f32],
    m: usize,
    w: &PackedLinear,
    out: &mut [f32],
    ep: Epilogue,
    wide: bool,
) {
    cpu::check_call(x, m, w.k, w.n, out, ep, wide);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU (AVX2 + FMA, AVX-512 when `wide`) and the shapes checked by `check_call`.
    unsafe {
        packed::linear(x, m, w, out, ep, wide)
    }
}

/// [`linear`] with the output columns cut into `parts` ranges of whole weight panels, run at
/// once on the current rayon pool: each thread reads only its share of the weights, which is
/// what bounds a product of few rows (one comment's tokens). The output bits are those of
/// [`linear`] (each column is computed by the same tile in the same order).
pub(crate) fn linear_cols(
    x: &[f32],
    m: usize,
    w: &PackedLinear,
    out: &mut [f32],
    ep: Epilogue,
    parts: usize,
) {
    let wide = use_avx512();
    cpu::check_call(x, m, w.k, w.n, out, ep, wide);
    let split = on_columns(w.n, parts, out, |o, r| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU and the shapes checked by `check_call`; `on_columns` gives disjoint
        // ranges that start at even panels and returns when every call has ended.
        unsafe {
            packed::linear_panels(x, m, w, o, ep, wide, r)
        }
    });
    if !split {
        linear_on(x, m, w, out, ep, wide);
    }
}

/// [`qlinear`] with the output columns split as [`linear_cols`] splits them (each thread
/// quantizes every row, the same codes, and reads only its share of the weights); the output
/// bits are those of [`qlinear`]. On AMX tiles, which work on 32-column blocks of their own,
/// it is [`qlinear`].
pub(crate) fn qlinear_cols(
    x: &[f32],
    m: usize,
    w: &QLinear,
    out: &mut [f32],
    ep: Epilogue,
    parts: usize,
) {
    let tiles = int8_tiles();
    if tiles == Tiles::Amx {
        return qlinear_on(x, m, w, out, ep, tiles);
    }
    cpu::check_call(x, m, w.k, w.n, out, ep, tiles == Tiles::Vnni);
    assert!(
        !matches!(ep, Epilogue::Accumulate),
        "int8 layers do not accumulate"
    );
    let split = on_columns(w.n, parts, out, |o, r| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the tiles `int8_tiles` chose run on this CPU (AVX2 + FMA; AVX-512 VNNI for
        // `Vnni`, checked by `check_call`), the shapes checked there; disjoint ranges that
        // start at even panels, every call ended when `on_columns` returns.
        unsafe {
            int8::qlinear_panels(x, m, w, o, ep, tiles, r)
        }
    });
    if !split {
        qlinear_on(x, m, w, out, ep, tiles);
    }
}

/// An output's address, shared by the threads that write disjoint columns of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: only `on_columns` makes one, and each of its calls writes only the columns of its own
// panel range.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The address (a method, so that a closure captures the whole `SharedOut`, which is
    /// `Sync`, not its raw pointer field).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// `parts` ranges of the `n / NR` weight panels of an `n`-output layer (fewer when there are
/// fewer pairs of panels), each starting at an even panel (an AVX-512 tile takes two); the
/// last ends at the last panel, odd or not.
fn column_ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let panels = n / cpu::NR;
    let parts = parts.clamp(1, (panels / 2).max(1));
    let cut = |j: usize| {
        if j == parts {
            panels
        } else {
            2 * (panels / 2 * j / parts)
        }
    };
    (0..parts).map(|j| cut(j)..cut(j + 1)).collect()
}

/// Runs `run(out, panels)` for every range of [`column_ranges`]`(n, parts)` at once, on the
/// spinning team of [`with_team`] when one runs here, else on the current rayon pool, `out`
/// being `out`'s address, and returns when all have ended; false (nothing run) when there is
/// one range only. The split of [`linear_cols`] and [`qlinear_cols`].
fn on_columns(
    n: usize,
    parts: usize,
    out: &mut [f32],
    run: impl Fn(*mut f32, std::ops::Range<usize>) + Sync,
) -> bool {
    let ranges = column_ranges(n, parts);
    if ranges.len() <= 1 {
        return false;
    }
    let o = SharedOut(out.as_mut_ptr());
    let part = |j: usize| {
        if let Some(r) = ranges.get(j) {
            run(o.ptr(), r.clone());
        }
    };
    if team::on_team(parts, &part) {
        return true;
    }
    rayon::scope(|s| {
        for r in ranges {
            let run = &run;
            s.spawn(move |_| run(o.ptr(), r));
        }
    });
    true
}

/// `out (m x n) = epilogue(x (m x k) W^T + b)` with `W` in bf16 and `x` rounded to bf16,
/// f32 sums, all row-major and contiguous (`--engine bf16`). Panics on a CPU without
/// AVX512-BF16 ([`has_avx512_bf16`]) or on shapes that do not match.
pub(crate) fn linear_bf16(x: &[f32], m: usize, w: &Bf16Linear, out: &mut [f32], ep: Epilogue) {
    assert!(has_avx512_bf16(), "bf16 tiles on a CPU without AVX512-BF16");
    cpu::check_call(x, m, w.k, w.n, out, ep, false);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU (AVX2, FMA, AVX-512 F/BW, AVX512-BF16) checked just above, the shapes
    // by `check_call`.
    unsafe {
        bf16::linear(x, m, w, out, ep)
    }
}

/// Self-attention of one sequence of `len` tokens. `qkv` holds `len` rows of `3 * hidden`
/// (queries, keys, values side by side, as the fused projection writes them); `ctx` receives
/// `len` rows of `hidden`. Both products run on the matmul's tiles. Head widths must be
/// multiples of 16 (32 for e5-small). Panics on a CPU without AVX2 + FMA or on shapes that do
/// not match.
pub(crate) fn attention(
    qkv: &[f32],
    len: usize,
    hidden: usize,
    heads: usize,
    ctx: &mut [f32],
    s: &mut AttnScratch,
) {
    attention_on(qkv, len, hidden, heads, ctx, s, use_avx512());
}

/// [`attention`] with its products on AVX-512 tiles when `wide` (the CPU must have AVX-512),
/// else on AVX2 tiles.
pub(crate) fn attention_on(
    qkv: &[f32],
    len: usize,
    hidden: usize,
    heads: usize,
    ctx: &mut [f32],
    s: &mut AttnScratch,
    wide: bool,
) {
    cpu::check_cpu(wide);
    let hd = hidden / heads;
    assert!(
        hd * heads == hidden && hd.is_multiple_of(cpu::NR),
        "head width {hd}"
    );
    assert_eq!(qkv.len(), len * 3 * hidden);
    assert_eq!(ctx.len(), len * hidden);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU checked by `check_cpu`, the shapes just above.
    unsafe {
        packed::attention(qkv, len, hidden, heads, ctx, s, wide, std::ptr::null_mut())
    }
}

/// [`attention`] that also keeps each head's softmax probabilities, transposed, in `probs_t`
/// (`probs_t[head * len * len + j * len + i]` = P(query i, key j)): the training engine's
/// forward pass, the same context bits as the encoder's.
pub(crate) fn attention_keep(
    qkv: &[f32],
    len: usize,
    hidden: usize,
    heads: usize,
    ctx: &mut [f32],
    s: &mut AttnScratch,
    probs_t: &mut [f32],
) {
    let wide = use_avx512();
    cpu::check_cpu(wide);
    let hd = hidden / heads;
    assert!(
        hd * heads == hidden && hd.is_multiple_of(cpu::NR),
        "head width {hd}"
    );
    assert_eq!(qkv.len(), len * 3 * hidden);
    assert_eq!(ctx.len(), len * hidden);
    assert_eq!(probs_t.len(), heads * len * len);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU checked by `check_cpu`, the shapes just above (`probs_t` included).
    unsafe {
        packed::attention(qkv, len, hidden, heads, ctx, s, wide, probs_t.as_mut_ptr())
    }
}

/// `out (m x n) = epilogue(x (m x k) W^T + b)` with `W` quantized, all row-major, on the
/// process's tiles ([`int8_tiles`]).
pub(crate) fn qlinear(x: &[f32], m: usize, w: &QLinear, out: &mut [f32], ep: Epilogue) {
    qlinear_on(x, m, w, out, ep, int8_tiles());
}

/// [`qlinear`] on the given tiles (the CPU must run them: panics otherwise). All three give
/// the same output bits.
pub(crate) fn qlinear_on(
    x: &[f32],
    m: usize,
    w: &QLinear,
    out: &mut [f32],
    ep: Epilogue,
    tiles: Tiles,
) {
    cpu::check_call(x, m, w.k, w.n, out, ep, tiles != Tiles::Avx2);
    assert!(
        !matches!(ep, Epilogue::Accumulate),
        "int8 layers do not accumulate"
    );
    if tiles == Tiles::Amx {
        assert!(amx_ready().is_ok(), "AMX tiles where they do not run");
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU checked by `check_call` (AVX2 + FMA, AVX-512 VNNI unless `Avx2`) and
    // just above (AMX with the tile state), the shapes by `check_call`.
    unsafe {
        int8::qlinear(x, m, w, out, ep, tiles)
    }
}

/// GELU (erf form) of `u` into `g` and its derivative `Phi(u) + u phi(u)` into `dg` (the
/// training engine's forward pass keeps both for the backward pass), on AVX-512 where
/// [`use_avx512`].
pub(crate) fn gelu_with_grad(u: &[f32], g: &mut [f32], dg: &mut [f32]) {
    gelu_with_grad_on(u, g, dg, use_avx512())
}

/// [`gelu_with_grad`] on AVX-512 (`wide`) or AVX2 (the two differ in the last bits: their
/// reciprocal estimates differ). Panics where the CPU lacks them.
pub(crate) fn gelu_with_grad_on(u: &[f32], g: &mut [f32], dg: &mut [f32], wide: bool) {
    cpu::check_cpu(wide);
    assert!(g.len() == u.len() && dg.len() == u.len());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU checked by `check_cpu`, the lengths just above.
    unsafe {
        if wide {
            avx512::gelu_grad_slice(u, g, dg)
        } else {
            avx2::gelu_grad_slice(u, g, dg)
        }
    }
}

/// Layer norm of each `width`-long row of `x`, in place: `(x - mean) / sqrt(var + eps) * g + b`.
pub(crate) fn layer_norm(x: &mut [f32], width: usize, g: &[f32], b: &[f32], eps: f32) {
    assert!(available(), "AVX2 + FMA kernels on a CPU without them");
    assert!(
        width.is_multiple_of(8)
            && x.len().is_multiple_of(width)
            && g.len() == width
            && b.len() == width
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 + FMA checked; rows are whole multiples of 8 lanes inside `x`.
    unsafe {
        avx2::layer_norm(x, width, g, b, eps)
    }
}
