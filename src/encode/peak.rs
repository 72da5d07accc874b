//! The machine's arithmetic peak, measured: what the kernels could reach at best on this CPU at
//! its current clock. `vocmine bench` prints its achieved GFLOP/s against these.
//!
//! Each loop runs 12 (AVX2) or 24 (AVX-512) independent accumulator chains, as the tiles do,
//! enough to hide the instructions' latency, for a fixed time on every thread at once.

use super::kernels::available;
use super::kernels::use_avx512;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::time::{Duration, Instant};

/// f32 peak in GFLOP/s (an FMA counts 2 per lane) of `threads` threads running the FMAs the
/// kernels use (AVX-512 where [`use_avx512`], else AVX2) together for about `ms`
/// milliseconds; 0 without AVX2 + FMA.
pub fn f32_gflops(threads: usize, ms: u64) -> f64 {
    let wide = use_avx512();
    measure(threads, ms, |n| {
        // SAFETY: AVX2 + FMA checked by `measure`, AVX-512 by `use_avx512`.
        unsafe {
            if wide {
                fma512_loop(n)
            } else {
                fma_loop(n)
            }
        }
    })
}

/// int8 peak in GOP/s (a multiply-add counts 2) of the int8 kernel's inner step (`vpdpbusd`
/// where [`use_avx512`], else `vpmaddubsw` + `vpmaddwd` + `vpaddd`) on `threads` threads for
/// about `ms` milliseconds.
pub fn int8_gops(threads: usize, ms: u64) -> f64 {
    let wide = use_avx512();
    measure(threads, ms, |n| {
        // SAFETY: AVX2 + FMA checked by `measure`, AVX-512 VNNI by `use_avx512`.
        unsafe {
            if wide {
                vnni_loop(n)
            } else {
                int8_loop(n)
            }
        }
    })
}

/// bf16 peak in GFLOP/s (a product counts 2: a `vdpbf16ps` lane adds two) of the bf16
/// tile's inner step on `threads` threads for about `ms` milliseconds; 0 without
/// AVX512-BF16.
pub fn bf16_gflops(threads: usize, ms: u64) -> f64 {
    if !super::kernels::has_avx512_bf16() {
        return 0.0;
    }
    measure(threads, ms, |n| {
        // SAFETY: AVX512-BF16 checked just above.
        unsafe { dpbf16_loop(n) }
    })
}

