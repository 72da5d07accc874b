//! The training engine's kernels: the transpose of its weight gradients (8 x 8 AVX2 blocks,
//! [`transpose`]), AdamW's update and the gradients' sum of squares ([`adamw_update`],
//! [`sum_squares`]) and the backward pass of its attention of one sequence, as plain loops that the compiler vectorises: each safe entry point runs them
//! compiled for the widest vectors the CPU has (AVX-512, else AVX2 + FMA, else the baseline).
//! The loops only add and multiply (fused, `mul_add`) element by element and sum in a fixed order, which
//! vectorising does not change, so every path gives the same result bits
//! (`kernels::tests::training_attention_is_the_same_on_every_path`). The forward pass runs on
//! the encoder's tiles ([`super::attention_keep`]).

use super::cpu::{available, has_avx512};

/// Runs `$wide` compiled for AVX-512 (F, with AVX2 and FMA), or `$narrow` compiled for AVX2 +
/// FMA or for the baseline, as `$width` says (panics where the CPU lacks the width asked for).
/// Each path is a function of the listed parameters (the names the expressions read), built
/// with its target features so that the `#[inline(always)]` loops it calls are vectorised for
/// them.
macro_rules! on_width {
    ($width:expr, ($($p:ident: $t:ty),* $(,)?) -> $ret:ty, avx512: $wide:expr, other: $narrow:expr $(,)?) => {{
        match $width {
            #[cfg(target_arch = "x86_64")]
            Width::Avx512 => {
                /// The AVX-512 path.
                /// # Safety
                /// The CPU has AVX-512 F, AVX2 and FMA.
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn wide($($p: $t),*) -> $ret {
                    $wide
                }
                assert!(has_avx512(), "AVX-512 loops on a CPU without AVX-512");
                // SAFETY: AVX-512 F (and FMA) checked just above; AVX-512 F implies AVX2.
                unsafe { wide($($p),*) }
            }
            #[cfg(target_arch = "x86_64")]
            Width::Avx2 => {
                /// The AVX2 path.
                /// # Safety
                /// The CPU has AVX2 and FMA.
                #[target_feature(enable = "avx2,fma")]
                unsafe fn narrow($($p: $t),*) -> $ret {
                    $narrow
                }
                assert!(available(), "AVX2 loops on a CPU without AVX2 + FMA");
                // SAFETY: AVX2 + FMA checked just above.
                unsafe { narrow($($p),*) }
            }
            _ => $narrow,
        }
    }};
}

/// Backward of the attention of one sequence ([`super::attention_keep`]): `probs_t` the
/// probabilities it kept (per head, transposed), `dctx` its `len x h` output gradient, `dqkv`
/// receives its `len x 3h` input gradient. Panics when the buffers do not match the shapes.
pub(crate) fn attention_back(
    qkv: &[f32],
    a: Attn,
    probs_t: &[f32],
    dctx: &[f32],
    dqkv: &mut [f32],
) {
    attention_back_on(qkv, a, probs_t, dctx, dqkv, widest())
}

/// The vector width the loops are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// The baseline x86-64 (or any other target).
    Base,
    /// AVX2 + FMA.
    Avx2,
    /// AVX-512 F.
    Avx512,
}

/// The widest [`Width`] this CPU runs (AVX-512 unless `VOCMINE_NO_AVX512` is set).
pub(crate) fn widest() -> Width {
    if super::cpu::use_avx512() {
        Width::Avx512
    } else if available() {
        Width::Avx2
    } else {
        Width::Base
    }
}

fn check(qkv: &[f32], a: Attn, ctx: usize, probs: usize) {
    let h = a.heads * a.hd;
    assert!(
        qkv.len() == a.len * 3 * h && ctx == a.len * h && probs == a.heads * a.len * a.len,
        "attention buffers do not match {} tokens x {} heads x {}",
        a.len,
        a.heads,
        a.hd
    );
}

