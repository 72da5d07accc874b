//! A small seeded random number generator (SplitMix64), so that splits, samples, shuffles and
//! initial weights are the same for the same seed on every machine.

/// SplitMix64: fast, seedable, good enough for shuffling and initialisation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The generator `n` draws further on: `skip(n)` then one draw gives what `n + 1` draws
    /// would (SplitMix64's state is a counter), so a stream can be cut into pieces drawn apart.
    pub fn skip(&self, n: u64) -> Rng {
        Rng(self.0.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    }

    /// Fills `out` with the dropout scales of the next `out.len()` draws: `scale` where the
    /// draw's [`next_f64`](Rng::next_f64) is below `keep`, else 0 (the same test, on the
    /// integers); the generator itself does not move. Each value depends only on its index,
    /// so the loop vectorises where the caller compiles it for 64-bit vector products.
    #[inline(always)]
    pub fn fill_keep(&self, out: &mut [f32], keep: f64, scale: f32) {
        // x / 2^53 < keep  <=>  x < ceil(keep 2^53), for the 53-bit integers x (exact in f64)
        let t = (keep * (1u64 << 53) as f64).ceil().max(0.0) as u64;
        const G: u64 = 0x9E37_79B9_7F4A_7C15;
        for (i, v) in out.iter_mut().enumerate() {
            let mut z = self.0.wrapping_add((i as u64 + 1).wrapping_mul(G));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            *v = if (z >> 11) < t { scale } else { 0.0 };
        }
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..5)
            .scan(Rng::new(8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut v: Vec<usize> = (0..10).collect();
        Rng::new(1).shuffle(&mut v);
        let mut s = v.clone();
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
        assert_ne!(v, s);
    }

    #[test]
    fn skip_lands_where_the_draws_would() {
        let mut r = Rng::new(3);
        let all: Vec<u64> = (0..1000).map(|_| r.next_u64()).collect();
        for n in [0usize, 1, 7, 999] {
            assert_eq!(Rng::new(3).skip(n as u64).next_u64(), all[n]);
        }
        assert_eq!(Rng::new(3).skip(1000).0, r.0);
    }

    #[test]
    fn fill_keep_is_the_draws_compared_with_keep() {
        for keep in [0.0, 0.1, 0.5, 0.9, 1.0] {
            let mut r = Rng::new(9).skip(5);
            let mut got = vec![7f32; 999];
            r.fill_keep(&mut got, keep, 2.5);
            let want: Vec<f32> = (0..999)
                .map(|_| if r.next_f64() < keep { 2.5 } else { 0.0 })
                .collect();
            assert_eq!(got, want, "keep {keep}");
        }
    }
}
