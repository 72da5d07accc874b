//! The f32 layer of the packed encoder and the training engine: weights packed once at load
//! time as 16-column panels ([`PackedLinear`]), and the drivers that walk them: the matrix
//! multiply (activations packed per K block as 6-row micro-panels, then every panel through
//! the AVX2 6 x 16 tile, or pairs of panels through the AVX-512 12 x 32 tile, with the bias,
//! GELU and residual fused into the last pass over K) and the attention of one sequence (both
//! products on the same tiles, the softmax between them).
//!
//! The drivers are `unsafe`: the safe entry points of [`kernels`](super) check the CPU and the
//! shapes first. Both tile widths give the same sums in the same order (every output is one
//! FMA chain over K), so the AVX-512 and AVX2 paths give the same result bits.

use super::cpu::{check_weight, Epilogue, KC, MC, MR, NR};
use super::{avx2, avx512};

/// A 64-byte aligned f32 buffer (packed panels must not straddle cache lines).
pub struct AlignedVec {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl AlignedVec {
    /// `len` zeros.
    pub fn zeros(len: usize) -> AlignedVec {
        let buf = vec![0.0f32; len + 16];
        let off = buf.as_ptr().align_offset(64).min(15);
        AlignedVec { buf, off, len }
    }
    /// The contents.
    pub fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }
    /// The contents, writable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// A weight matrix `W` (y = x W^T + b in PyTorch's layout, `out x in`), stored as panels of
/// [`NR`] output columns: panel `p` holds `k x NR` values, row `k` = the 16 weights of input
/// `k` for outputs `p*16 .. p*16+16`.
///
/// The panels hold f32 values, or f16 ones ([`PackedLinear::pack_half`]) when every weight is
/// an f16 value (the shipped encoder's are: its files store f16): the tiles widen them exactly,
/// so both give the same result bits, and the f16 panels are half the bytes to read, which is
/// what bounds a product of few rows (one comment's tokens).
pub struct PackedLinear {
    /// Inputs (K).
    pub k: usize,
    /// Outputs (N, a multiple of 16).
    pub n: usize,
    /// The panels: `n * k` f32 values, or `n * k` f16 bit patterns in its first half when
    /// `half`.
    data: AlignedVec,
    half: bool,
    /// Bias, length N.
    pub bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs `w` (row-major `n x k`, PyTorch `Linear.weight`) and `bias` (length n).
    /// `n` must be a multiple of 16 (384, 1152, 1536 for BERT-small shapes).
    pub fn pack(w: &[f32], n: usize, k: usize, bias: Vec<f32>) -> PackedLinear {
        check_weight(w, n, k, &bias);
        let mut data = AlignedVec::zeros(n * k);
        to_panels(w, n, k, data.as_mut_slice());
        PackedLinear {
            k,
            n,
            data,
            half: false,
            bias,
        }
    }

    /// [`PackedLinear::pack`] with the panels in f16, or `None` when a weight is not an f16
    /// value (one that would round, underflow or overflow, or a NaN whose payload f16 cannot
    /// hold): the same products, half the weight bytes.
    pub fn pack_half(w: &[f32], n: usize, k: usize, bias: Vec<f32>) -> Option<PackedLinear> {
        check_weight(w, n, k, &bias);
        let bits: Vec<u16> = w
            .iter()
            .map(|&v| {
                let h = half::f16::from_f32(v);
                (h.to_f32().to_bits() == v.to_bits()).then_some(h.to_bits())
            })
            .collect::<Option<_>>()?;
        let mut data = AlignedVec::zeros((n * k).div_ceil(2));
        // SAFETY: `data` holds at least `n * k` u16 slots (2 per f32), 64-byte aligned.
        let d = unsafe {
            std::slice::from_raw_parts_mut(data.as_mut_slice().as_mut_ptr() as *mut u16, n * k)
        };
        to_panels(&bits, n, k, d);
        Some(PackedLinear {
            k,
            n,
            data,
            half: true,
            bias,
        })
    }

    /// Whether the panels are f16 ([`PackedLinear::pack_half`]).
    #[cfg(test)]
    pub fn is_half(&self) -> bool {
        self.half
    }

