//! Seeded dice (SplitMix64): reproducible randomness for the sandbox's injected faults and for
//! test noise, so a failing run reproduces from its seed. Not for anything secret.

#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(seed)
    }

    pub fn roll(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.roll() % n as u64).unwrap_or(0)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.roll() % 100 < percent
    }
}

#[cfg(test)]
mod tests {
    use super::Dice;

    #[test]
    fn same_seed_same_rolls() {
        let roll = |seed| (0..8).map(|_| Dice::new(seed).roll()).collect::<Vec<_>>();
        assert_eq!(roll(3), roll(3));
        let mut d = Dice::new(3);
        assert!((0..1000).map(|_| d.below(6)).all(|n| n < 6));
    }
}
