//! The kernels' tests: each path against a plain reference, and every pair of paths (AVX2,
//! AVX-512, AMX) against each other bit for bit. Each test says SKIP and passes where the CPU
//! lacks what it tests.

use super::avx2::take_outliers;
use super::avx512::take_outliers as take_outliers512;
use super::common::{largest, RowQuant};
use super::*;

/// `n` pseudo-random values in -0.5..0.5 (an LCG: the same for a seed everywhere).
pub(super) fn rnd(n: usize, seed: u64) -> Vec<f32> {
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

/// A rayon pool of 3 threads (more parts than the 2 cores CI has).
fn pool3() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
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
            Epilogue::Accumulate,
        ] {
            // Accumulate adds onto what the output holds (and no bias)
            if let Epilogue::Accumulate = ep {
                out.copy_from_slice(&res);
            } else {
                out.iter_mut().for_each(|o| *o = f32::NAN);
            }
            linear(&x, m, &pl, &mut out, ep);
            for (idx, (&o, &wv)) in out.iter().zip(&want).enumerate() {
                let e = match ep {
                    Epilogue::Bias => wv,
                    Epilogue::BiasGelu => gelu_ref(wv),
                    Epilogue::BiasResidual(r) => wv + r[idx] as f64,
                    Epilogue::Accumulate => wv - b[idx % n] as f64 + res[idx] as f64,
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
fn linear_split_by_columns_gives_the_bits_of_one_thread_f32_and_int8() {
    if !available() {
        eprintln!("SKIP: no AVX2 + FMA on this CPU");
        return;
    }
    // n of 1, 3 (odd), 5 and 24 panels; one row, a partial tile, more than one MC block; 2, 3
    // and more parts than panel pairs; int8 on the process's tiles (AMX: not split)
    let pool = pool3();
    for &(m, k, n) in &[(1, 40, 16), (13, 384, 48), (5, 700, 80), (200, 384, 384)] {
        let x = rnd(m * k, 5);
        let w = rnd(n * k, 6);
        let res = rnd(m * n, 7);
        let pl = PackedLinear::pack(&w, n, k, rnd(n, 8));
        for ep in [
            Epilogue::Bias,
            Epilogue::BiasGelu,
            Epilogue::BiasResidual(&res),
        ] {
            let ql = QLinear::quantize(&w, n, k, rnd(n, 8), OUTLIERS);
            let mut want = vec![f32::NAN; m * n];
            linear(&x, m, &pl, &mut want, ep);
            let mut qwant = vec![f32::NAN; m * n];
            qlinear(&x, m, &ql, &mut qwant, ep);
            let same =
                |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
            for parts in [2, 3, 16] {
                let mut got = vec![f32::NAN; m * n];
                pool.install(|| linear_cols(&x, m, &pl, &mut got, ep, parts));
                assert!(
                    same(&got, &want),
                    "f32 m{m} k{k} n{n} in {parts} parts differs from one thread"
                );
                let mut got = vec![f32::NAN; m * n];
                pool.install(|| qlinear_cols(&x, m, &ql, &mut got, ep, parts));
                assert!(
                    same(&got, &qwant),
                    "int8 m{m} k{k} n{n} in {parts} parts differs from one thread"
                );
            }
        }
    }
}

#[test]
fn f16_panels_give_the_bits_of_f32_panels_on_every_path() {
    if !available() {
        eprintln!("SKIP: no AVX2 + FMA + F16C on this CPU");
        return;
    }
    // weights that are f16 values (as the shipped encoder's), every tile width, partial
    // tiles, K blocks, an odd panel count, the column split
    let pool = pool3();
    let widths: &[bool] = if has_avx512() {
        &[false, true]
    } else {
        &[false]
    };
    for &(m, k, n) in &[(1, 40, 16), (13, 384, 48), (27, 700, 80), (101, 1536, 64)] {
        let x = rnd(m * k, 21);
        let w: Vec<f32> = rnd(n * k, 22)
            .iter()
            .map(|&v| half::f16::from_f32(v).to_f32())
            .collect();
        let b = rnd(n, 23);
        let res = rnd(m * n, 24);
        let full = PackedLinear::pack(&w, n, k, b.clone());
        let half = PackedLinear::pack_half(&w, n, k, b).expect("f16 values pack as f16");
        assert!(half.is_half() && !full.is_half());
        for ep in [
            Epilogue::Bias,
            Epilogue::BiasGelu,
            Epilogue::BiasResidual(&res),
        ] {
            for &wide in widths {
                let mut want = vec![f32::NAN; m * n];
                linear_on(&x, m, &full, &mut want, ep, wide);
                let mut got = vec![f32::NAN; m * n];
                linear_on(&x, m, &half, &mut got, ep, wide);
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "m{m} k{k} n{n} wide {wide} [{i}]");
                }
            }
            let mut want = vec![f32::NAN; m * n];
            linear(&x, m, &full, &mut want, ep);
            let mut got = vec![f32::NAN; m * n];
            pool.install(|| linear_cols(&x, m, &half, &mut got, ep, 3));
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "m{m} k{k} n{n}: f16 panels in 3 column parts differ from f32 on one thread"
            );
        }
    }
    // a weight that is not an f16 value (it would round, underflow, overflow or lose a NaN's
    // payload): no f16 panels; f16's largest value and smallest subnormal: f16 panels
    let mut w: Vec<f32> = vec![0.5; 16 * 8];
    for bad in [0.1, 1e-8, 70000.0, f32::from_bits(0x7fc0_0001)] {
        w[7] = bad;
        assert!(
            PackedLinear::pack_half(&w, 16, 8, vec![0.0; 16]).is_none(),
            "{bad}"
        );
    }
    for good in [65504.0, 2f32.powi(-24), -0.0] {
        w[7] = good;
        assert!(
            PackedLinear::pack_half(&w, 16, 8, vec![0.0; 16]).is_some(),
            "{good}"
        );
    }
}