    /// Packs `a` (row-major `rows x cols`, `cols` a multiple of [`NR`]) as the weight of
    /// `y = x a` (so `W = a^T`: `cols` outputs, `rows` inputs), with a zero bias: the transposed
    /// operands of the training engine's backward pass (`dY W`, `dY^T X`), packed straight from
    /// the row-major matrix without a transpose.
    pub fn pack_transposed(a: &[f32], rows: usize, cols: usize) -> PackedLinear {
        assert_eq!(a.len(), rows * cols, "matrix is not {rows} x {cols}");
        assert_eq!(cols % NR, 0, "columns {cols} not a multiple of {NR}");
        let mut data = AlignedVec::zeros(rows * cols);
        let d = data.as_mut_slice();
        // one panel per task on the current rayon pool
        use rayon::prelude::*;
        if rows > 0 {
            d.par_chunks_mut(rows * NR)
                .enumerate()
                .for_each(|(p, panel)| {
                    for r in 0..rows {
                        panel[r * NR..(r + 1) * NR]
                            .copy_from_slice(&a[r * cols + p * NR..r * cols + (p + 1) * NR]);
                    }
                });
        }
        PackedLinear {
            k: rows,
            n: cols,
            data,
            half: false,
            bias: vec![0.0; cols],
        }
    }
}

/// Writes `w` (row-major `n x k`) into `d` as panels of [`NR`] output columns:
/// `d[p * k * NR + kk * NR + j] = w[(p * NR + j) * k + kk]`.
fn to_panels<T: Copy>(w: &[T], n: usize, k: usize, d: &mut [T]) {
    for p in 0..n / NR {
        for kk in 0..k {
            for j in 0..NR {
                d[p * k * NR + kk * NR + j] = w[(p * NR + j) * k + kk];
            }
        }
    }
}

thread_local! {
    /// The packed block of activations of [`linear`], kept per thread: allocating it per call
    /// (147 KiB, above malloc's mmap threshold) cost page faults on every matmul.
    static APACK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `out (m x n) = epilogue(x (m x k) W^T + b)`, all row-major and contiguous, on AVX-512
/// tiles when `wide`, else on AVX2 tiles.
///
/// # Safety
/// AVX2 and FMA present (AVX-512 F when `wide`); `x` is `m x w.k`, `out` (and a residual in
/// `ep`) `m x w.n` (`cpu::check_call` checks all of this).
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn linear(
    x: &[f32],
    m: usize,
    w: &PackedLinear,
    out: &mut [f32],
    ep: Epilogue,
    wide: bool,
) {
    // SAFETY: as this function's contract; every panel, into the whole of `out`.
    unsafe { linear_panels(x, m, w, out.as_mut_ptr(), ep, wide, 0..w.n / NR) }
}

/// [`linear`] for the output columns of the weight panels `panels` only (columns
/// `panels.start * NR .. panels.end * NR` of every row): each of several threads can compute
/// its own columns of one product, reading only its share of the weights (a lone comment's
/// product is bound by reading them). The values written are those [`linear`] writes there.
///
/// # Safety
/// As [`linear`]'s, with `out` pointing at the `m x w.n` output (and a residual in `ep` that
/// long); `panels` within `0..w.n / NR`, starting at an even panel when `wide`; no other thread
/// touches these columns of `out` during the call.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn linear_panels(
    x: &[f32],
    m: usize,
    w: &PackedLinear,
    out: *mut f32,
    ep: Epilogue,
    wide: bool,
    panels: std::ops::Range<usize>,
) {
    APACK.with(|cell| {
        let mut apack = cell.borrow_mut();
        if apack.len() < MC * KC {
            apack.resize(MC * KC, 0.0);
        }
        // SAFETY: the CPU and the shapes as this function's contract; `apack` holds an
        // MC x KC block.
        unsafe {
            if w.half {
                linear_blocks::<true>(x, m, w, out, ep, &mut apack, wide, panels)
            } else {
                linear_blocks::<false>(x, m, w, out, ep, &mut apack, wide, panels)
            }
        }
    })
}

/// The body of [`linear`]: K blocks of [`KC`], row blocks of [`MC`] packed into `apack`,
/// then every panel of `panels` (pair of panels when `wide`) over them; `HALF` = `w.half`.
///
/// # Safety
/// As [`linear_panels`]'s, and `apack` holds `MC x KC` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn linear_blocks<const HALF: bool>(
    x: &[f32],
    m: usize,
    w: &PackedLinear,
    out: *mut f32,
    ep: Epilogue,
    apack: &mut [f32],
    wide: bool,
    panels: std::ops::Range<usize>,
) {
    // SAFETY: the CPU as the contract requires for every tile called; the loop bounds keep
    // every offset inside `x` (m x k), `out` (m x n), `apack` (MC x KC, one K block of at most
    // MC rows) and `w`'s panels (n / 16 panels of k x 16), and each tile gets a whole
    // micro-panel (or two) and a whole output tile.
    unsafe {
        let (k, n) = (w.k, w.n);
        let (p0, p1) = (panels.start, panels.end);
        // panel element `e`'s address (f16 panels: 2 bytes an element)
        let wp = w.data.as_slice().as_ptr() as *const u8;
        let at = |e: usize| wp.add(e * if HALF { 2 } else { 4 });
        let xp = x.as_ptr();
        let op = out;
        let mut k0 = 0;
        while k0 < k {
            let kc = KC.min(k - k0);
            let first = k0 == 0;
            let last = k0 + kc == k;
            let acc = matches!(ep, Epilogue::Accumulate);
            let mut i0 = 0;
            while i0 < m {
                let i1 = (i0 + MC).min(m);
                // pack the rows i0..i1 of this K block as MR-row micro-panels: [panel][kk][MR]
                let ap = apack.as_mut_ptr();
                let mut i = i0;
                while i < i1 {
                    let rows = MR.min(i1 - i);
                    let dst = ap.add((i - i0) * kc);
                    if rows == MR {
                        let src: [*const f32; MR] =
                            std::array::from_fn(|r| xp.add((i + r) * k + k0));
                        for kk in 0..kc {
                            for (r, sr) in src.iter().enumerate() {
                                *dst.add(kk * MR + r) = *sr.add(kk);
                            }
                        }
                    } else {
                        for r in 0..rows {
                            let src = xp.add((i + r) * k + k0);
                            for kk in 0..kc {
                                *dst.add(kk * MR + r) = *src.add(kk);
                            }
                        }
                    }
                    i += rows;
                }
                if wide {
                    // AVX-512: 12 x 32 tiles (two micro-panels, two weight panels); an odd last
                    // panel goes on below
                    for p in (p0..p1 - (p1 - p0) % 2).step_by(2) {
                        let b0 = at(p * k * NR + k0 * NR);
                        let b1 = at((p + 1) * k * NR + k0 * NR);
                        let mut i = i0;
                        while i < i1 {
                            let rows = (2 * MR).min(i1 - i);
                            let c = op.add(i * n + p * NR);
                            let bias = if first && !acc {
                                w.bias.as_ptr().add(p * NR)
                            } else {
                                std::ptr::null()
                            };
                            let a = ap.add((i - i0) * kc);
                            let a1 = a.add(MR * kc);
                            avx512::tile_rows::<HALF>(rows, kc, a, a1, MR, b0, b1, c, n, bias);
                            if last {
                                avx2::finish_tile(rows, c, n, ep, i, p * NR);
                                avx2::finish_tile(rows, c.add(NR), n, ep, i, p * NR + NR);
                            }
                            i += rows;
                        }
                    }
                }
                let narrow = if wide { p1 - (p1 - p0) % 2 } else { p0 };
                for p in narrow..p1 {
                    let bp = at(p * k * NR + k0 * NR);
                    let mut i = i0;
                    while i < i1 {
                        let rows = MR.min(i1 - i);
                        let a = ap.add((i - i0) * kc);
                        let c = op.add(i * n + p * NR);
                        let bias = if first && !acc {
                            w.bias.as_ptr().add(p * NR)
                        } else {
                            std::ptr::null()
                        };
                        avx2::tile_rows::<HALF>(rows, kc, a, MR, bp, c, n, bias);
                        if last {
                            avx2::finish_tile(rows, c, n, ep, i, p * NR);
                        }
                        i += rows;
                    }
                }
                i0 = i1;
            }
            k0 += kc;
        }
    }
}