/// [`attention_back`] compiled for `w` (panics where the CPU lacks it).
pub(crate) fn attention_back_on(
    qkv: &[f32],
    a: Attn,
    probs_t: &[f32],
    dctx: &[f32],
    dqkv: &mut [f32],
    w: Width,
) {
    check(qkv, a, dctx.len(), probs_t.len());
    assert_eq!(dqkv.len(), qkv.len(), "attention gradient buffer");
    on_width!(
        w,
        (qkv: &[f32], a: Attn, probs_t: &[f32], dctx: &[f32], dqkv: &mut [f32]) -> (),
        avx512: attention_back_body::<true>(qkv, a, probs_t, dctx, dqkv),
        other: attention_back_body::<false>(qkv, a, probs_t, dctx, dqkv),
    )
}

/// One sequence's attention shapes: `len` tokens, `heads` heads of width `hd`.
#[derive(Clone, Copy)]
pub(crate) struct Attn {
    pub(crate) len: usize,
    pub(crate) heads: usize,
    pub(crate) hd: usize,
}

/// `y[..] += a * x[..]`, fused (one rounding: `mul_add`, an FMA where the loops are compiled
/// with it, the same bits on every path).
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = a.mul_add(*x, *y);
    }
}

/// `sum_j a[j] b[j]` in 16 lanes (term `j` fused into lane `j % 16`, in order), the lanes then
/// added in order: vectorised, and the same bits on every path.
#[inline(always)]
fn dot16(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (mut ca, mut cb) = (a.chunks_exact(16), b.chunks_exact(16));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..16 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    for (l, (x, y)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
        acc[l] = x.mul_add(*y, acc[l]);
    }
    acc.iter().sum()
}

/// `out = sum_i w(i) row(i)` over `i in 0..n`, in that order; for the heads' usual width of 32
/// the sum is held in a local array the compiler keeps in registers.
#[inline(always)]
fn weighted_rows<'a>(
    out: &mut [f32],
    n: usize,
    w: impl Fn(usize) -> f32,
    row: impl Fn(usize) -> &'a [f32],
) {
    if out.len() == 32 {
        let mut acc = [0f32; 32];
        for i in 0..n {
            let (s, r) = (w(i), &row(i)[..32]);
            for d in 0..32 {
                acc[d] = s.mul_add(r[d], acc[d]);
            }
        }
        out.copy_from_slice(&acc);
    } else {
        out.iter_mut().for_each(|v| *v = 0.0);
        for i in 0..n {
            axpy(out, w(i), row(i));
        }
    }
}

/// Rows of an output block: the queries (or keys) whose sums are held in registers at once.
const RB: usize = 8;
/// Columns of a score row held at once (one AVX-512 vector).
const CB: usize = 16;

/// `out_r = sum_i w(r, i) row(i)` for `r in 0..R`, each over `i in 0..n` in that order and
/// fused: the sums of [`weighted_rows`] for `R` outputs at once, for heads of width 32, so that
/// each `row(i)` is loaded once for `R` outputs (the same terms in the same order: the same
/// bits).
#[inline(always)]
fn weighted_rows_block<'a, const R: usize, const WIDE: bool>(
    n: usize,
    w: impl Fn(usize, usize) -> f32,
    row: impl Fn(usize) -> &'a [f32],
) -> [[f32; 32]; R] {
    #[cfg(target_arch = "x86_64")]
    if WIDE {
        // SAFETY: WIDE only in `attention_back_avx512` (AVX-512 F and FMA).
        return unsafe { weighted_rows_block_avx512::<R>(n, w, row) };
    }
    let mut acc = [[0f32; 32]; R];
    for i in 0..n {
        let x: &[f32; 32] = row(i)[..32].try_into().expect("a head of width 32");
        for (r, a) in acc.iter_mut().enumerate() {
            let s = w(r, i);
            for d in 0..32 {
                a[d] = s.mul_add(x[d], a[d]);
            }
        }
    }
    acc
}

