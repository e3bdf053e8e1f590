//! Gale's one random generator: xorshift64*, small and fast, not cryptographic. Each executor
//! (tuple and edge ids) and each random spout task has its own, so no lock is taken.

/// xorshift64*: random 64-bit tuple and edge ids, per executor, no locks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rng(pub u64);

impl Rng {
    /// A generator for `seed` (any value; 0 is made usable).
    pub fn seeded(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// A generator seeded from the clock and `salt` (a task id, say), so tasks and runs differ.
    pub fn from_clock(salt: u64) -> Self {
        Self::seeded(crate::tuple::now_us() ^ salt.rotate_left(32))
    }

    /// The next 64 random bits; never 0 (0 is "nothing pending" in the acker's XOR bookkeeping).
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() >> 33) as usize % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_zero_and_below_stays_below() {
        let mut r = Rng::seeded(0);
        for n in [1usize, 2, 3, 7, 1000] {
            for _ in 0..1000 {
                assert_ne!(r.next(), 0);
                assert!(r.below(n) < n);
            }
        }
        assert_eq!(Rng::seeded(5).below(0), 0);
    }

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::seeded(42), Rng::seeded(42));
        assert!((0..100).all(|_| a.next() == b.next()));
        assert_ne!(Rng::seeded(1).next(), Rng::seeded(2).next());
    }
}