/// Scratch space of [`attention`] (reused across calls).
#[derive(Default)]
pub struct AttnScratch {
    q: Option<AlignedVec>,
    kt: Vec<f32>,
    v: Option<AlignedVec>,
    st: Vec<f32>,
}

fn aligned(slot: &mut Option<AlignedVec>, n: usize) -> *mut f32 {
    if slot.as_ref().is_none_or(|a| a.len < n) {
        *slot = Some(AlignedVec::zeros(n));
    }
    slot.as_mut()
        .map_or(std::ptr::null_mut(), |a| a.as_mut_slice().as_mut_ptr())
}

/// Self-attention of one sequence of `len` tokens. `qkv` holds `len` rows of `3 * hidden`
/// (queries, keys, values side by side, as the fused projection writes them); `ctx` receives
/// `len` rows of `hidden`. Both products run on the matmul's tiles (AVX-512 ones when `wide`).
/// Scores are computed transposed (`S^T = K Q^T`: keys down, queries across), so the softmax
/// of each query runs down a column, eight queries per vector, and `S^T`'s rows are already
/// the probabilities' micro-panels for `P V`.
///
/// With `keep` non-null, each head's probabilities are also copied there transposed
/// (`keep[head * len * len + j * len + i]` = P(query i, key j)), for the training engine.
///
/// # Safety
/// AVX2 and FMA present (AVX-512 F when `wide`); `hidden / heads` a multiple of 16, `qkv`
/// `len x 3 hidden`, `ctx` `len x hidden`, `keep` null or `heads x len x len` writable values
/// (the safe entry points check all of this).
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn attention(
    qkv: &[f32],
    len: usize,
    hidden: usize,
    heads: usize,
    ctx: &mut [f32],
    s: &mut AttnScratch,
    wide: bool,
    keep: *mut f32,
) {
    let hd = hidden / heads;
    let lq = len.div_ceil(NR) * NR;
    s.kt.resize(hd * len, 0.0);
    s.st.resize(len * lq, 0.0);
    let qp = aligned(&mut s.q, lq * hd);
    let vp = aligned(&mut s.v, len * hd);
    // SAFETY: the CPU and the shapes as this function's contract; the buffers sized for them
    // just above.
    unsafe { attention_heads(qkv, len, hidden, heads, ctx, s, qp, vp, wide, keep) }
}

