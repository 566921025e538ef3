//! The random streams of an attack run. Every random choice made for image `index` under seed
//! `seed` comes from ChaCha8 seeded with `seed` on stream `index` ([`image_rng`]), so a record
//! depends only on (seed, image index): not on the batch, the chunk, the thread or the order of
//! execution. The target of a targeted attack is drawn from stream `index` of
//! `seed ^ TARGET_SALT` ([`target_rng`]), so drawing it never shifts the attack's own stream.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Salt of the seed that draws random targets (the ASCII bytes of "target", as `bbed sweep`
/// always used).
pub const TARGET_SALT: u64 = 0x7461_7267_6574_0000;

/// The attack's random stream for image `index` under `seed`.
pub fn image_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

/// The stream random targets of image `index` are drawn from.
pub fn target_rng(seed: u64, index: usize) -> ChaCha8Rng {
    image_rng(seed ^ TARGET_SALT, index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_differ_by_index_and_salt_and_repeat_by_seed() {
        let a: u64 = image_rng(7, 0).gen();
        let b: u64 = image_rng(7, 1).gen();
        let c: u64 = image_rng(7, 0).gen();
        let t: u64 = target_rng(7, 0).gen();
        assert_ne!(a, b);
        assert_eq!(a, c);
        assert_ne!(a, t);
    }
}
