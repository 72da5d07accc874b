//! CPU kernels of the packed encoder: a matrix multiply with weights packed once at load time
//! (AVX2 + FMA micro-kernel, 6 rows x 16 columns, with the bias, GELU and residual fused into
//! its last pass), vectorised `exp` and `erf`, layer norm and the attention of one sequence.
//!
//! Everything here is `unsafe` SIMD behind safe wrappers that check shapes; callers check
//! [`available`] once (AVX2 and FMA at run time) and use the candle engine otherwise. Where the
//! CPU has AVX-512, the matmul and attention products run on the 12 x 32 tiles of
//! [`avx512`](super::avx512) over the same packed operands, with the same result bits.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::avx512;

/// Columns of one packed weight panel (two AVX registers).
pub const NR: usize = 16;
/// Rows of one micro-tile.
pub const MR: usize = 6;
/// Depth of one pass over K (a 16 x KC weight panel stays in L1).
pub const KC: usize = 384;
/// Rows of activations kept in L2 while every panel passes over them.
pub const MC: usize = 96;

/// Whether this CPU runs the kernels (x86-64 with AVX2 and FMA).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

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
pub struct PackedLinear {
    /// Inputs (K).
    pub k: usize,
    /// Outputs (N, a multiple of 16).
    pub n: usize,
    data: AlignedVec,
    /// Bias, length N.
    pub bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs `w` (row-major `n x k`, PyTorch `Linear.weight`) and `bias` (length n).
    /// `n` must be a multiple of 16 (384, 1152, 1536 for BERT-small shapes).
    pub fn pack(w: &[f32], n: usize, k: usize, bias: Vec<f32>) -> PackedLinear {
        check_weight(w, n, k, &bias);
        let mut data = AlignedVec::zeros(n * k);
        let d = data.as_mut_slice();
        for p in 0..n / NR {
            for kk in 0..k {
                for j in 0..NR {
                    d[p * k * NR + kk * NR + j] = w[(p * NR + j) * k + kk];
                }
            }
        }
        PackedLinear { k, n, data, bias }
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
        for p in 0..cols / NR {
            for r in 0..rows {
                d[p * rows * NR + r * NR..p * rows * NR + (r + 1) * NR]
                    .copy_from_slice(&a[r * cols + p * NR..r * cols + (p + 1) * NR]);
            }
        }
        PackedLinear {
            k: rows,
            n: cols,
            data,
            bias: vec![0.0; cols],
        }
    }
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
}

/// Panics unless `w` is `n x k`, `bias` has length `n`, and `n` is a multiple of [`NR`]: the
/// shapes every packed linear layer (f32 or int8) is built from.
pub(crate) fn check_weight(w: &[f32], n: usize, k: usize, bias: &[f32]) {
    assert_eq!(w.len(), n * k, "weight is not {n} x {k}");
    assert_eq!(bias.len(), n, "bias is not {n}");
    assert_eq!(n % NR, 0, "outputs {n} not a multiple of {NR}");
}

/// Panics unless the kernels (the AVX-512 ones when `wide`) run on this CPU.
pub(crate) fn check_cpu(wide: bool) {
    assert!(available(), "AVX2 + FMA kernels on a CPU without them");
    assert!(
        !wide || avx512::has_avx512(),
        "AVX-512 tiles on a CPU without AVX-512"
    );
}

