//! What the tiles of several instruction sets share besides [`cpu`](super::cpu): the
//! activation quantization of one row ([`RowQuant`]), the operands of one int8 tile
//! ([`QTile`]) and the scalar search for a row's largest values ([`largest`]), which the
//! vectorised searches of `avx2` and `avx512` refine. Plain Rust, no SIMD.

/// Largest weight magnitude after quantization (8 bits; no i16 saturation, see the module).
pub(super) const QMAX_W: i32 = 127;
/// Largest activation code (7 bits; see the module).
pub(super) const QMAX_A: i32 = 127;

/// One row's activation quantization: `x ~ scale x (q - zero)`, `q` in 0..=[`QMAX_A`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct RowQuant {
    /// Step between two codes.
    pub(super) scale: f32,
    /// The code of 0.0.
    pub(super) zero: i32,
}

impl RowQuant {
    /// The quantization of a row whose values lie in `lo..=hi` (the range is widened to 0).
    pub(super) fn of_range(lo: f32, hi: f32) -> RowQuant {
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
    pub(super) fn code(&self, v: f32) -> u8 {
        let inv = 1.0 / self.scale;
        ((v * inv).round_ties_even() as i32 + self.zero).clamp(0, QMAX_A) as u8
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
    /// see [`QLinear`](super::int8::QLinear)).
    pub(super) wt: *const i8,
    pub(super) oidx: *const u32,
    pub(super) oval: *const f32,
}

/// 8-value chunks of a row whose candidate flags [`take_outliers`](super::avx2::take_outliers) keeps on the stack (rows
/// up to 4,096 values, BERT-large's widest, go through its vector pass).
pub(super) const MAX_CHUNKS: usize = 512;

/// erf's rational approximation (Eigen and XLA): `erf(z) = z P(z^2) / Q(z^2)` on z in [-4, 4];
/// `P`'s coefficients from the highest power down (Horner order), then `Q`'s.
pub(super) const ERF_P: [f32; 7] = [
    -2.726_142_3e-10,
    2.770_681_4e-8,
    -2.101_024e-6,
    -5.692_506_4e-5,
    -7.349_906_3e-4,
    -2.9546e-3,
    -1.609_603_3e-2,
];
/// See [`ERF_P`].
pub(super) const ERF_Q: [f32; 5] = [
    -1.456_607_2e-5,
    -2.133_740_6e-4,
    -1.682_827e-3,
    -7.373_329e-3,
    -1.426_473_9e-2,
];
/// exp's Cephes polynomial on the reduced argument, from the highest power down.
pub(super) const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// The `idx.len()` values of `row` largest in magnitude, largest first (the first of equals),
/// written to `idx` (their inputs) and `val`.
pub(super) fn largest(row: &[f32], idx: &mut [u32], val: &mut [f32]) {
    if idx.is_empty() {
        return;
    }
    let mut top = Top::new(idx, val);
    for (i, &v) in row.iter().enumerate() {
        let _ = top.insert(i, v);
    }
}

/// The largest magnitudes seen so far, sorted by (magnitude down, index up).
pub(super) struct Top<'a> {
    idx: &'a mut [u32],
    val: &'a mut [f32],
    filled: usize,
}

impl<'a> Top<'a> {
    pub(super) fn new(idx: &'a mut [u32], val: &'a mut [f32]) -> Top<'a> {
        Top {
            idx,
            val,
            filled: 0,
        }
    }

    /// Offers value `v` of input `i`; returns the value that is out: `v` itself when it is
    /// not among the largest, the one it pushes out, or none while places are free.
    pub(super) fn insert(&mut self, i: usize, v: f32) -> Option<f32> {
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

/// The bf16 bits of `x`, rounded to nearest even, as `vcvtne2ps2bf16` rounds: a subnormal
/// input becomes a zero of its sign, a NaN stays a (quiet) NaN. The bf16 engine's weights are
/// rounded with this at load time, its activations by the instruction.
pub(super) fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x0040) as u16;
    }
    if b & 0x7f80_0000 == 0 {
        return ((b >> 16) & 0x8000) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// The f32 value of bf16 bits (exact).
#[cfg(test)]
pub(super) fn bf16_value(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}
