//! Int8 linear layers of the packed encoder (`--engine int8`).
//!
//! Weights are quantized once at load time: symmetric, 8 bits (-127..=127), one scale per
//! output column. Activations are quantized per row on the fly: asymmetric, 7 bits (0..=127)
//! with a zero point, over the row's range (widened to include 0). The products run on AVX2's
//! `vpmaddubsw`, u8 x i8 pairs summed into i16, widened by `vpmaddwd` into i32 accumulators:
//! 32 multiply-adds in two instructions, twice what one f32 FMA does. One pass over all of K
//! per tile. The tile's last step takes away the zero point's share (`zp x column sum`), scales
//! back to f32, adds the bias, and runs the same epilogues as the f32 kernel (GELU, residual).
//!
//! Outliers: a row's quantization step is set by its range, and a few channels of BERT's
//! activations run 10 to 30 times larger than the rest (the layer norms' outlier dimensions,
//! single GELU outputs). Each row's [`OUTLIERS`] largest-magnitude values are therefore taken
//! out before the row is quantized (their codes become the zero point, so they add nothing to
//! the integer sums) and multiplied in f32 against their channels' (dequantized) weights in the
//! tile's last step: LLM.int8's decomposition, with the outliers chosen per row at run time, so
//! no calibration data is needed. Those products use the same int8 weights, from a transposed
//! copy (`k x n`, one input's weights to every output contiguous, 1 byte a weight): an outlier
//! costs a broadcast, two sign-extending loads, two conversions and two FMAs per 16 outputs.
//! (Reading them from the tile's panel instead, sign-extended in place, cost twice the uops;
//! an f32 copy was slower still, from its 4x larger footprint: benches/README.md.)
//!
//! `vpmaddubsw` saturates its i16 pair sums: with 7-bit activations and 8-bit weights the
//! largest is 2 x 127 x 127 = 32,258, so it never does. (Once the outliers are out, the weights
//! carry most of the error, so they get the eighth bit.)
//!
//! On CPUs with AVX-512 VNNI the tiles are [`avx512`](super::avx512)'s 12 x 32 ones:
//! `vpdpbusd` adds a group's four u8 x i8 products into i32 in one instruction, exactly the
//! integers the AVX2 pair gives, so the output is the same bit for bit.

use super::amx::{self, Tiles};
use super::packed::{check_call, check_weight, finish_tile, Epilogue, MR, NR};
use super::avx512;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Largest weight magnitude after quantization (8 bits; no i16 saturation, see the module).
pub const QMAX_W: i32 = 127;
/// Largest activation code (7 bits; see the module).
pub const QMAX_A: i32 = 127;
/// Values per row taken out of the quantization by the encoder's int8 layers (see the module;
/// 8 measured best: benches/README.md).
pub const OUTLIERS: usize = 8;
/// Rows of quantized activations kept in L2 while every weight panel passes over them.
const MC: usize = 96;

/// A weight matrix quantized to i8, packed as panels of [`NR`] output columns. Inside panel
/// `p`, group `g` of four inputs holds 64 bytes: columns 0..8 then 8..16, each as the four
/// weights of inputs `4g .. 4g+4`, so one 32-byte load feeds `vpmaddubsw` for 8 columns.
pub struct QLinear {
    /// Inputs (K).
    pub k: usize,
    /// K rounded up to a multiple of 4 (the padding weights are 0).
    kp: usize,
    /// Outputs (N, a multiple of 16).
    pub n: usize,
    data: Vec<i8>,
    /// Per-column scale: weight = scale x q.
    scale: Vec<f32>,
    /// Per-column sum of the quantized weights (the zero point's correction).
    colsum: Vec<i32>,
    /// Bias, length N.
    pub bias: Vec<f32>,
    /// Values per row taken out of the quantization and multiplied in f32 (see the module).
    pub outliers: usize,
    /// The quantized weights again, transposed (`k x n`: row `c` holds input `c`'s weights to
    /// every output, contiguous), for the outliers' products; empty without outliers.
    wt: Vec<i8>,
}