/// The body of [`attention`], head after head; `qp` and `vp` hold the packed queries
/// (`len` rounded up to 16, x head width) and values (`len` x head width).
///
/// # Safety
/// As [`attention`]'s (`keep` included), and `s.kt`, `s.st`, `qp`, `vp` sized as
/// [`attention`] sizes them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn attention_heads(
    qkv: &[f32],
    len: usize,
    hidden: usize,
    heads: usize,
    ctx: &mut [f32],
    s: &mut AttnScratch,
    qp: *mut f32,
    vp: *mut f32,
    wide: bool,
    keep: *mut f32,
) {
    // SAFETY: the CPU as the contract requires; every offset is bounded by `len`, `hidden`,
    // `heads` and `lq` (len rounded up to 16), inside `qkv` (len x 3 hidden), `ctx`
    // (len x hidden), `s.kt` (hd x len), `s.st` (len x lq), `qp` (lq x hd) and `vp` (len x hd).
    unsafe {
        let hd = hidden / heads;
        let stride = 3 * hidden;
        let scale = 1.0 / (hd as f32).sqrt();
        let lq = len.div_ceil(NR) * NR;
        let src = qkv.as_ptr();
        let kt = s.kt.as_mut_ptr();
        let st = s.st.as_mut_ptr();
        let cp = ctx.as_mut_ptr();
        for h in 0..heads {
            // queries (scaled) as 16-query panels [panel][d][16], zero past len
            for qb in 0..lq / NR {
                for ii in 0..NR {
                    let i = qb * NR + ii;
                    let dst = qp.add(qb * hd * NR + ii);
                    if i < len {
                        let row = src.add(i * stride + h * hd);
                        for d in 0..hd {
                            *dst.add(d * NR) = *row.add(d) * scale;
                        }
                    } else {
                        for d in 0..hd {
                            *dst.add(d * NR) = 0.0;
                        }
                    }
                }
            }
            // keys transposed: kt[d * len + j]
            for j in 0..len {
                let row = src.add(j * stride + hidden + h * hd);
                for d in 0..hd {
                    *kt.add(d * len + j) = *row.add(d);
                }
            }
            // values as 16-column panels [panel][j][16]
            for pb in 0..hd / NR {
                for j in 0..len {
                    let row = src.add(j * stride + 2 * hidden + h * hd + pb * NR);
                    std::ptr::copy_nonoverlapping(row, vp.add(pb * len * NR + j * NR), NR);
                }
            }
            // S^T = K Q^T: len keys x lq queries
            strided_matmul(len, hd, kt, len, qp, hd * NR, lq / NR, st, lq, wide);
            // softmax of each query = each column, 8 queries per vector
            avx2::softmax_columns(st, len, lq);
            if !keep.is_null() {
                for j in 0..len {
                    std::ptr::copy_nonoverlapping(
                        st.add(j * lq),
                        keep.add(h * len * len + j * len),
                        len,
                    );
                }
            }
            // context = P V: P's micro-panel for queries i0.. is S^T[j][i0..], stride lq
            let c = cp.add(h * hd);
            strided_matmul(len, len, st, lq, vp, len * NR, hd / NR, c, hidden, wide);
        }
    }
}