/// [`weighted_rows_block`] in AVX-512 registers: the same fused sums in the same order (the
/// same bits), with each `row(i)` in two registers for the `R` outputs.
///
/// # Safety
/// AVX-512 F and FMA present. (Each row's length is checked.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn weighted_rows_block_avx512<'a, const R: usize>(
    n: usize,
    w: impl Fn(usize, usize) -> f32,
    row: impl Fn(usize) -> &'a [f32],
) -> [[f32; 32]; R] {
    use std::arch::x86_64::*;
    let mut lo = [_mm512_setzero_ps(); R];
    let mut hi = [_mm512_setzero_ps(); R];
    for i in 0..n {
        let x: &[f32; 32] = row(i)[..32].try_into().expect("a head of width 32");
        // SAFETY: `x` holds 32 values; the CPU by this function's contract.
        let (x0, x1) = unsafe {
            (
                _mm512_loadu_ps(x.as_ptr()),
                _mm512_loadu_ps(x.as_ptr().add(16)),
            )
        };
        for r in 0..R {
            let c = _mm512_set1_ps(w(r, i));
            lo[r] = _mm512_fmadd_ps(c, x0, lo[r]);
            hi[r] = _mm512_fmadd_ps(c, x1, hi[r]);
        }
    }
    let mut out = [[0f32; 32]; R];
    for (o, (l, h)) in out.iter_mut().zip(lo.into_iter().zip(hi)) {
        // SAFETY: each output row holds 32 values.
        unsafe {
            _mm512_storeu_ps(o.as_mut_ptr(), l);
            _mm512_storeu_ps(o.as_mut_ptr().add(16), h);
        }
    }
    out
}

/// For `j0` in blocks of [`RB`] rows, then 4, 2 and 1 (the largest that fits the rest):
/// `f(j0, block)` with `block` the `R x 32` sums of [`weighted_rows_block`] of rows `j0..j0 + R`
/// (`w(j, i)` the weight of `row(i)` in row `j`).
#[inline(always)]
fn in_row_blocks<'a, const WIDE: bool>(
    len: usize,
    w: impl Fn(usize, usize) -> f32 + Copy,
    row: impl Fn(usize) -> &'a [f32] + Copy,
    mut f: impl FnMut(usize, &[[f32; 32]]),
) {
    let mut j0 = 0;
    while j0 < len {
        let rest = len - j0;
        let wj = move |r: usize, i: usize| w(j0 + r, i);
        let r = if rest >= RB {
            f(j0, &weighted_rows_block::<RB, WIDE>(len, wj, row));
            RB
        } else if rest >= 4 {
            f(j0, &weighted_rows_block::<4, WIDE>(len, wj, row));
            4
        } else if rest >= 2 {
            f(j0, &weighted_rows_block::<2, WIDE>(len, wj, row));
            2
        } else {
            f(j0, &weighted_rows_block::<1, WIDE>(len, wj, row));
            1
        };
        j0 += r;
    }
}

/// `dP` for [`RB`] queries x [`CB`] keys: `out[r][j] = sum_d dc[r][d] vtp[d lq + j0 + j]`, each
/// sum over `d` in order and fused, in AVX-512 registers (the plain loop's sums, so its bits).
///
/// # Safety
/// AVX-512 F and FMA present. (The lengths are checked here.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn dp_block_avx512(
    dc: &[&[f32]; RB],
    vtp: &[f32],
    lq: usize,
    j0: usize,
    hd: usize,
) -> [[f32; CB]; RB] {
    use std::arch::x86_64::*;
    assert!(
        j0 + CB <= lq && vtp.len() >= hd * lq && dc.iter().all(|c| c.len() >= hd),
        "dP block out of its buffers"
    );
    // SAFETY: the CPU by this function's contract; the reads are inside `vtp` (row d < hd of
    // lq values, columns j0..j0 + CB <= lq) and each `dc[r]` (d < hd), as asserted above.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); RB];
        for d in 0..hd {
            let v = _mm512_loadu_ps(vtp.as_ptr().add(d * lq + j0));
            for (a, c) in acc.iter_mut().zip(dc) {
                *a = _mm512_fmadd_ps(_mm512_set1_ps(*c.get_unchecked(d)), v, *a);
            }
        }
        let mut out = [[0f32; CB]; RB];
        for (o, a) in out.iter_mut().zip(acc) {
            _mm512_storeu_ps(o.as_mut_ptr(), a);
        }
        out
    }
}