/// Runs `f(iterations)` (which returns the multiply-adds done) on `threads` threads, growing
/// the count until a run takes `ms`; returns 2 x multiply-adds per second, summed over threads.
fn measure(threads: usize, ms: u64, f: impl Fn(u64) -> f64 + Sync) -> f64 {
    if !available() {
        return 0.0;
    }
    let mut n = 1u64 << 16;
    loop {
        let t = Instant::now();
        let done: f64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads.max(1))
                .map(|_| s.spawn(|| std::hint::black_box(f(n))))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
        });
        let dt = t.elapsed();
        if dt >= Duration::from_millis(ms) || n >= 1 << 40 {
            return 2.0 * done / dt.as_secs_f64() / 1e9;
        }
        n *= 2;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_loop(n: u64) -> f64 {
    let mut acc = [_mm256_setzero_ps(); 12];
    let (b0, b1) = (_mm256_set1_ps(0.999_9), _mm256_set1_ps(1.000_1));
    for i in 0..n {
        let a = _mm256_set1_ps(i as f32 * 1e-9);
        for r in 0..6 {
            acc[2 * r] = _mm256_fmadd_ps(a, b0, acc[2 * r]);
            acc[2 * r + 1] = _mm256_fmadd_ps(a, b1, acc[2 * r + 1]);
        }
    }
    std::hint::black_box(acc);
    n as f64 * 12.0 * 8.0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn int8_loop(n: u64) -> f64 {
    let mut acc = [_mm256_setzero_si256(); 12];
    let ones = _mm256_set1_epi16(1);
    let (b0, b1) = (_mm256_set1_epi8(3), _mm256_set1_epi8(-5));
    for i in 0..n {
        let a0 = _mm256_set1_epi32(i as i32);
        for r in 0..6 {
            // a different A per row, as in the tile (else the products are computed once)
            let a = _mm256_add_epi32(a0, _mm256_set1_epi32(r as i32 * 77));
            let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(a, b0), ones);
            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(a, b1), ones);
            acc[2 * r] = _mm256_add_epi32(acc[2 * r], p0);
            acc[2 * r + 1] = _mm256_add_epi32(acc[2 * r + 1], p1);
        }
    }
    std::hint::black_box(acc);
    n as f64 * 12.0 * 32.0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn fma512_loop(n: u64) -> f64 {
    let mut acc = [_mm512_setzero_ps(); 24];
    let (b0, b1) = (_mm512_set1_ps(0.999_9), _mm512_set1_ps(1.000_1));
    for i in 0..n {
        let a = _mm512_set1_ps(i as f32 * 1e-9);
        for r in 0..12 {
            acc[2 * r] = _mm512_fmadd_ps(a, b0, acc[2 * r]);
            acc[2 * r + 1] = _mm512_fmadd_ps(a, b1, acc[2 * r + 1]);
        }
    }
    std::hint::black_box(acc);
    n as f64 * 24.0 * 16.0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn vnni_loop(n: u64) -> f64 {
    let mut acc = [_mm512_setzero_si512(); 24];
    let (b0, b1) = (_mm512_set1_epi8(3), _mm512_set1_epi8(-5));
    for i in 0..n {
        let a0 = _mm512_set1_epi32(i as i32);
        for r in 0..12 {
            let a = _mm512_add_epi32(a0, _mm512_set1_epi32(r as i32 * 77));
            acc[2 * r] = _mm512_dpbusd_epi32(acc[2 * r], a, b0);
            acc[2 * r + 1] = _mm512_dpbusd_epi32(acc[2 * r + 1], a, b1);
        }
    }
    std::hint::black_box(acc);
    n as f64 * 24.0 * 64.0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
fn dpbf16_loop(n: u64) -> f64 {
    let mut acc = [_mm512_setzero_ps(); 24];
    // bf16 pairs (1.0, 1.0) and (0.5, -0.5): normal values, no subnormal shortcut
    // SAFETY: `__m512i` and `__m512bh` are both 64 bytes of plain lanes.
    let (b0, b1) = unsafe {
        (
            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(0x3f80_3f80)),
            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(0x3f00_bf00)),
        )
    };
    for i in 0..n {
        let a0 = _mm512_set1_epi32(0x3c00_3c00 + (i as i32 & 0xff));
        for r in 0..12 {
            // a different A per row, as in the tile
            let a = _mm512_add_epi32(a0, _mm512_set1_epi32(r as i32));
            // SAFETY: as above.
            let a = unsafe { std::mem::transmute::<__m512i, __m512bh>(a) };
            acc[2 * r] = _mm512_dpbf16_ps(acc[2 * r], a, b0);
            acc[2 * r + 1] = _mm512_dpbf16_ps(acc[2 * r + 1], a, b1);
        }
    }
    std::hint::black_box(acc);
    n as f64 * 24.0 * 32.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn peaks_are_measured() {
        if !super::available() {
            eprintln!("SKIP: no AVX2 + FMA on this CPU");
            return;
        }
        let f = super::f32_gflops(1, 50);
        let q = super::int8_gops(1, 50);
        assert!(f > 1.0 && q > 1.0, "{f} {q}");
        let b = super::bf16_gflops(1, 50);
        if crate::encode::kernels::has_avx512_bf16() {
            assert!(b > 1.0, "{b}");
        } else {
            eprintln!("SKIP bf16 peak: no AVX512-BF16 on this CPU");
            assert_eq!(b, 0.0);
        }
    }
}
