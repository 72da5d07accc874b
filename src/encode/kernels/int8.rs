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
//! On CPUs with AVX-512 VNNI the tiles are [`avx512`]'s 12 x 32 ones:
//! `vpdpbusd` adds a group's four u8 x i8 products into i32 in one instruction, exactly the
//! integers the AVX2 pair gives, so the output is the same bit for bit.
//!
//! This file holds the int8 layout ([`QLinear`]) and the drivers: rows quantized block after
//! block, then the tiles of [`avx2`], [`avx512`] or
//! [`amx`] over them, then the f32 epilogue. The AMX blocks (`tdpbusd`, see
//! there) read the same panels, with the activations' codes row-major instead.

use super::common::{QTile, RowQuant, QMAX_W};
use super::cpu::{check_weight, Epilogue, Tiles, B_SLACK, MR, NR, QMC as MC};
use super::{amx, avx2, avx512};

/// Values per row taken out of the quantization by the encoder's int8 layers (see the module;
/// 8 measured best: benches/README.md).
pub const OUTLIERS: usize = 8;

/// A weight matrix quantized to i8, packed as panels of [`NR`] output columns. Inside panel
/// `p`, group `g` of four inputs holds 64 bytes: columns 0..8 then 8..16, each as the four
/// weights of inputs `4g .. 4g+4`, so one 32-byte load feeds `vpmaddubsw` for 8 columns.
pub struct QLinear {
    /// Inputs (K).
    pub k: usize,
    /// K rounded up to a multiple of 4 (the padding weights are 0).
    pub(super) kp: usize,
    /// Outputs (N, a multiple of 16).
    pub n: usize,
    pub(super) data: Vec<i8>,
    /// Per-column scale: weight = scale x q.
    pub(super) scale: Vec<f32>,
    /// Per-column sum of the quantized weights (the zero point's correction).
    pub(super) colsum: Vec<i32>,
    /// Bias, length N.
    pub bias: Vec<f32>,
    /// Values per row taken out of the quantization and multiplied in f32 (see the module).
    pub outliers: usize,
    /// The quantized weights again, transposed (`k x n`: row `c` holds input `c`'s weights to
    /// every output, contiguous), for the outliers' products; empty without outliers.
    pub(super) wt: Vec<i8>,
}

impl QLinear {
    /// Quantizes `w` (row-major `n x k`, PyTorch `Linear.weight`) with `bias` (length n);
    /// each row's `outliers` largest inputs run in f32 (see the module).
    pub fn quantize(w: &[f32], n: usize, k: usize, bias: Vec<f32>, outliers: usize) -> QLinear {
        check_weight(w, n, k, &bias);
        let kp = k.div_ceil(4) * 4;
        // (slack: an AMX B tile may read past K into the next panel, see `amx`)
        let mut data = vec![0i8; n * kp + B_SLACK];
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

    /// The weights as the kernel sees them (dequantized), row-major `n x k`.
    #[cfg(test)]
    pub(super) fn dequantized(&self) -> Vec<f32> {
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

/// `out (m x n) = epilogue(x (m x k) W^T + b)` with `W` quantized, all row-major, on the
/// given tiles. All three give the same output bits.
///
/// # Safety
/// The CPU runs `tiles` (AVX2 + FMA; AVX-512 F, BW and VNNI for `Vnni`; `cpu::amx_ready`
/// `Ok` for `Amx`); `x` is `m x w.k`, `out` (and a residual in `ep`) `m x w.n`
/// (`cpu::check_call` and the safe entry point check all of this).
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn qlinear(
    x: &[f32],
    m: usize,
    w: &QLinear,
    out: &mut [f32],
    ep: Epilogue,
    tiles: Tiles,
) {
    if tiles == Tiles::Amx {
        return SCRATCH.with(|cell| {
            let mut s = cell.borrow_mut();
            // SAFETY: AMX, AVX-512 VNNI and the tile state, and the shapes, as this function's
            // contract.
            unsafe { qlinear_amx(x, m, w, out, ep, &mut s) }
        });
    }
    // SAFETY: the CPU (AVX2 + FMA, AVX-512 VNNI for `Vnni`) and the shapes as this function's
    // contract; every panel, into the whole of `out`.
    unsafe { qlinear_panels(x, m, w, out.as_mut_ptr(), ep, tiles, 0..w.n / NR) }
}

/// [`qlinear`] on the AVX2 or VNNI tiles (not AMX) for the output columns of the weight panels
/// `panels` only: each of several threads can compute its own columns of one product (every
/// thread quantizes all the rows, the same codes). The values written are those [`qlinear`]
/// writes there.
///
/// # Safety
/// As [`qlinear`]'s with `tiles` `Avx2` or `Vnni`, `out` pointing at the `m x w.n` output (and
/// a residual in `ep` that long); `panels` within `0..w.n / NR`, starting at an even panel on
/// `Vnni`; no other thread touches these columns of `out` during the call.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn qlinear_panels(
    x: &[f32],
    m: usize,
    w: &QLinear,
    out: *mut f32,
    ep: Epilogue,
    tiles: Tiles,
    panels: std::ops::Range<usize>,
) {
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
        // SAFETY: as this function's contract; the buffers hold an MC-row block.
        unsafe { qlinear_simd(x, m, w, out, ep, s, wide, panels) }
    })
}