/// Backward of [`attention`] for one sequence: `dctx` its `len x h` output gradient, `dqkv`
/// receives its `len x 3h` input gradient. Per head: the score gradients `dS` of every query
/// first, then each row of `dV`, `dQ` and `dK` summed on its own (in a local array, not
/// scattered over `dqkv` one term at a time). Every sum takes its terms in one fixed order
/// (`dP` over the head's width, the others over the sequence), each term fused, whether its
/// output is computed alone or in a block of rows (x [`CB`] columns for `dP`, the last block
/// padded with zeros) held in registers, so the result has the same bits either way.
#[inline(always)]
fn attention_back_body<const WIDE: bool>(
    qkv: &[f32],
    a: Attn,
    probs_t: &[f32],
    dctx: &[f32],
    dqkv: &mut [f32],
) {
    let Attn { len, heads, hd } = a;
    let h = heads * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    // key columns padded to whole blocks of CB (zeros past len)
    let lq = len.div_ceil(CB) * CB;
    let mut vrows = vec![0f32; len * hd];
    let mut vt = vec![0f32; hd * len];
    let mut vtp = vec![0f32; hd * lq];
    let mut p = vec![0f32; len * len];
    let mut ds = vec![0f32; len * len];
    let zeros = vec![0f32; hd];
    dqkv.iter_mut().for_each(|v| *v = 0.0);
    for head in 0..heads {
        let (qo, ko, vo) = (head * hd, h + head * hd, 2 * h + head * hd);
        // V^T of this head (its rows gathered, then transposed in blocks)
        for j in 0..len {
            vrows[j * hd..(j + 1) * hd].copy_from_slice(&qkv[j * 3 * h + vo..j * 3 * h + vo + hd]);
        }
        transpose(&vrows, len, hd, &mut vt);
        for d in 0..hd {
            vtp[d * lq..d * lq + len].copy_from_slice(&vt[d * len..(d + 1) * len]);
        }
        // P of this head, queries down (it was kept keys down)
        let pt = &probs_t[head * len * len..(head + 1) * len * len];
        transpose(pt, len, len, &mut p);
        let dc = |i: usize| &dctx[i * h + head * hd..i * h + (head + 1) * hd];
        // dP = dC V^T, RB queries x CB keys at a time (each sum over d in order, fused); rows
        // past len read zeros, columns past len are zeros; only the real ones are kept
        for i0 in (0..len).step_by(RB) {
            let dci: [&[f32]; RB] =
                std::array::from_fn(|r| if i0 + r < len { dc(i0 + r) } else { &zeros[..] });
            let rows = RB.min(len - i0);
            for j0 in (0..lq).step_by(CB) {
                #[cfg(target_arch = "x86_64")]
                if WIDE {
                    // SAFETY: WIDE only in `attention_back_avx512` (AVX-512 F and FMA); every
                    // dci row holds hd values and vtp hd rows of lq >= j0 + CB values.
                    let acc = unsafe { dp_block_avx512(&dci, &vtp, lq, j0, hd) };
                    let cols = CB.min(len - j0);
                    for (r, a) in acc.iter().enumerate().take(rows) {
                        ds[(i0 + r) * len + j0..(i0 + r) * len + j0 + cols]
                            .copy_from_slice(&a[..cols]);
                    }
                    continue;
                }
                let mut acc = [[0f32; CB]; RB];
                for d in 0..hd {
                    let v: &[f32; CB] = vtp[d * lq + j0..d * lq + j0 + CB]
                        .try_into()
                        .expect("CB columns");
                    for (r, a) in acc.iter_mut().enumerate() {
                        let c = dci[r][d];
                        for j in 0..CB {
                            a[j] = c.mul_add(v[j], a[j]);
                        }
                    }
                }
                let cols = CB.min(len - j0);
                for (r, a) in acc.iter().enumerate().take(rows) {
                    ds[(i0 + r) * len + j0..(i0 + r) * len + j0 + cols].copy_from_slice(&a[..cols]);
                }
            }
        }
        // dS = P (dP - sum(P dP))
        for i in 0..len {
            let pr = &p[i * len..(i + 1) * len];
            let dsr = &mut ds[i * len..(i + 1) * len];
            let dot = dot16(pr, dsr);
            for (d, &pj) in dsr.iter_mut().zip(pr) {
                *d = pj * (*d - dot) * scale;
            }
        }
        let q = |i: usize| &qkv[i * 3 * h + qo..i * 3 * h + qo + hd];
        let k = |j: usize| &qkv[j * 3 * h + ko..j * 3 * h + ko + hd];
        if hd == 32 {
            // dV_j = sum_i P(i, j) dC_i, dK_j = sum_i dS(i, j) Q_i, dQ_i = sum_j dS(i, j) K_j
            let ds = &ds;
            in_row_blocks::<WIDE>(
                len,
                |j, i| pt[j * len + i],
                dc,
                |j0, b| {
                    for (r, row) in b.iter().enumerate() {
                        let j = j0 + r;
                        dqkv[j * 3 * h + vo..j * 3 * h + vo + hd].copy_from_slice(row);
                    }
                },
            );
            in_row_blocks::<WIDE>(
                len,
                |j, i| ds[i * len + j],
                q,
                |j0, b| {
                    for (r, row) in b.iter().enumerate() {
                        let j = j0 + r;
                        dqkv[j * 3 * h + ko..j * 3 * h + ko + hd].copy_from_slice(row);
                    }
                },
            );
            in_row_blocks::<WIDE>(
                len,
                |i, j| ds[i * len + j],
                k,
                |i0, b| {
                    for (r, row) in b.iter().enumerate() {
                        let i = i0 + r;
                        dqkv[i * 3 * h + qo..i * 3 * h + qo + hd].copy_from_slice(row);
                    }
                },
            );
        } else {
            for j in 0..len {
                let row = &mut dqkv[j * 3 * h + vo..j * 3 * h + vo + hd];
                weighted_rows(row, len, |i| pt[j * len + i], dc);
                let row = &mut dqkv[j * 3 * h + ko..j * 3 * h + ko + hd];
                weighted_rows(row, len, |i| ds[i * len + j], q);
                let row = &mut dqkv[j * 3 * h + qo..j * 3 * h + qo + hd];
                weighted_rows(row, len, |i2| ds[j * len + i2], k);
            }
        }
    }
}

