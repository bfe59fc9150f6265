//! Synthetic corpora and view traces.
//!
//! Every generator takes its own seeded generator, so the corpus does not change when only the
//! trace length changes, and the crawler scenario starts from exactly the Zipf trace of the
//! first scenario.

use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use rand_distr::{Distribution, LogNormal, Zipf};

/// One megabyte, decimal (as disk and S3 sizes are usually quoted).
pub const MB: f64 = 1e6;

/// Log-normal object sizes, capped.
#[derive(Clone, Copy, Debug)]
pub struct SizeModel {
    /// Median size in bytes (`exp(mu)` of the log-normal).
    pub median: f64,
    /// Standard deviation of `ln(size)`. With 1.0, 95% of sizes fall within a factor
    /// `e^1.96 ≈ 7.1` of the median: 5.6–284 MB around a 40 MB median.
    pub sigma: f64,
    /// Largest size in bytes.
    pub cap: u64,
}

impl SizeModel {
    /// JPEG2000 masters: median 40 MB, most between 5 and 300 MB, at most 1 GB.
    pub fn jp2_masters() -> Self {
        Self {
            median: 40.0 * MB,
            sigma: 1.0,
            cap: 1_000_000_000,
        }
    }

    fn sample_many<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<u64> {
        let dist = LogNormal::new(self.median.ln(), self.sigma).expect("valid log-normal");
        (0..n)
            .map(|_| (dist.sample(rng).round() as u64).clamp(1, self.cap))
            .collect()
    }
}

/// Sizes of `n` images; image `i` has size `sizes[i]`.
pub fn corpus<R: Rng + ?Sized>(n: usize, model: SizeModel, rng: &mut R) -> Vec<u64> {
    model.sample_many(n, rng)
}

/// `views` image ids whose popularity follows Zipf with exponent `s` over `n` images. Which
/// image holds which rank is a random permutation, so popularity is independent of size.
pub fn zipf_trace<R: Rng + ?Sized>(n: usize, views: usize, s: f64, rng: &mut R) -> Vec<u32> {
    let mut by_rank: Vec<u32> = (0..n as u32).collect();
    by_rank.shuffle(rng);
    let zipf = Zipf::new(n as f64, s).expect("valid Zipf parameters");
    (0..views)
        .map(|_| {
            // Samples are integral ranks in 1..=n.
            let rank = zipf.sample(rng) as usize;
            by_rank[rank.clamp(1, n) - 1]
        })
        .collect()
}

/// A crawler mixed into `trace`: each event is replaced, with probability `fraction`, by the
/// next image of a one-pass scan over new, never-repeated images. Their sizes follow `model`
/// and are appended to `sizes` (their ids start at the old `sizes.len()`). Returns the new trace.
pub fn with_crawler<R: Rng + ?Sized>(
    trace: &[u32],
    sizes: &mut Vec<u64>,
    fraction: f64,
    model: SizeModel,
    rng: &mut R,
) -> Vec<u32> {
    let first_cold = sizes.len() as u32;
    let replaced: Vec<bool> = trace.iter().map(|_| rng.random_bool(fraction)).collect();
    let cold = replaced.iter().filter(|&&r| r).count();
    sizes.extend(model.sample_many(cold, rng));
    let mut next_cold = first_cold;
    trace
        .iter()
        .zip(&replaced)
        .map(|(&id, &r)| {
            if r {
                next_cold += 1;
                next_cold - 1
            } else {
                id
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::SeedableRng;

    #[test]
    fn sizes_look_like_jp2_masters() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut sizes = corpus(20_000, SizeModel::jp2_masters(), &mut rng);
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2] as f64 / MB;
        assert!((36.0..44.0).contains(&median), "median {median} MB");
        let within = sizes
            .iter()
            .filter(|&&s| (5.0 * MB..=300.0 * MB).contains(&(s as f64)))
            .count();
        assert!(within as f64 > 0.9 * sizes.len() as f64);
        assert!(*sizes.last().unwrap() <= 1_000_000_000);
    }

    #[test]
    fn zipf_trace_is_skewed_and_repeatable() {
        let trace = |seed| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            zipf_trace(1000, 50_000, 0.9, &mut rng)
        };
        let t = trace(3);
        assert_eq!(t, trace(3));
        let mut counts = vec![0u32; 1000];
        for &id in &t {
            counts[id as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // Zipf 0.9 over 1000 ranks: rank 1 holds ~9.5% of views, rank 10 about 8x less.
        assert!((4000..5500).contains(&counts[0]), "top {}", counts[0]);
        assert!(counts[0] > 5 * counts[9]);
    }

    #[test]
    fn crawler_images_are_new_and_seen_once() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let base: Vec<u32> = (0..10_000).map(|i| i % 100).collect();
        let mut sizes = vec![1; 100];
        let t = with_crawler(&base, &mut sizes, 0.2, SizeModel::jp2_masters(), &mut rng);
        assert_eq!(t.len(), base.len());
        let cold: Vec<u32> = t.iter().copied().filter(|&id| id >= 100).collect();
        assert_eq!(cold.len() + 100, sizes.len());
        assert!((1800..2200).contains(&cold.len()), "{}", cold.len());
        // In order, each once.
        assert!(cold.iter().zip(100..).all(|(&id, want)| id == want));
        // The other events are untouched.
        assert!(t.iter().zip(&base).all(|(&a, &b)| a >= 100 || a == b));
    }
}