/// The body of [`qlinear`] on the AVX2 tiles, or the AVX-512 VNNI ones when `wide` (with
/// AVX2's for an odd last panel).
///
/// # Safety
/// As [`qlinear_panels`]'s, and `s` holds an MC-row block for `w`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn qlinear_simd(
    x: &[f32],
    m: usize,
    w: &QLinear,
    out: *mut f32,
    ep: Epilogue,
    s: &mut QScratch,
    wide: bool,
    panels: std::ops::Range<usize>,
) {
    // SAFETY: the CPU as the contract requires; rows of `x` are sliced (bounds-checked), the
    // codes of an MC-row block fit `s` (sized by `qlinear`), and each tile's operands
    // (`tile_at`) point at whole panels of `w` and rows of the block, its output inside `out`.
    unsafe {
        let (k, kp, n) = (w.k, w.kp, w.n);
        let groups = kp / 4;
        let op = out;
        let (p0, p1) = (panels.start, panels.end);
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
            let pairs = if wide { (p1 - p0) / 2 } else { 0 };
            for p in 0..pairs {
                // AVX-512: 12 x 32 tiles on two panels
                let col = (p0 + 2 * p) * NR;
                let mut i = i0;
                while i < i1 {
                    let rows = (2 * MR).min(i1 - i);
                    let r = i - i0;
                    let c = op.add(i * n + col);
                    let t = tile_at(w, s, col, r, c);
                    avx512::qtile_rows(rows, &t);
                    avx2::finish_tile(rows, c, n, ep, i, col);
                    avx2::finish_tile(rows, c.add(NR), n, ep, i, col + NR);
                    i += rows;
                }
            }
            for p in p0 + 2 * pairs..p1 {
                let col = p * NR;
                let mut i = i0;
                while i < i1 {
                    let rows = MR.min(i1 - i);
                    let r = i - i0;
                    let c = op.add(i * n + col);
                    let t = tile_at(w, s, col, r, c);
                    avx2::qtile_rows(rows, &t);
                    avx2::finish_tile(rows, c, n, ep, i, col);
                    i += rows;
                }
            }
            i0 = i1;
        }
    }
}

/// Quantizes one row to u8 codes written in the micro-panel layout: the four codes of inputs
/// `4g .. 4g+4` at `dst + g * MR * 4` (inputs `k..kp` get code 0, against zero weights). The
/// row's `idx.len()` largest values are its outliers: written to `idx` / `val`, left out of
/// the range, and given the zero point's code, so that they add nothing to the integer sums.
/// `wide`: the CPU has AVX-512 (the outliers are searched 16 lanes a step, same result).
///
/// # Safety
/// AVX2 and FMA present (AVX-512 F and BW when `wide`); `dst` holds the micro-panel layout
/// of `kp.div_ceil(4)` groups (`kp >= row.len()`); `idx` and `val` have the same length.
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
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let (lo, hi) = range(row, wide, idx, val);
        let q = RowQuant::of_range(lo, hi);
        avx2::write_codes(row, kp, dst, q);
        for &c in idx.iter() {
            let c = c as usize;
            *dst.add((c / 4) * MR * 4 + c % 4) = q.zero as u8;
        }
        q
    }
}

/// The range of `row` without its `idx.len()` largest values, widened to include 0, those
/// values written to `idx` / `val` (largest first): on AVX-512 where `wide` and the row's
/// shape suits it, else on AVX2 (the same outliers and range either way).
///
/// # Safety
/// AVX2 and FMA present (AVX-512 F and BW when `wide`); `idx` and `val` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn range(row: &[f32], wide: bool, idx: &mut [u32], val: &mut [f32]) -> (f32, f32) {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        if idx.is_empty() {
            return avx2::min_max(row);
        }
        if wide {
            if let Some(range) = avx512::take_outliers(row, idx, val) {
                return range;
            }
        }
        avx2::take_outliers(row, idx, val)
    }
}