/// [`Rng::fill_keep`](crate::rng::Rng::fill_keep) compiled for the widest vectors (AVX-512
/// DQ has the 64-bit products it needs; elsewhere the plain loop): the same values on every
/// path.
pub(crate) fn dropout_scales(r: &crate::rng::Rng, out: &mut [f32], keep: f64, scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if widest() == Width::Avx512 && std::arch::is_x86_feature_detected!("avx512dq") {
        // SAFETY: AVX-512 F and DQ checked just above.
        unsafe { dropout_avx512(r, out, keep, scale) };
        return;
    }
    r.fill_keep(out, keep, scale)
}

/// # Safety
/// The CPU has AVX-512 F and DQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2")]
unsafe fn dropout_avx512(r: &crate::rng::Rng, out: &mut [f32], keep: f64, scale: f32) {
    r.fill_keep(out, keep, scale)
}

/// The constants of one AdamW update ([`adamw_update`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamW {
    /// The gradient's scale (global-norm clipping).
    pub(crate) scale: f32,
    /// The first moment's decay rate.
    pub(crate) b1: f32,
    /// The second moment's decay rate.
    pub(crate) b2: f32,
    /// `1 - b1`.
    pub(crate) o1: f32,
    /// `1 - b2`.
    pub(crate) o2: f32,
    /// `1 / (1 - b1^t)`: the first moment's bias correction at step `t`.
    pub(crate) ic1: f32,
    /// `1 / (1 - b2^t)`: the second moment's bias correction.
    pub(crate) ic2: f32,
    /// The denominator's epsilon.
    pub(crate) eps: f32,
    /// The weight's decay factor (`1 - lr wd`, or 1).
    pub(crate) decay: f32,
    /// The learning rate.
    pub(crate) lr: f32,
}