/// Panics unless the kernels (the AVX-512 ones when `wide`) run on this CPU and `x` is `m x k`,
/// `out` (and a residual) `m x n`: the checks every linear-layer call (f32 or int8) makes
/// before its unsafe kernel.
pub(crate) fn check_call(
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

thread_local! {
    /// The packed block of activations of [`linear`], kept per thread: allocating it per call
    /// (147 KiB, above malloc's mmap threshold) cost page faults on every matmul.
    static APACK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `out (m x n) = epilogue(x (m x k) W^T + b)`, all row-major and contiguous.
pub fn linear(x: &[f32], m: usize, w: &PackedLinear, out: &mut [f32], ep: Epilogue) {
    linear_on(x, m, w, out, ep, avx512::use_avx512());
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
    check_call(x, m, w.k, w.n, out, ep, wide);
    APACK.with(|cell| {
        let mut apack = cell.borrow_mut();
        if apack.len() < MC * KC {
            apack.resize(MC * KC, 0.0);
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: shapes and the CPU (AVX2 + FMA, AVX-512 when `wide`) checked by `check_call`;
        // `apack` holds an MC x KC block.
        unsafe {
            linear_avx2(x, m, w, out, ep, &mut apack, wide)
        }
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn linear_avx2(
    x: &[f32],
    m: usize,
    w: &PackedLinear,
    out: &mut [f32],
    ep: Epilogue,
    apack: &mut [f32],
    wide: bool,
) {
    let (k, n) = (w.k, w.n);
    let panels = n / NR;
    let wp = w.data.as_slice().as_ptr();
    let xp = x.as_ptr();
    let op = out.as_mut_ptr();
    let mut k0 = 0;
    while k0 < k {
        let kc = KC.min(k - k0);
        let first = k0 == 0;
        let last = k0 + kc == k;
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
                    let src: [*const f32; MR] = std::array::from_fn(|r| xp.add((i + r) * k + k0));
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
                for p in (0..panels - panels % 2).step_by(2) {
                    let b0 = wp.add(p * k * NR + k0 * NR);
                    let b1 = b0.add(k * NR);
                    let mut i = i0;
                    while i < i1 {
                        let rows = (2 * MR).min(i1 - i);
                        let c = op.add(i * n + p * NR);
                        let bias = if first {
                            w.bias.as_ptr().add(p * NR)
                        } else {
                            std::ptr::null()
                        };
                        let a = ap.add((i - i0) * kc);
                        let a1 = a.add(MR * kc);
                        avx512::tile_rows(rows, kc, a, a1, MR, b0, b1, c, n, bias);
                        if last {
                            finish_tile(rows, c, n, ep, i, p * NR);
                            finish_tile(rows, c.add(NR), n, ep, i, p * NR + NR);
                        }
                        i += rows;
                    }
                }
            }
            let narrow = if wide { panels - panels % 2 } else { 0 };
            for p in narrow..panels {
                let bp = wp.add(p * k * NR + k0 * NR);
                let mut i = i0;
                while i < i1 {
                    let rows = MR.min(i1 - i);
                    let a = ap.add((i - i0) * kc);
                    let c = op.add(i * n + p * NR);
                    let bias = if first {
                        w.bias.as_ptr().add(p * NR)
                    } else {
                        std::ptr::null()
                    };
                    tile_rows(rows, kc, a, MR, bp, c, n, bias);
                    if last {
                        finish_tile(rows, c, n, ep, i, p * NR);
                    }
                    i += rows;
                }
            }
            i0 = i1;
        }
        k0 += kc;
    }
}

/// Applies what `ep` adds besides the bias to the `rows x 16` output tile at `c` (row stride
/// `n`), whose first element is output `(i, col)`.
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
    match ep {
        Epilogue::Bias => {}
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

/// One `R x 16` tile over `kc` inputs (`a[kk * ak + r]`: packed `[kk][MR]` micro-panels have
/// `ak = MR`): `c = bias + a b` when `bias` is set, else `c += a b`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const R: usize>(
    kc: usize,
    a: *const f32,
    ak: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
) {
    let mut acc0 = [_mm256_setzero_ps(); R];
    let mut acc1 = [_mm256_setzero_ps(); R];
    let mut bp = b;
    for kk in 0..kc {
        let b0 = _mm256_load_ps(bp);
        let b1 = _mm256_load_ps(bp.add(8));
        for r in 0..R {
            let av = _mm256_broadcast_ss(&*a.add(kk * ak + r));
            acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
            acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
        }
        bp = bp.add(NR);
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

/// `exp(x)` on 8 lanes (Cephes polynomial, relative error ~1e-7; inputs below -87 give ~0).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn exp8(x: __m256) -> __m256 {
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
    let mut y = _mm256_set1_ps(1.987_569_1e-4);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.398_199_9e-3));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.333_452e-3));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.166_579_6e-2));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.666_666_5e-1));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(0.5));
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