/// `c (m x panels*16) = a b` for a small product: `a[kk * ak + r]` is row `r`'s `kk`-th value
/// (any stride between values, rows adjacent), `b` holds `panels` 16-column panels `[kk][16]`
/// `pstride` apart. With `wide`, pairs of panels go through AVX-512 12 x 32 tiles.
/// # Safety
/// AVX2 and FMA present (AVX-512 F when `wide`); `a` holds `m` rows of `kc` values as
/// described, `b` `panels` panels of `kc x 16`, `c` an `m x (panels * 16)` block with row
/// stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn strided_matmul(
    m: usize,
    kc: usize,
    a: *const f32,
    ak: usize,
    b: *const f32,
    pstride: usize,
    panels: usize,
    c: *mut f32,
    ldc: usize,
    wide: bool,
) {
    // SAFETY: the CPU as the contract requires; rows step by the tile height up to `m`, panels
    // up to `panels`, so each tile reads rows of `a` and panels of `b` that exist and writes
    // inside `c`.
    unsafe {
        let zeros = [0.0f32; 2 * NR];
        if wide && panels >= 2 {
            let pairs = panels / 2;
            let mut r0 = 0;
            while r0 < m {
                let rows = (2 * MR).min(m - r0);
                let ar = a.add(r0);
                for p in 0..pairs {
                    let b0 = b.add(2 * p * pstride);
                    let cp = c.add(r0 * ldc + 2 * p * NR);
                    avx512::tile_rows::<false>(
                        rows,
                        kc,
                        ar,
                        ar.add(MR),
                        ak,
                        b0 as _,
                        b0.add(pstride) as _,
                        cp,
                        ldc,
                        zeros.as_ptr(),
                    );
                }
                r0 += rows;
            }
            if panels.is_multiple_of(2) {
                return;
            }
            // the odd last panel on AVX2 tiles
            let p = panels - 1;
            return strided_matmul(
                m,
                kc,
                a,
                ak,
                b.add(p * pstride),
                pstride,
                1,
                c.add(p * NR),
                ldc,
                false,
            );
        }
        let mut r0 = 0;
        while r0 < m {
            let rows = MR.min(m - r0);
            for p in 0..panels {
                let cp = c.add(r0 * ldc + p * NR);
                avx2::tile_rows::<false>(
                    rows,
                    kc,
                    a.add(r0),
                    ak,
                    b.add(p * pstride) as _,
                    cp,
                    ldc,
                    zeros.as_ptr(),
                );
            }
            r0 += rows;
        }
    }
}