/// One AdamW update of the parameters `w`, their moments `m`, `v` from the gradient `g`, each
/// value on its own (the same arithmetic on every path, so the same bits). Panics when the
/// slices differ in length.
pub(crate) fn adamw_update(w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], a: &AdamW) {
    adamw_update_on(w, m, v, g, a, widest())
}

/// [`adamw_update`] compiled for `width` (panics where the CPU lacks it).
pub(crate) fn adamw_update_on(
    w: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    a: &AdamW,
    width: Width,
) {
    assert!(
        m.len() == w.len() && v.len() == w.len() && g.len() == w.len(),
        "AdamW buffers differ in length"
    );
    on_width!(
        width,
        (w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], a: &AdamW) -> (),
        avx512: adamw_body(w, m, v, g, a),
        other: adamw_body(w, m, v, g, a),
    )
}

#[inline(always)]
fn adamw_body(w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], a: &AdamW) {
    for (((w, m), v), g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        let gj = g * a.scale;
        *m = *m * a.b1 + gj * a.o1;
        *v = *v * a.b2 + gj * gj * a.o2;
        let upd = (*m * a.ic1) / ((*v * a.ic2).sqrt() + a.eps);
        *w = *w * a.decay - upd * a.lr;
    }
}

/// The sum of the squares of `g` in f64, in 8 interleaved partial sums (a fixed order: the
/// same bits on every path and run).
pub(crate) fn sum_squares(g: &[f32]) -> f64 {
    sum_squares_on(g, widest())
}

/// [`sum_squares`] compiled for `width` (panics where the CPU lacks it).
pub(crate) fn sum_squares_on(g: &[f32], width: Width) -> f64 {
    on_width!(
        width,
        (g: &[f32]) -> f64,
        avx512: sum_squares_body(g),
        other: sum_squares_body(g),
    )
}

#[inline(always)]
fn sum_squares_body(g: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let mut chunks = g.chunks_exact(8);
    for c in &mut chunks {
        for j in 0..8 {
            let x = c[j] as f64;
            acc[j] += x * x;
        }
    }
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum();
    acc.iter().sum::<f64>() + tail
}

/// `out (c x r) = a^T`, `a` row-major `r x c`: 8 x 8 blocks transposed in AVX2 registers where
/// the CPU has them (the training engine's `dY^T` for the weight gradients), plain loops for
/// the edges and elsewhere. Exact: it only moves values. Panics when the buffers do not hold
/// `r x c` values.
pub(crate) fn transpose(a: &[f32], r: usize, c: usize, out: &mut [f32]) {
    assert!(
        a.len() == r * c && out.len() == r * c,
        "transpose buffers are not {r} x {c}"
    );
    transpose_cols(a, r, c, 0..c, out);
}

/// [`transpose`] on the current rayon pool: each task writes the rows of `out` of a block of
/// 64 columns of `a` (the same values; for the large `dY^T` of the weight gradients).
pub(crate) fn transpose_par(a: &[f32], r: usize, c: usize, out: &mut [f32]) {
    use rayon::prelude::*;
    assert!(
        a.len() == r * c && out.len() == r * c,
        "transpose buffers are not {r} x {c}"
    );
    const COLS: usize = 64;
    if r == 0 {
        return;
    }
    out.par_chunks_mut(COLS * r).enumerate().for_each(|(b, o)| {
        let j0 = b * COLS;
        transpose_cols(a, r, c, j0..j0 + o.len() / r, o)
    });
}

/// Rows `cols` of `a^T` (`a` row-major `r x c`) into `out` (`cols.len() x r`).
fn transpose_cols(a: &[f32], r: usize, c: usize, cols: std::ops::Range<usize>, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX2 checked just above; `a` holds r x c values and `out` the rows `cols`
        // (the callers' assertions and slicing).
        unsafe { transpose_avx2(a, r, c, cols, out) };
        return;
    }
    transpose_edges(a, r, c, cols, out, 0, 0);
}