/// [`quantize_row`] for the AMX tiles: the codes row-major at `dst` (inputs `k..kpa` get
/// code 0), the same codes as AVX2's `write_codes` (AVX-512, 16 values a step).
///
/// # Safety
/// AVX-512 F and BW, AVX2 and FMA present; `dst` holds `kpa >= row.len()` bytes; `idx` and
/// `val` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn quantize_row_major(
    row: &[f32],
    kpa: usize,
    dst: *mut u8,
    idx: &mut [u32],
    val: &mut [f32],
) -> RowQuant {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
        let (lo, hi) = range(row, true, idx, val);
        let q = RowQuant::of_range(lo, hi);
        avx512::write_codes_row_major(row, kpa, dst, q);
        for &c in idx.iter() {
            *dst.add(c as usize) = q.zero as u8;
        }
        q
    }
}

/// The operands of the tile whose first row is row `r` of the block in `s` and whose first
/// column is `col` (a multiple of 16), writing to `c`.
///
/// # Safety
/// `s` holds the block's quantized rows (in the micro-panel layout) from row `r`, `col < w.n`,
/// `c` points into the output.
unsafe fn tile_at(w: &QLinear, s: &QScratch, col: usize, r: usize, c: *mut f32) -> QTile {
    // SAFETY: the caller upholds this function's `# Safety` contract (CPU features, pointers
    // and lengths), which covers every pointer access and call below.
    unsafe {
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
}

/// [`qlinear`] on AMX tiles: blocks of MC rows quantized (codes row-major, K padded to a
/// multiple of 64), then 32 x 32 blocks of outputs.
///
/// # Safety
/// `cpu::amx_ready` returned `Ok` (AMX-INT8, AVX-512 VNNI, the tile state granted); `x` is
/// `m x w.k`, `out` (and a residual in `ep`) `m x w.n`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
unsafe fn qlinear_amx(
    x: &[f32],
    m: usize,
    w: &QLinear,
    out: &mut [f32],
    ep: Epilogue,
    s: &mut AmxScratch,
) {
    // SAFETY: AMX with the tile state and AVX-512 as the contract requires; the tile
    // configuration is loaded before the blocks and released after; `s` is sized just below for
    // an MC-row block of `kpa` codes, each block's A rows lie inside it, its B tiles inside
    // `w.data` (panels plus `B_SLACK`), its sums in `s.acc` (32 x 32), its outputs in `out`.
    unsafe {
        let (k, kp, n, no) = (w.k, w.kp, w.n, w.outliers);
        let kpa = kp.div_ceil(64) * 64;
        if s.codes.len() < MC * kpa {
            s.codes.resize(MC * kpa, 0);
        }
        s.scale.resize(MC, 1.0);
        s.zero.resize(MC, 0);
        s.oidx.resize(MC * no, 0);
        s.oval.resize(MC * no, 0.0);
        amx::load_tiles();
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
                let b = w.data.as_ptr().add(col * kp);
                let mut r = 0;
                while r < i1 - i0 {
                    let rows = 32.min(i1 - i0 - r);
                    let a = s.codes.as_ptr().add(r * kpa);
                    match (rows > 16, two_c) {
                        (true, true) => amx::block::<true, true>(a, kpa, b, kp * NR, kpa / 64, acc),
                        (true, false) => {
                            amx::block::<true, false>(a, kpa, b, kp * NR, kpa / 64, acc)
                        }
                        (false, true) => {
                            amx::block::<false, true>(a, kpa, b, kp * NR, kpa / 64, acc)
                        }
                        (false, false) => {
                            amx::block::<false, false>(a, kpa, b, kp * NR, kpa / 64, acc)
                        }
                    }
                    let cp = op.add((i0 + r) * n + col);
                    let t = QTile {
                        groups: kpa / 4,
                        a,
                        b,
                        c: cp,
                        ldc: n,
                        row_scale: s.scale.as_ptr().add(r),
                        row_zero: s.zero.as_ptr().add(r),
                        col_scale: w.scale.as_ptr().add(col),
                        col_sum: w.colsum.as_ptr().add(col),
                        bias: w.bias.as_ptr().add(col),
                        outliers: no,
                        wt: w.wt.as_ptr().wrapping_add(col),
                        oidx: s.oidx.as_ptr().add(r * no),
                        oval: s.oval.as_ptr().add(r * no),
                    };
                    if two_c {
                        amx::last_step::<2>(&t, rows, acc);
                    } else {
                        amx::last_step::<1>(&t, rows, acc);
                    }
                    for h in 0..1 + two_c as usize {
                        avx2::finish_tile(rows, cp.add(h * NR), n, ep, i0 + r, col + h * NR);
                    }
                    r += rows;
                }
                p += 1 + two_c as usize;
            }
            i0 = i1;
        }
        amx::release_tiles();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::kernels::common::QMAX_A;

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