impl QLinear {
    /// Quantizes `w` (row-major `n x k`, PyTorch `Linear.weight`) with `bias` (length n);
    /// each row's `outliers` largest inputs run in f32 (see the module).
    pub fn quantize(w: &[f32], n: usize, k: usize, bias: Vec<f32>, outliers: usize) -> QLinear {
        check_weight(w, n, k, &bias);
        let kp = k.div_ceil(4) * 4;
        // (slack: an AMX B tile may read past K into the next panel, see `amx`)
        let mut data = vec![0i8; n * kp + amx::B_SLACK];
        let mut scale = vec![1f32; n];
        let mut colsum = vec![0i32; n];
        let outliers = outliers.min(k);
        // the transposed copy for the outliers' products (see `QLinear::wt`)
        let mut wt = vec![0i8; if outliers > 0 { k * n } else { 0 }];
        for j in 0..n {
            let row = &w[j * k..(j + 1) * k];
            let amax = row.iter().fold(0f32, |m, &v| m.max(v.abs()));
            if amax > 0.0 {
                scale[j] = amax / QMAX_W as f32;
            }
            let (p, half, col) = (j / NR, (j % NR) / 8, j % 8);
            for (kk, &v) in row.iter().enumerate() {
                let q = (v / scale[j]).round().clamp(-QMAX_W as f32, QMAX_W as f32) as i32;
                colsum[j] += q;
                data[p * kp * NR + (kk / 4) * 64 + half * 32 + col * 4 + kk % 4] = q as i8;
                if outliers > 0 {
                    wt[kk * n + j] = q as i8;
                }
            }
        }
        QLinear {
            k,
            kp,
            n,
            data,
            scale,
            colsum,
            bias,
            outliers,
            wt,
        }
    }

    /// K rounded up to a multiple of 4: one panel holds `kp * 16` bytes.
    pub(super) fn kp(&self) -> usize {
        self.kp
    }

    /// The packed panels (see [`QLinear`]), followed by [`amx::B_SLACK`] zero bytes.
    pub(super) fn data_ptr(&self) -> *const i8 {
        self.data.as_ptr()
    }

    /// The per-column scales (length N).
    pub(super) fn scale_ptr(&self) -> *const f32 {
        self.scale.as_ptr()
    }

    /// The per-column sums of the quantized weights (length N).
    pub(super) fn colsum_ptr(&self) -> *const i32 {
        self.colsum.as_ptr()
    }

    /// The transposed weights (`k x n`; empty without outliers).
    pub(super) fn wt_ptr(&self) -> *const i8 {
        self.wt.as_ptr()
    }

    /// The weights as the kernel sees them (dequantized), row-major `n x k`.
    pub fn dequantized(&self) -> Vec<f32> {
        let mut w = vec![0f32; self.n * self.k];
        for j in 0..self.n {
            let (p, half, col) = (j / NR, (j % NR) / 8, j % 8);
            for kk in 0..self.k {
                let q = self.data[p * self.kp * NR + (kk / 4) * 64 + half * 32 + col * 4 + kk % 4];
                w[j * self.k + kk] = q as f32 * self.scale[j];
            }
        }
        w
    }
}

/// One row's activation quantization: `x ~ scale x (q - zero)`, `q` in 0..=[`QMAX_A`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowQuant {
    /// Step between two codes.
    pub scale: f32,
    /// The code of 0.0.
    pub zero: i32,
}

impl RowQuant {
    /// The quantization of a row whose values lie in `lo..=hi` (the range is widened to 0).
    pub fn of_range(lo: f32, hi: f32) -> RowQuant {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = if hi > lo {
            (hi - lo) / QMAX_A as f32
        } else {
            1.0
        };
        let zero = (-lo / scale).round().clamp(0.0, QMAX_A as f32) as i32;
        RowQuant { scale, zero }
    }

    /// The code of `v` (round half to even, as `vcvtps2dq` does).
    pub fn code(&self, v: f32) -> u8 {
        let inv = 1.0 / self.scale;
        ((v * inv).round_ties_even() as i32 + self.zero).clamp(0, QMAX_A) as u8
    }
}