#[test]
fn a_spinning_team_runs_every_part_once_and_the_column_split_keeps_its_bits() {
    if !available() {
        eprintln!("SKIP: no AVX2 + FMA + F16C on this CPU");
        return;
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    // no team on this thread: declined, nothing run
    let runs = AtomicUsize::new(0);
    let count = |j: usize| {
        runs.fetch_add(1 << (4 * j), Ordering::SeqCst);
    };
    assert!(!on_team(3, &count));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let pool = pool3();
    let (m, k, n) = (27, 384, 1152);
    let x = rnd(m * k, 31);
    let pl = PackedLinear::pack(&rnd(n * k, 32), n, k, rnd(n, 33));
    let mut want = vec![f32::NAN; m * n];
    linear(&x, m, &pl, &mut want, Epilogue::BiasGelu);
    // a part that tries to post a job of its own: declined
    let nested = AtomicUsize::new(0);
    let inner = |j: usize| {
        if !on_team(2, &|_| {}) {
            nested.fetch_add(1 << (4 * j), Ordering::SeqCst);
        }
    };
    pool.install(|| {
        with_team(2, || {
            // whether or not the helpers have started yet, every part runs exactly once
            for round in 0..200 {
                runs.store(0, Ordering::SeqCst);
                assert!(on_team(3, &count));
                assert_eq!(runs.load(Ordering::SeqCst), 0x111, "round {round}");
                // more parts than threads, and fewer
                runs.store(0, Ordering::SeqCst);
                assert!(on_team(5, &count));
                assert_eq!(runs.load(Ordering::SeqCst), 0x11111, "round {round}");
                runs.store(0, Ordering::SeqCst);
                assert!(on_team(1, &count));
                assert_eq!(runs.load(Ordering::SeqCst), 0x1, "round {round}");
                let mut got = vec![f32::NAN; m * n];
                linear_cols(&x, m, &pl, &mut got, Epilogue::BiasGelu, 3);
                assert!(got
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
            }
            nested.store(0, Ordering::SeqCst);
            assert!(on_team(3, &inner));
            assert_eq!(nested.load(Ordering::SeqCst), 0x111);
        })
    });
    // the team is gone with its closure
    assert!(!on_team(3, &count));
}

#[test]
fn gelu_and_its_derivative_are_the_erf_form_to_float_precision() {
    if !available() {
        eprintln!("SKIP: no AVX2 + FMA on this CPU");
        return;
    }
    // 1,201 values: a tail of 1 after the 8-lane blocks
    let xs: Vec<f32> = (-600..=600).map(|i| i as f32 / 100.0).collect();
    let mut paths = vec![false];
    if has_avx512() {
        paths.push(true);
    }
    for wide in paths {
        let mut ys = vec![0f32; xs.len()];
        let mut ds = vec![0f32; xs.len()];
        gelu_with_grad_on(&xs, &mut ys, &mut ds, wide);
        for ((&x, &y), &d) in xs.iter().zip(&ys).zip(&ds) {
            let want = gelu_ref(x as f64);
            assert!(
                (y as f64 - want).abs() < 3e-7 * (1.0 + x.abs() as f64),
                "gelu({x}) = {y}, want {want}"
            );
            // the derivative Phi(x) + x phi(x) in f64
            let xf = x as f64;
            let dwant = 0.5 * (1.0 + erf_ref(xf / std::f64::consts::SQRT_2))
                + xf * (-0.5 * xf * xf).exp() / (2.0 * std::f64::consts::PI).sqrt();
            assert!(
                (d as f64 - dwant).abs() < 1e-6 * (1.0 + x.abs() as f64),
                "gelu'({x}) = {d}, want {dwant}"
            );
        }
        // tanh-approximate GELU differs by ~1e-4 here: this is the exact form
        assert!((ys[600 + 100] as f64 - gelu_ref(1.0)).abs() < 1e-7);
        // gelu'(0) = 1/2, gelu'(1) = Phi(1) + phi(1)
        assert!((ds[600] - 0.5).abs() < 1e-7);
        assert!((ds[700] as f64 - (0.841_344_746 + 0.241_970_725)).abs() < 3e-7);
    }
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
            let want = (row[j] as f64 - mean) / (var + 1e-12).sqrt() * g[j] as f64 + b[j] as f64;
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

/// Runs `run(epilogue, wide, out)` narrow and wide with every epilogue (`res` the residual)
/// and asserts the same bits in all `len` outputs.
fn same_bits(what: &str, len: usize, res: &[f32], run: impl Fn(Epilogue, bool, &mut [f32])) {
    for ep in [
        Epilogue::Bias,
        Epilogue::BiasGelu,
        Epilogue::BiasResidual(res),
    ] {
        let mut narrow = vec![f32::NAN; len];
        let mut wide = vec![f32::NAN; len];
        run(ep, false, &mut narrow);
        run(ep, true, &mut wide);
        for (idx, (a, b)) in narrow.iter().zip(&wide).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{what} [{idx}]: {a} vs {b}");
        }
    }
}

#[test]
fn avx512_tiles_give_the_avx2_tiles_sums_bit_for_bit() {
    if !available() || !has_avx512() {
        eprintln!("SKIP: no AVX-512 on this CPU (the AVX2 tiles run alone)");
        return;
    }
    // partial 12-row and 6-row tiles, K blocks, an odd panel count, the encoder's shapes
    for &(m, k, n) in &[
        (13, 40, 32),
        (101, 384, 48),
        (7, 700, 16),
        (200, 1536, 64),
        (97, 384, 1152),
    ] {
        let x = rnd(m * k, 11);
        let w = rnd(n * k, 12);
        let b = rnd(n, 13);
        let res = rnd(m * n, 14);
        let pl = PackedLinear::pack(&w, n, k, b);
        let what = format!("m{m} k{k} n{n}");
        same_bits(&what, m * n, &res, |ep, wide, out| {
            linear_on(&x, m, &pl, out, ep, wide)
        });
    }
}

#[test]
fn avx512_int8_tiles_give_the_avx2_tiles_results_bit_for_bit() {
    if !available() || !has_avx512() {
        eprintln!("SKIP: no AVX-512 VNNI on this CPU (the AVX2 tiles run alone)");
        return;
    }
    // K not a multiple of 4 or 8, partial tiles, an odd panel count, with and without
    // outliers, the encoder's shapes
    for &(m, k, n, outliers) in &[
        (13, 40, 32, 8),
        (101, 384, 48, 8),
        (7, 701, 16, 0),
        (200, 1536, 64, 8),
        (97, 384, 1152, 3),
    ] {
        let x = rnd(m * k, 21);
        let w = rnd(n * k, 22);
        let b = rnd(n, 23);
        let res = rnd(m * n, 24);
        let ql = QLinear::quantize(&w, n, k, b, outliers);
        let what = format!("m{m} k{k} n{n} outliers {outliers}");
        same_bits(&what, m * n, &res, |ep, wide, out| {
            let tiles = if wide { Tiles::Vnni } else { Tiles::Avx2 };
            qlinear_on(&x, m, &ql, out, ep, tiles)
        });
    }
}

#[test]
fn avx512_attention_gives_the_avx2_attention_bit_for_bit() {
    if !available() || !has_avx512() {
        eprintln!("SKIP: no AVX-512 on this CPU (the AVX2 tiles run alone)");
        return;
    }
    // e5-small's heads (12 x 32); lengths with odd and even query panels, partial tiles
    let (hidden, heads) = (384, 12);
    let mut s = AttnScratch::default();
    for len in [1usize, 5, 12, 17, 40, 128] {
        let qkv: Vec<f32> = rnd(len * 3 * hidden, 30 + len as u64)
            .iter()
            .map(|v| v * 4.0)
            .collect();
        let mut narrow = vec![f32::NAN; len * hidden];
        let mut wide = vec![f32::NAN; len * hidden];
        attention_on(&qkv, len, hidden, heads, &mut narrow, &mut s, false);
        attention_on(&qkv, len, hidden, heads, &mut wide, &mut s, true);
        for (idx, (a, b)) in narrow.iter().zip(&wide).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "len {len} [{idx}]: {a} vs {b}");
        }
    }
}

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
            if has_avx512() {
                let (mut i3, mut v3) = (vec![0u32; t], vec![0f32; t]);
                // SAFETY: AVX-512 checked just above.
                let range512 =
                    unsafe { take_outliers512(&row, &mut i3, &mut v3) }.unwrap_or_else(|| {
                        // SAFETY: AVX2 + FMA checked above.
                        unsafe { take_outliers(&row, &mut i3, &mut v3) }
                    });
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

/// The training engine's attention backward as plain loops, one output at a time: each row of
/// `dP` by `axpy` over the head's width, each row of `dV`, `dK`, `dQ` summed over the
/// sequence in order (the engine's first version). The blocked loops must give its bits.
fn attention_back_reference(
    qkv: &[f32],
    len: usize,
    heads: usize,
    hd: usize,
    probs_t: &[f32],
    dctx: &[f32],
) -> Vec<f32> {
    let h = heads * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut dqkv = vec![0f32; qkv.len()];
    let sum = |n: usize, w: &dyn Fn(usize) -> f32, row: &dyn Fn(usize) -> Vec<f32>| {
        let mut acc = vec![0f32; hd];
        for i in 0..n {
            let (s, r) = (w(i), row(i));
            for d in 0..hd {
                acc[d] = s.mul_add(r[d], acc[d]);
            }
        }
        acc
    };
    for head in 0..heads {
        let (qo, ko, vo) = (head * hd, h + head * hd, 2 * h + head * hd);
        let pt = &probs_t[head * len * len..(head + 1) * len * len];
        let at = |i: usize, o: usize| qkv[i * 3 * h + o..i * 3 * h + o + hd].to_vec();
        let dc = |i: usize| dctx[i * h + head * hd..i * h + (head + 1) * hd].to_vec();
        let mut ds = vec![0f32; len * len];
        for i in 0..len {
            let dci = dc(i);
            let row = &mut ds[i * len..(i + 1) * len];
            for d in 0..hd {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = dci[d].mul_add(qkv[j * 3 * h + vo + d], *v);
                }
            }
            // the score row's dot with P in 16 lanes, term j fused into lane j % 16
            let mut lanes = [0f32; 16];
            for j in 0..len {
                lanes[j % 16] = pt[j * len + i].mul_add(row[j], lanes[j % 16]);
            }
            let dot: f32 = lanes.iter().sum();
            for (j, v) in row.iter_mut().enumerate() {
                *v = pt[j * len + i] * (*v - dot) * scale;
            }
        }
        for j in 0..len {
            let dv = sum(len, &|i| pt[j * len + i], &dc);
            let dk = sum(len, &|i| ds[i * len + j], &|i| at(i, qo));
            let dq = sum(len, &|i| ds[j * len + i], &|i| at(i, ko));
            dqkv[j * 3 * h + vo..j * 3 * h + vo + hd].copy_from_slice(&dv);
            dqkv[j * 3 * h + ko..j * 3 * h + ko + hd].copy_from_slice(&dk);
            dqkv[j * 3 * h + qo..j * 3 * h + qo + hd].copy_from_slice(&dq);
        }
    }
    dqkv
}