/// `gelu(x) = x/2 (1 + erf(x / sqrt 2))` on 8 lanes, the exact (erf) form, not the tanh one.
/// erf is the rational approximation of Eigen and XLA (`z P(z^2) / Q(z^2)` on z clamped to
/// [-4, 4], absolute error below 2e-7), with no exp; the division is a reciprocal estimate
/// refined by one Newton step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn gelu8(x: __m256) -> __m256 {
    let z = _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let z = _mm256_min_ps(_mm256_max_ps(z, _mm256_set1_ps(-4.0)), _mm256_set1_ps(4.0));
    let z2 = _mm256_mul_ps(z, z);
    let mut p = _mm256_set1_ps(-2.726_142_3e-10);
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(2.770_681_4e-8));
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-2.101_024e-6));
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-5.692_506_4e-5));
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-7.349_906_3e-4));
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-2.9546e-3));
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-1.609_603_3e-2));
    p = _mm256_mul_ps(p, z);
    let mut q = _mm256_set1_ps(-1.456_607_2e-5);
    q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(-2.133_740_6e-4));
    q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(-1.682_827e-3));
    q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(-7.373_329e-3));
    q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(-1.426_473_9e-2));
    let r0 = _mm256_rcp_ps(q);
    let r = _mm256_mul_ps(r0, _mm256_fnmadd_ps(q, r0, _mm256_set1_ps(2.0)));
    let erf = _mm256_mul_ps(p, r);
    let half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5));
    _mm256_fmadd_ps(half_x, erf, half_x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn gelu_16(c: *mut f32) {
    _mm256_storeu_ps(c, gelu8(_mm256_loadu_ps(c)));
    _mm256_storeu_ps(c.add(8), gelu8(_mm256_loadu_ps(c.add(8))));
}

/// GELU (erf form) of every value, in place (a reference for tests; the encoder fuses it).
pub fn gelu_inplace(v: &mut [f32]) {
    assert!(available(), "AVX2 + FMA kernels on a CPU without them");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 + FMA checked; every access is inside `v`.
    unsafe {
        gelu_slice(v)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_slice(v: &mut [f32]) {
    let mut chunks = v.chunks_exact_mut(8);
    for c in &mut chunks {
        _mm256_storeu_ps(c.as_mut_ptr(), gelu8(_mm256_loadu_ps(c.as_ptr())));
    }
    let rest = chunks.into_remainder();
    let mut tmp = [0.0f32; 8];
    tmp[..rest.len()].copy_from_slice(rest);
    _mm256_storeu_ps(tmp.as_mut_ptr(), gelu8(_mm256_loadu_ps(tmp.as_ptr())));
    let n = rest.len();
    rest.copy_from_slice(&tmp[..n]);
}

/// Layer norm of each `width`-long row of `x`, in place: `(x - mean) / sqrt(var + eps) * g + b`.
pub fn layer_norm(x: &mut [f32], width: usize, g: &[f32], b: &[f32], eps: f32) {
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
        layer_norm_avx2(x, width, g, b, eps)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn layer_norm_avx2(x: &mut [f32], width: usize, g: &[f32], b: &[f32], eps: f32) {
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
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
/// `len` rows of `hidden`. Both products run on the matmul's 6 x 16 tile kernel. Scores are
/// computed transposed (`S^T = K Q^T`: keys down, queries across), so the softmax of each query
/// runs down a column, eight queries per vector, and `S^T`'s rows are already the
/// probabilities' micro-panels for `P V`. Head widths must be multiples of 16 (32 for
/// e5-small).
pub fn attention(
    qkv: &[f32],
    len: usize,
    hidden: usize,
    heads: usize,
    ctx: &mut [f32],
    s: &mut AttnScratch,
) {
    attention_on(qkv, len, hidden, heads, ctx, s, avx512::use_avx512());
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
    check_cpu(wide);
    let hd = hidden / heads;
    assert!(
        hd * heads == hidden && hd.is_multiple_of(NR),
        "head width {hd}"
    );
    assert_eq!(qkv.len(), len * 3 * hidden);
    assert_eq!(ctx.len(), len * hidden);
    let lq = len.div_ceil(NR) * NR;
    s.kt.resize(hd * len, 0.0);
    s.st.resize(len * lq, 0.0);
    let qp = aligned(&mut s.q, lq * hd);
    let vp = aligned(&mut s.v, len * hd);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: shapes checked above and buffers sized for them; the CPU checked by `check_cpu`.
    unsafe {
        attention_avx2(qkv, len, hidden, heads, ctx, s, qp, vp, wide)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn attention_avx2(
    qkv: &[f32],
    len: usize,
    hidden: usize,
    heads: usize,
    ctx: &mut [f32],
    s: &mut AttnScratch,
    qp: *mut f32,
    vp: *mut f32,
    wide: bool,
) {
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
        // context = P V: P's micro-panel for queries i0.. is S^T[j][i0..], stride lq
        let c = cp.add(h * hd);
        strided_matmul(len, len, st, lq, vp, len * NR, hd / NR, c, hidden, wide);
    }
}

/// `c (m x panels*16) = a b` for a small product: `a[kk * ak + r]` is row `r`'s `kk`-th value
/// (any stride between values, rows adjacent), `b` holds `panels` 16-column panels `[kk][16]`
/// `pstride` apart. With `wide`, pairs of panels go through AVX-512 12 x 32 tiles.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
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
                avx512::tile_rows(
                    rows,
                    kc,
                    ar,
                    ar.add(MR),
                    ak,
                    b0,
                    b0.add(pstride),
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
            tile_rows(
                rows,
                kc,
                a.add(r0),
                ak,
                b.add(p * pstride),
                cp,
                ldc,
                zeros.as_ptr(),
            );
        }
        r0 += rows;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rows(
    rows: usize,
    kc: usize,
    a: *const f32,
    ak: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
) {
    match rows {
        6 => tile::<6>(kc, a, ak, b, c, ldc, bias),
        5 => tile::<5>(kc, a, ak, b, c, ldc, bias),
        4 => tile::<4>(kc, a, ak, b, c, ldc, bias),
        3 => tile::<3>(kc, a, ak, b, c, ldc, bias),
        2 => tile::<2>(kc, a, ak, b, c, ldc, bias),
        _ => tile::<1>(kc, a, ak, b, c, ldc, bias),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` pseudo-random values in -0.5..0.5 (an LCG: the same for a seed everywhere).
    pub(crate) fn rnd(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// erf in f64: Taylor series for |x| <= 4, the asymptotic erfc series beyond (both exact
    /// to ~1e-10 there).
    fn erf_ref(x: f64) -> f64 {
        if x.abs() > 4.0 {
            let z = x.abs();
            let erfc = (-z * z).exp() / (z * std::f64::consts::PI.sqrt())
                * (1.0 - 1.0 / (2.0 * z * z) + 3.0 / (4.0 * z.powi(4)));
            return x.signum() * (1.0 - erfc);
        }
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    fn gelu_ref(x: f64) -> f64 {
        0.5 * x * (1.0 + erf_ref(x / std::f64::consts::SQRT_2))
    }

    #[test]
    fn linear_matches_a_plain_matmul_with_every_epilogue() {
        if !available() {
            eprintln!("SKIP: no AVX2 + FMA on this CPU");
            return;
        }
        // k below, at and above one K block; m with a partial micro-tile and MC block
        for &(m, k, n) in &[(13, 40, 32), (101, 384, 48), (7, 700, 16), (200, 1536, 64)] {
            let x = rnd(m * k, 1);
            let w = rnd(n * k, 2);
            let b = rnd(n, 3);
            let res = rnd(m * n, 4);
            let pl = PackedLinear::pack(&w, n, k, b.clone());
            let mut want = vec![0f64; m * n];
            for i in 0..m {
                for j in 0..n {
                    let mut s = b[j] as f64;
                    for kk in 0..k {
                        s += x[i * k + kk] as f64 * w[j * k + kk] as f64;
                    }
                    want[i * n + j] = s;
                }
            }
            let tol = 1e-5 * (k as f64).sqrt();
            let mut out = vec![0f32; m * n];
            for ep in [
                Epilogue::Bias,
                Epilogue::BiasGelu,
                Epilogue::BiasResidual(&res),
            ] {
                out.iter_mut().for_each(|o| *o = f32::NAN);
                linear(&x, m, &pl, &mut out, ep);
                for (idx, (&o, &wv)) in out.iter().zip(&want).enumerate() {
                    let e = match ep {
                        Epilogue::Bias => wv,
                        Epilogue::BiasGelu => gelu_ref(wv),
                        Epilogue::BiasResidual(r) => wv + r[idx] as f64,
                    };
                    assert!(
                        (o as f64 - e).abs() < tol,
                        "m{m} k{k} n{n} [{idx}]: {o} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn gelu_is_the_erf_form_to_float_precision() {
        if !available() {
            eprintln!("SKIP: no AVX2 + FMA on this CPU");
            return;
        }
        let xs: Vec<f32> = (-600..=600).map(|i| i as f32 / 100.0).collect();
        let mut ys = xs.clone();
        gelu_inplace(&mut ys);
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = gelu_ref(x as f64);
            assert!(
                (y as f64 - want).abs() < 3e-7 * (1.0 + x.abs() as f64),
                "gelu({x}) = {y}, want {want}"
            );
        }
        // tanh-approximate GELU differs by ~1e-4 here: this is the exact form
        assert!((ys[600 + 100] as f64 - gelu_ref(1.0)).abs() < 1e-7);
    }

    #[test]
    fn layer_norm_matches_the_definition() {
        if !available() {
            return;
        }
        let w = 48;
        let mut x = rnd(3 * w, 5);
        let g = rnd(w, 6);
        let b = rnd(w, 7);
        let orig = x.clone();
        layer_norm(&mut x, w, &g, &b, 1e-12);
        for r in 0..3 {
            let row = &orig[r * w..(r + 1) * w];
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / w as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / w as f64;
            for j in 0..w {
                let want =
                    (row[j] as f64 - mean) / (var + 1e-12).sqrt() * g[j] as f64 + b[j] as f64;
                assert!((x[r * w + j] as f64 - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn attention_matches_softmax_of_scaled_dot_products() {
        if !available() {
            return;
        }
        let (hidden, heads) = (64, 2); // head width 32, as e5-small
        let hd = hidden / heads;
        let mut s = AttnScratch::default();
        for len in [1usize, 5, 6, 17, 40] {
            let qkv: Vec<f32> = rnd(len * 3 * hidden, len as u64)
                .iter()
                .map(|v| v * 4.0)
                .collect();
            let mut ctx = vec![f32::NAN; len * hidden];
            attention(&qkv, len, hidden, heads, &mut ctx, &mut s);
            let at = |i: usize, part: usize, h: usize, d: usize| {
                qkv[i * 3 * hidden + part * hidden + h * hd + d] as f64
            };
            for h in 0..heads {
                for i in 0..len {
                    let sc: Vec<f64> = (0..len)
                        .map(|j| {
                            (0..hd)
                                .map(|d| at(i, 0, h, d) * at(j, 1, h, d))
                                .sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                        .collect();
                    let mx = sc.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = sc.iter().map(|v| (v - mx).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for d in 0..hd {
                        let want: f64 = (0..len).map(|j| e[j] / z * at(j, 2, h, d)).sum();
                        let got = ctx[i * hidden + h * hd + d] as f64;
                        assert!(
                            (got - want).abs() < 1e-5,
                            "len {len} head {h} row {i} d {d}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