/// Per-thread buffers of [`qlinear`]: packed codes of an MC-row block, the rows' scales and
/// zero points, and their outliers (input index and value).
#[derive(Default)]
struct QScratch {
    codes: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<i32>,
    oidx: Vec<u32>,
    oval: Vec<f32>,
}

thread_local! {
    static QPACK: std::cell::RefCell<QScratch> = std::cell::RefCell::new(QScratch::default());
}

/// `out (m x n) = epilogue(x (m x k) W^T + b)` with `W` quantized, all row-major, on the
/// process's tiles ([`amx::int8_tiles`]).
pub fn qlinear(x: &[f32], m: usize, w: &QLinear, out: &mut [f32], ep: Epilogue) {
    qlinear_on(x, m, w, out, ep, amx::int8_tiles());
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
    check_call(x, m, w.k, w.n, out, ep, tiles != Tiles::Avx2);
    if tiles == Tiles::Amx {
        assert!(amx::amx_ready().is_ok(), "AMX tiles where they do not run");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AMX checked above (with AVX-512 VNNI and the tile state), shapes by
        // `check_call`.
        unsafe {
            amx::qlinear_amx(x, m, w, out, ep)
        };
        return;
    }
    let wide = tiles == Tiles::Vnni;
    QPACK.with(|cell| {
        let mut s = cell.borrow_mut();
        let s = &mut *s;
        if s.codes.len() < MC * w.kp {
            s.codes.resize(MC * w.kp, 0);
        }
        s.scale.resize(MC, 1.0);
        s.zero.resize(MC, 0);
        s.oidx.resize(MC * w.outliers, 0);
        s.oval.resize(MC * w.outliers, 0.0);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: shapes and the CPU (AVX2 + FMA, AVX-512 VNNI when `wide`) checked by
        // `check_call`; the buffers hold an MC-row block.
        unsafe {
            qlinear_avx2(x, m, w, out, ep, s, wide)
        }
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn qlinear_avx2(
    x: &[f32],
    m: usize,
    w: &QLinear,
    out: &mut [f32],
    ep: Epilogue,
    s: &mut QScratch,
    wide: bool,
) {
    let (k, kp, n) = (w.k, w.kp, w.n);
    let groups = kp / 4;
    let op = out.as_mut_ptr();
    let mut i0 = 0;
    while i0 < m {
        let i1 = (i0 + MC).min(m);
        let no = w.outliers;
        for r in 0..i1 - i0 {
            let q = quantize_row(
                &x[(i0 + r) * k..(i0 + r + 1) * k],
                kp,
                wide,
                s.codes
                    .as_mut_ptr()
                    .add(((r / MR) * groups * MR + r % MR) * 4),
                &mut s.oidx[r * no..(r + 1) * no],
                &mut s.oval[r * no..(r + 1) * no],
            );
            s.scale[r] = q.scale;
            s.zero[r] = q.zero;
        }
        let panels = n / NR;
        let pairs = if wide { panels / 2 } else { 0 };
        for p in 0..pairs {
            // AVX-512: 12 x 32 tiles on two panels
            let col = 2 * p * NR;
            let mut i = i0;
            while i < i1 {
                let rows = (2 * MR).min(i1 - i);
                let r = i - i0;
                let c = op.add(i * n + col);
                let t = tile_at(w, s, col, r, c);
                avx512::qtile_rows(rows, &t);
                finish_tile(rows, c, n, ep, i, col);
                finish_tile(rows, c.add(NR), n, ep, i, col + NR);
                i += rows;
            }
        }
        for p in 2 * pairs..panels {
            let col = p * NR;
            let mut i = i0;
            while i < i1 {
                let rows = MR.min(i1 - i);
                let r = i - i0;
                let c = op.add(i * n + col);
                let t = tile_at(w, s, col, r, c);
                match rows {
                    6 => qtile::<6>(&t),
                    5 => qtile::<5>(&t),
                    4 => qtile::<4>(&t),
                    3 => qtile::<3>(&t),
                    2 => qtile::<2>(&t),
                    _ => qtile::<1>(&t),
                }
                finish_tile(rows, c, n, ep, i, col);
                i += rows;
            }
        }
        i0 = i1;
    }
}

/// Quantizes one row to u8 codes written in the micro-panel layout: the four codes of inputs
/// `4g .. 4g+4` at `dst + g * MR * 4` (inputs `k..kp` get code 0, against zero weights). The
/// row's `idx.len()` largest values are its outliers: written to `idx` / `val`, left out of
/// the range, and given the zero point's code, so that they add nothing to the integer sums.
/// `wide`: the CPU has AVX-512 (the outliers are searched 16 lanes a step, same result).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row(
    row: &[f32],
    kp: usize,
    wide: bool,
    dst: *mut u8,
    idx: &mut [u32],
    val: &mut [f32],
) -> RowQuant {
    let (lo, hi) = if idx.is_empty() {
        min_max(row)
    } else if wide {
        // SAFETY: `wide` only where the CPU has AVX-512 (checked by `check_call`).
        take_outliers512(row, idx, val)
    } else {
        take_outliers(row, idx, val)
    };
    let q = RowQuant::of_range(lo, hi);
    write_codes(row, kp, dst, q);
    for &c in idx.iter() {
        let c = c as usize;
        *dst.add((c / 4) * MR * 4 + c % 4) = q.zero as u8;
    }
    q
}

/// [`quantize_row`] for the AMX tiles: the codes row-major at `dst` (inputs `k..kpa` get
/// code 0), the same codes as [`write_codes`] (AVX-512, 16 values a step).
///
/// # Safety
/// AVX-512 F and BW, AVX2 and FMA present; `dst` holds `kpa >= row.len()` bytes; `idx` and
/// `val` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
pub(super) unsafe fn quantize_row_major(
    row: &[f32],
    kpa: usize,
    dst: *mut u8,
    idx: &mut [u32],
    val: &mut [f32],
) -> RowQuant {
    let (lo, hi) = if idx.is_empty() {
        min_max(row)
    } else {
        take_outliers512(row, idx, val)
    };
    let q = RowQuant::of_range(lo, hi);
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
    for &c in idx.iter() {
        *dst.add(c as usize) = q.zero as u8;
    }
    q
}

/// The operands of the tile whose first row is row `r` of the block in `s` and whose first
/// column is `col` (a multiple of 16), writing to `c`.
///
/// # Safety
/// `s` holds the block's quantized rows, `col < w.n`, `c` points into the output.
unsafe fn tile_at(w: &QLinear, s: &QScratch, col: usize, r: usize, c: *mut f32) -> QTile {
    let groups = w.kp / 4;
    let no = w.outliers;
    QTile {
        groups,
        a: s.codes.as_ptr().add((r / MR) * groups * MR * 4),
        b: w.data.as_ptr().add(col * w.kp),
        c,
        ldc: w.n,
        row_scale: s.scale.as_ptr().add(r),
        row_zero: s.zero.as_ptr().add(r),
        col_scale: w.scale.as_ptr().add(col),
        col_sum: w.colsum.as_ptr().add(col),
        bias: w.bias.as_ptr().add(col),
        outliers: no,
        wt: w.wt.as_ptr().wrapping_add(col),
        oidx: s.oidx.as_ptr().add(r * no),
        oval: s.oval.as_ptr().add(r * no),
    }
}

/// The smallest and largest value of `row`, widened to include 0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn min_max(row: &[f32]) -> (f32, f32) {
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

/// Writes the codes of `row` under `q` in the micro-panel layout (see [`quantize_row`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn write_codes(row: &[f32], kp: usize, dst: *mut u8, q: RowQuant) {
    let k = row.len();
    let k8 = k / 8 * 8;
    let p = row.as_ptr();
    let inv = _mm256_set1_ps(1.0 / q.scale);
    let zero = _mm256_set1_epi32(q.zero);
    let (min, max) = (_mm256_setzero_si256(), _mm256_set1_epi32(QMAX_A));
    // byte 0 of each i32 to the low four bytes of each 128-bit lane
    let pick = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1,
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

/// The operands of one `R x 16` int8 tile (`R x 32` on AVX-512: two panels).
pub(super) struct QTile {
    pub(super) groups: usize,
    pub(super) a: *const u8,
    pub(super) b: *const i8,
    pub(super) c: *mut f32,
    pub(super) ldc: usize,
    pub(super) row_scale: *const f32,
    pub(super) row_zero: *const i32,
    pub(super) col_scale: *const f32,
    pub(super) col_sum: *const i32,
    pub(super) bias: *const f32,
    /// Outliers per row and their input indices and values (`R x outliers`).
    pub(super) outliers: usize,
    /// The transposed int8 weights of the tile's first column for input 0 (row stride `ldc`,
    /// see [`QLinear`]).
    pub(super) wt: *const i8,
    pub(super) oidx: *const u32,
    pub(super) oval: *const f32,
}

/// `c = col_scale x (row_scale x (a b - zero x col_sum) + outliers x b[outliers]) + bias` for
/// one `R x 16` tile over all of K.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn qtile<const R: usize>(t: &QTile) {
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

/// 8-value chunks of a row whose candidate flags [`take_outliers`] keeps on the stack (rows
/// up to 4,096 values, BERT-large's widest, go through its vector pass).
const MAX_CHUNKS: usize = 512;

/// [`largest`] and the range of the other values, widened to include 0, in two passes: the
/// `t`-th largest of 32 buckets' maxima bounds the `t`-th largest magnitude from below,
/// so only the values at or above it (a few) go through the insertion; the values below it
/// are in the range, and so is each candidate the insertion turns away or pushes out.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn take_outliers(row: &[f32], idx: &mut [u32], val: &mut [f32]) -> (f32, f32) {
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

/// [`take_outliers`] 16 lanes a step on AVX-512 (the same buckets' bound from 32 buckets
/// in two registers, the same candidates in the same order): the same outliers and range.
///
/// # Safety
/// AVX-512 F and BW, AVX2 and FMA present; `idx` and `val` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
pub(super) unsafe fn take_outliers512(row: &[f32], idx: &mut [u32], val: &mut [f32]) -> (f32, f32) {
    let (k, t) = (row.len(), idx.len());
    if t > 8 || !(16..=MAX_CHUNKS * 8).contains(&k) {
        return take_outliers(row, idx, val);
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
    // the t-th largest bucket maximum (see `take_outliers`), two mask compares per bucket
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
    (lo, hi)
}

/// The `idx.len()` values of `row` largest in magnitude, largest first (the first of equals),
/// written to `idx` (their inputs) and `val`.
pub fn largest(row: &[f32], idx: &mut [u32], val: &mut [f32]) {
    if idx.is_empty() {
        return;
    }
    let mut top = Top::new(idx, val);
    for (i, &v) in row.iter().enumerate() {
        let _ = top.insert(i, v);
    }
}

/// The largest magnitudes seen so far, sorted by (magnitude down, index up).
struct Top<'a> {
    idx: &'a mut [u32],
    val: &'a mut [f32],
    filled: usize,
}

impl<'a> Top<'a> {
    fn new(idx: &'a mut [u32], val: &'a mut [f32]) -> Top<'a> {
        Top {
            idx,
            val,
            filled: 0,
        }
    }

    /// Offers value `v` of input `i`; returns the value that is out: `v` itself when it is
    /// not among the largest, the one it pushes out, or none while places are free.
    fn insert(&mut self, i: usize, v: f32) -> Option<f32> {
        let (t, a) = (self.idx.len(), v.abs());
        if self.filled == t && a <= self.val[t - 1].abs() {
            return Some(v);
        }
        let gone = (self.filled == t).then(|| self.val[t - 1]);
        let mut q = self.filled.min(t - 1);
        while q > 0 && a > self.val[q - 1].abs() {
            self.idx[q] = self.idx[q - 1];
            self.val[q] = self.val[q - 1];
            q -= 1;
        }
        self.idx[q] = i as u32;
        self.val[q] = v;
        self.filled = (self.filled + 1).min(t);
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::super::packed::tests::rnd;
    use super::*;
    use crate::encode::kernels::packed::available;

    #[test]
    fn qlinear_is_the_exact_product_of_the_quantized_operands() {
        if !available() {
            eprintln!("SKIP: no AVX2 + FMA + F16C on this CPU");
            return;
        }
        // k not a multiple of 8 or 4, a partial micro-tile, more than one MC block; with and
        // without outliers taken out of the quantization
        let shapes = [(13, 42, 32), (101, 384, 48), (7, 37, 16), (200, 1536, 64)];
        for (&(m, k, n), outliers) in shapes.iter().zip([0, 4, 3, 8]) {
            let mut x = rnd(m * k, 1);
            // one row all positive (zero point 0), one all negative (zero point 255)
            x[..k].iter_mut().for_each(|v| *v = v.abs() + 0.1);
            x[k..2 * k].iter_mut().for_each(|v| *v = -v.abs() - 0.1);
            // outlier channels, as BERT's layer norms make them
            for i in 2..m {
                x[i * k + 5] *= 30.0;
                x[i * k + k / 2] *= -20.0;
            }
            let w = rnd(n * k, 2);
            let b = rnd(n, 3);
            let q = QLinear::quantize(&w, n, k, b.clone(), outliers);
            let wq = q.dequantized();
            let mut out = vec![f32::NAN; m * n];
            qlinear(&x, m, &q, &mut out, Epilogue::Bias);
            let (mut err, mut err_plain) = (0f64, 0f64);
            for i in 0..m {
                let row = &x[i * k..(i + 1) * k];
                let mut idx = vec![0u32; outliers];
                let mut val = vec![0f32; outliers];
                largest(row, &mut idx, &mut val);
                let out_of = |kk: usize| idx.contains(&(kk as u32));
                let (lo, hi) = row
                    .iter()
                    .enumerate()
                    .filter(|&(kk, _)| !out_of(kk))
                    .fold((0f32, 0f32), |(l, h), (_, &v)| (l.min(v), h.max(v)));
                let rq = RowQuant::of_range(lo, hi);
                let (plo, phi) = row
                    .iter()
                    .fold((0f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
                let plain = RowQuant::of_range(plo, phi);
                for j in 0..n {
                    // exact: the quantized operands' product, the outliers' in f32 against
                    // the dequantized weights; bound: the quantization error
                    let (mut exact, mut truth, mut bound) = (b[j] as f64, b[j] as f64, 0f64);
                    let mut with_plain = b[j] as f64;
                    for kk in 0..k {
                        let xv = row[kk] as f64;
                        truth += xv * w[j * k + kk] as f64;
                        with_plain += plain.scale as f64
                            * (plain.code(row[kk]) as f64 - plain.zero as f64)
                            * wq[j * k + kk] as f64;
                        if out_of(kk) {
                            let wo = wq[j * k + kk] as f64;
                            exact += xv * wo;
                            bound += xv.abs() * (wo - w[j * k + kk] as f64).abs();
                            continue;
                        }
                        let xq = rq.scale as f64 * (rq.code(row[kk]) as f64 - rq.zero as f64);
                        exact += xq * wq[j * k + kk] as f64;
                        bound += xv.abs() * q.scale[j] as f64 / 2.0
                            + wq[j * k + kk].abs() as f64 * rq.scale as f64 / 2.0;
                    }
                    let o = out[i * n + j] as f64;
                    assert!(
                        (o - exact).abs() < 1e-4 * (1.0 + exact.abs()),
                        "m{m} k{k} n{n} [{i},{j}]: {o} vs exact {exact}"
                    );
                    assert!(
                        (o - truth).abs() <= bound * 1.001 + 1e-5,
                        "m{m} k{k} n{n} [{i},{j}]: {o} vs {truth}, bound {bound}"
                    );
                    err += (o - truth).powi(2);
                    err_plain += (with_plain - truth).powi(2);
                }
            }
            if outliers > 0 {
                // taking the outliers out cuts the error several times over
                assert!(
                    err * 9.0 < err_plain,
                    "m{m} k{k} n{n}: squared error {err} against {err_plain} without"
                );
            }
            // the epilogues are the f32 kernel's
            let res = rnd(m * n, 4);
            let mut with_res = vec![0f32; m * n];
            qlinear(&x, m, &q, &mut with_res, Epilogue::BiasResidual(&res));
            for idx in 0..m * n {
                assert!((with_res[idx] - (out[idx] + res[idx])).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn largest_keeps_the_top_magnitudes_in_order() {
        let row = [0.5, -3.0, 2.0, 0.0, 3.0, -0.1, 7.0];
        let (mut idx, mut val) = ([0u32; 3], [0f32; 3]);
        largest(&row, &mut idx, &mut val);
        assert_eq!(idx, [6, 1, 4]);
        assert_eq!(val, [7.0, -3.0, 3.0]);
        let (mut idx, mut val) = ([9u32; 2], [9f32; 2]);
        largest(&[0.0; 5], &mut idx, &mut val);
        assert_eq!((idx, val), ([0, 1], [0.0, 0.0]));
        if !available() {
            return;
        }
        // the vectorised search finds the same, ties and tails included
        for (case, &k) in [8usize, 13, 16, 17, 47, 384, 1536, 1541].iter().enumerate() {
            let mut row = rnd(k, 10 + case as u64);
            row[k - 1] = 9.0;
            row[3] = -9.0;
            for t in [1, 3, 8] {
                let (mut i1, mut v1) = (vec![0u32; t], vec![0f32; t]);
                let (mut i2, mut v2) = (vec![0u32; t], vec![0f32; t]);
                largest(&row, &mut i1, &mut v1);
                // SAFETY: AVX2 + FMA checked above.
                let range = unsafe { take_outliers(&row, &mut i2, &mut v2) };
                assert_eq!((&i1, &v1), (&i2, &v2), "k {k} t {t}");
                if crate::encode::kernels::avx512::has_avx512() {
                    let (mut i3, mut v3) = (vec![0u32; t], vec![0f32; t]);
                    // SAFETY: AVX-512 checked just above.
                    let range512 = unsafe { take_outliers512(&row, &mut i3, &mut v3) };
                    assert_eq!((&i1, &v1, range), (&i3, &v3, range512), "k {k} t {t} (512)");
                }
                let rest = row
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !i1.contains(&(*i as u32)))
                    .fold((0f32, 0f32), |(l, h), (_, &v)| (l.min(v), h.max(v)));
                assert_eq!(range, rest, "k {k} t {t}");
                assert_eq!(i1[..2.min(t)], [3, k as u32 - 1][..2.min(t)]);
            }
        }
    }

    #[test]
    fn codes_keep_their_range_and_the_extremes() {
        let w = [0.5, -1.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0];
        let q = QLinear::quantize(&w.repeat(16), 16, 8, vec![0.0; 16], 0);
        let d = q.dequantized();
        assert_eq!(d[1], -1.0);
        assert!((d[0] - 0.5).abs() <= 1.0 / (2 * QMAX_W) as f32);
        assert!(q.data.iter().all(|&v| (v as i32).abs() <= QMAX_W));
        assert_eq!(RowQuant::of_range(0.0, 0.0).scale, 1.0);
        let rq = RowQuant::of_range(-1.0, 3.0);
        assert_eq!(rq.code(-1.0), 0);
        assert_eq!(rq.code(3.0) as i32, QMAX_A);
        // the largest pair sum of `vpmaddubsw` stays inside i16
        assert!(2 * QMAX_A * QMAX_W <= i16::MAX as i32);
        assert_eq!(rq.code(0.0) as i32, rq.zero);
    }
}