/// The blocked attention backward gives the bits of the plain loops, for sequences shorter
/// than a block, with and without partial blocks of rows and columns, and heads of width 32
/// (blocked) and 16 (one row at a time), on every vector width the CPU runs.
#[test]
fn blocked_attention_backward_gives_the_bits_of_plain_loops() {
    use super::train::{attention_back_on, Attn, Width};
    if !available() {
        eprintln!("SKIP training attention: the CPU lacks AVX2 + FMA");
        return;
    }
    let mut widths = vec![Width::Base, Width::Avx2];
    if has_avx512() {
        widths.push(Width::Avx512);
    }
    for (len, heads, hd) in [
        (1, 2, 32),
        (3, 1, 32),
        (16, 2, 32),
        (37, 3, 32),
        (64, 2, 32),
        (21, 2, 16),
    ] {
        let a = Attn { len, heads, hd };
        let h = heads * hd;
        let qkv: Vec<f32> = rnd(len * 3 * h, 11).iter().map(|v| v * 4.0).collect();
        let dctx = rnd(len * h, 12);
        let mut ctx = vec![0f32; len * h];
        let mut probs_t = vec![0f32; heads * len * len];
        attention_keep(
            &qkv,
            len,
            h,
            heads,
            &mut ctx,
            &mut AttnScratch::default(),
            &mut probs_t,
        );
        let want = attention_back_reference(&qkv, len, heads, hd, &probs_t, &dctx);
        assert!(want.iter().any(|v| *v != 0.0));
        for &w in &widths {
            let mut got = vec![1f32; qkv.len()];
            attention_back_on(&qkv, a, &probs_t, &dctx, &mut got, w);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&got),
                bits(&want),
                "len {len} heads {heads} hd {hd} on {w:?}"
            );
        }
    }
}