/// The plain transpose of the rows from `r0` and, above them, of the columns from `j8` (the
/// part the 8 x 8 blocks left) within `cols`: rows `0..r0` only for columns `j8..`, rows
/// `r0..` for all of `cols`; `out` holds the rows `cols` of `a^T`.
fn transpose_edges(
    a: &[f32],
    r: usize,
    c: usize,
    cols: std::ops::Range<usize>,
    out: &mut [f32],
    r0: usize,
    j8: usize,
) {
    let j0 = cols.start;
    for i in 0..r0 {
        for j in j8.max(j0)..cols.end {
            out[(j - j0) * r + i] = a[i * c + j];
        }
    }
    for i in r0..r {
        for j in cols.clone() {
            out[(j - j0) * r + i] = a[i * c + j];
        }
    }
}

/// [`transpose_cols`] with 8 x 8 AVX2 blocks.
/// # Safety
/// The CPU has AVX2, `a` holds `r * c` values, `cols` lies within `0..c` and `out` holds
/// `cols.len() * r` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_avx2(
    a: &[f32],
    r: usize,
    c: usize,
    cols: std::ops::Range<usize>,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let j0 = cols.start;
    let (r8, j8) = (r / 8 * 8, j0 + (cols.end - j0) / 8 * 8);
    let (src, dst) = (a.as_ptr(), out.as_mut_ptr());
    for i in (0..r8).step_by(8) {
        for j in (j0..j8).step_by(8) {
            // SAFETY: rows i..i+8 and columns j..j+8 lie inside `a` (r x c), and rows j - j0 ..
            // j - j0 + 8 of `out` (columns i..i+8) inside its cols.len() x r values.
            unsafe {
                let p = src.add(i * c + j);
                let r0 = _mm256_loadu_ps(p);
                let r1 = _mm256_loadu_ps(p.add(c));
                let r2 = _mm256_loadu_ps(p.add(2 * c));
                let r3 = _mm256_loadu_ps(p.add(3 * c));
                let r4 = _mm256_loadu_ps(p.add(4 * c));
                let r5 = _mm256_loadu_ps(p.add(5 * c));
                let r6 = _mm256_loadu_ps(p.add(6 * c));
                let r7 = _mm256_loadu_ps(p.add(7 * c));
                let t0 = _mm256_unpacklo_ps(r0, r1);
                let t1 = _mm256_unpackhi_ps(r0, r1);
                let t2 = _mm256_unpacklo_ps(r2, r3);
                let t3 = _mm256_unpackhi_ps(r2, r3);
                let t4 = _mm256_unpacklo_ps(r4, r5);
                let t5 = _mm256_unpackhi_ps(r4, r5);
                let t6 = _mm256_unpacklo_ps(r6, r7);
                let t7 = _mm256_unpackhi_ps(r6, r7);
                let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let q = dst.add((j - j0) * r + i);
                _mm256_storeu_ps(q, _mm256_permute2f128_ps::<0x20>(s0, s4));
                _mm256_storeu_ps(q.add(r), _mm256_permute2f128_ps::<0x20>(s1, s5));
                _mm256_storeu_ps(q.add(2 * r), _mm256_permute2f128_ps::<0x20>(s2, s6));
                _mm256_storeu_ps(q.add(3 * r), _mm256_permute2f128_ps::<0x20>(s3, s7));
                _mm256_storeu_ps(q.add(4 * r), _mm256_permute2f128_ps::<0x31>(s0, s4));
                _mm256_storeu_ps(q.add(5 * r), _mm256_permute2f128_ps::<0x31>(s1, s5));
                _mm256_storeu_ps(q.add(6 * r), _mm256_permute2f128_ps::<0x31>(s2, s6));
                _mm256_storeu_ps(q.add(7 * r), _mm256_permute2f128_ps::<0x31>(s3, s7));
            }
        }
    }
    transpose_edges(a, r, c, cols, out, r8, j8);
}