/// The training engine's attention: the forward pass keeps probabilities that are a softmax
/// per query and give the encoder's context bits; the backward pass gives the same bits
/// compiled for every vector width the CPU runs (the baseline always; AVX2 and AVX-512 where
/// present).
#[test]
fn training_attention_is_the_same_on_every_path() {
    use super::train::{attention_back_on, Attn, Width};
    if !available() {
        eprintln!("SKIP training attention: the CPU lacks AVX2 + FMA");
        return;
    }
    let a = Attn {
        len: 37,
        heads: 3,
        hd: 32,
    };
    let h = a.heads * a.hd;
    let qkv: Vec<f32> = rnd(a.len * 3 * h, 7).iter().map(|v| v * 4.0).collect();
    let dctx = rnd(a.len * h, 8);
    let mut ctx = vec![0f32; a.len * h];
    let mut probs_t = vec![0f32; a.heads * a.len * a.len];
    attention_keep(
        &qkv,
        a.len,
        h,
        a.heads,
        &mut ctx,
        &mut AttnScratch::default(),
        &mut probs_t,
    );
    let mut plain = vec![0f32; a.len * h];
    attention(
        &qkv,
        a.len,
        h,
        a.heads,
        &mut plain,
        &mut AttnScratch::default(),
    );
    assert_eq!(ctx, plain, "keeping the probabilities changes the context");
    // per head and query i, the kept column P(i, .) sums to one
    for head in 0..a.heads {
        for i in 0..a.len {
            let s: f32 = (0..a.len)
                .map(|j| probs_t[head * a.len * a.len + j * a.len + i])
                .sum();
            assert!((s - 1.0).abs() < 1e-5, "head {head} query {i}: {s}");
        }
    }
    let run = |w: Width| {
        let mut dqkv = vec![1f32; qkv.len()];
        attention_back_on(&qkv, a, &probs_t, &dctx, &mut dqkv, w);
        dqkv
    };
    let base = run(Width::Base);
    assert!(base.iter().any(|v| *v != 0.0 && *v != 1.0));
    let mut widths = vec![Width::Avx2];
    if has_avx512() {
        widths.push(Width::Avx512);
    } else {
        eprintln!("SKIP AVX-512 training attention: the CPU lacks AVX-512");
    }
    for w in widths {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&run(w)), bits(&base), "{w:?} gradient");
    }
}

/// The training engine's transpose (8 x 8 AVX2 blocks plus plain edges) puts every value where
/// `out[j * r + i] = a[i * c + j]` says, for shapes with and without whole blocks, alone and
/// split over the pool in blocks of columns.
#[test]
fn transpose_moves_every_value() {
    use super::train::{transpose, transpose_par};
    for (r, c) in [
        (1, 1),
        (3, 5),
        (8, 8),
        (13, 37),
        (64, 384),
        (2210, 48),
        (9, 1536),
    ] {
        let a: Vec<f32> = (0..r * c).map(|v| v as f32 * 0.5 - 7.0).collect();
        let mut out = vec![f32::NAN; r * c];
        transpose(&a, r, c, &mut out);
        for i in 0..r {
            for j in 0..c {
                assert_eq!(out[j * r + i], a[i * c + j], "{r} x {c} at ({i}, {j})");
            }
        }
        // the parallel one (blocks of 64 columns, a partial last block) moves the same values
        let mut par = vec![f32::NAN; r * c];
        transpose_par(&a, r, c, &mut par);
        assert_eq!(par, out, "{r} x {c} in parallel");
    }
}

#[test]
fn adamw_and_the_sum_of_squares_are_the_same_on_every_path() {
    use super::train::{adamw_update_on, sum_squares_on, AdamW, Width};
    let mut widths = vec![Width::Base];
    if available() {
        widths.push(Width::Avx2);
    }
    if has_avx512() {
        widths.push(Width::Avx512);
    }
    // 1,003 values: a tail after the vector blocks
    let n = 1003;
    let g = rnd(n, 11);
    let a = AdamW {
        scale: 0.7,
        b1: 0.9,
        b2: 0.999,
        o1: 0.1,
        o2: 0.001,
        ic1: 1.0 / 0.19,
        ic2: 1.0 / 0.001_999,
        eps: 1e-8,
        decay: 0.999_95,
        lr: 5e-5,
    };
    let want_sq: f64 = g.iter().map(|&x| x as f64 * x as f64).sum();
    let mut first = None;
    for w in widths {
        let (mut p, mut m, mut v) = (rnd(n, 12), rnd(n, 13), rnd(n, 14));
        v.iter_mut().for_each(|x| *x = x.abs());
        let (p0, m0, v0) = (p.clone(), m.clone(), v.clone());
        adamw_update_on(&mut p, &mut m, &mut v, &g, &a, w);
        // the definition, value by value
        for j in [0, 1, 500, n - 1] {
            let gj = g[j] * a.scale;
            let mj = m0[j] * a.b1 + gj * a.o1;
            let vj = v0[j] * a.b2 + gj * gj * a.o2;
            let want = p0[j] * a.decay - (mj * a.ic1) / ((vj * a.ic2).sqrt() + a.eps) * a.lr;
            assert_eq!((p[j], m[j], v[j]), (want, mj, vj), "{w:?} [{j}]");
        }
        let sq = sum_squares_on(&g, w);
        assert!(
            (sq - want_sq).abs() <= 1e-12 * want_sq,
            "{w:?}: {sq} vs {want_sq}"
        );
        let got = (p, m, v, sq.to_bits());
        match &first {
            None => first = Some(got),
            Some(f) => assert!(*f == got, "{w:?} differs from the baseline path"),
        }
    }
}
