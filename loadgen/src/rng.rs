//! Deterministic pseudo-random numbers and topic popularity for workload generation.
//!
//! Owns: a small seeded generator (SplitMix64: one add, three multiplies and shifts per
//! number, good enough for picking topics, and reproducible from `--seed`), and the topic
//! picker (uniform, or Zipf through Vose's alias table so a pick costs O(1) whatever the
//! topic count). Must not: read the clock or any global state, so a seed replays a run's
//! choices exactly.

/// SplitMix64 (Steele, Lea, Flood 2014). Not for cryptography.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// An independent stream for `(seed, stream)`, e.g. one per connection, so the choices of
    /// one connection do not depend on how many others exist.
    pub fn derive(seed: u64, stream: u64) -> Rng {
        let mut mixer = Rng::new(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Rng::new(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-32 for any n we use).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// How often each known topic is asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Popularity {
    Uniform,
    /// Topic of rank r (r = 1 is topic index 0) is asked with weight 1 / r^exponent.
    Zipf {
        exponent: f64,
    },
}

impl std::str::FromStr for Popularity {
    type Err = String;
    fn from_str(text: &str) -> Result<Popularity, String> {
        if text == "uniform" {
            return Ok(Popularity::Uniform);
        }
        let exponent = match text.strip_prefix("zipf") {
            Some("") => 0.99,
            Some(rest) => {
                let value =
                    rest.strip_prefix(':').ok_or_else(|| format!("{text:?}: expected zipf or zipf:EXPONENT"))?;
                value.parse::<f64>().map_err(|e| format!("{text:?}: bad Zipf exponent: {e}"))?
            }
            None => return Err(format!("{text:?}: expected uniform, zipf or zipf:EXPONENT")),
        };
        if !(exponent > 0.0 && exponent <= 10.0) {
            return Err(format!("{text:?}: the Zipf exponent must be in (0, 10]"));
        }
        Ok(Popularity::Zipf { exponent })
    }
}

impl std::fmt::Display for Popularity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Popularity::Uniform => f.write_str("uniform"),
            Popularity::Zipf { exponent } => write!(f, "zipf:{exponent}"),
        }
    }
}

/// Picks topic indexes in `0..topic_count` with a given popularity. Shared read-only by
/// every worker thread.
#[derive(Debug)]
pub struct TopicPicker {
    topic_count: u32,
    /// Vose's alias table, empty for uniform: column i keeps i with probability
    /// `keep[i]`, else answers `alias[i]`.
    keep: Vec<f64>,
    alias: Vec<u32>,
}

impl TopicPicker {
    pub fn new(topic_count: u32, popularity: Popularity) -> TopicPicker {
        assert!(topic_count > 0, "a picker needs at least one topic");
        match popularity {
            Popularity::Uniform => TopicPicker { topic_count, keep: Vec::new(), alias: Vec::new() },
            Popularity::Zipf { exponent } => {
                let weights: Vec<f64> = (1..=topic_count as u64).map(|rank| (rank as f64).powf(-exponent)).collect();
                let (keep, alias) = alias_table(&weights);
                TopicPicker { topic_count, keep, alias }
            }
        }
    }

    pub fn pick(&self, rng: &mut Rng) -> u32 {
        let column = rng.below(self.topic_count as u64) as u32;
        if self.keep.is_empty() {
            return column;
        }
        if rng.unit() < self.keep[column as usize] {
            column
        } else {
            self.alias[column as usize]
        }
    }
}

/// Vose's alias method: O(n) build, O(1) sampling, exact for the given weights.
fn alias_table(weights: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let n = weights.len();
    let total: f64 = weights.iter().sum();
    assert!(total > 0.0, "weights sum to {total}");
    let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
    let mut keep = vec![1.0; n];
    let mut alias: Vec<u32> = (0..n as u32).collect();
    let (mut small, mut large): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
    for (i, &s) in scaled.iter().enumerate() {
        if s < 1.0 {
            small.push(i as u32)
        } else {
            large.push(i as u32)
        }
    }
    while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
        small.pop();
        keep[s as usize] = scaled[s as usize];
        alias[s as usize] = l;
        scaled[l as usize] -= 1.0 - scaled[s as usize];
        if scaled[l as usize] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    // Whatever is left is 1.0 up to rounding: those columns keep themselves.
    (keep, alias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::derive(7, 3);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::derive(7, 3);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        let mut other = Rng::derive(7, 4);
        assert_ne!(a[0], other.next_u64());
    }

    #[test]
    fn below_and_unit_stay_in_range() {
        let mut rng = Rng::new(1);
        for n in [1u64, 2, 3, 10, 1 << 40] {
            for _ in 0..1000 {
                assert!(rng.below(n) < n);
            }
        }
        for _ in 0..1000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }

    #[test]
    fn popularity_parses() {
        assert_eq!("uniform".parse::<Popularity>(), Ok(Popularity::Uniform));
        assert_eq!("zipf".parse::<Popularity>(), Ok(Popularity::Zipf { exponent: 0.99 }));
        assert_eq!("zipf:1.2".parse::<Popularity>(), Ok(Popularity::Zipf { exponent: 1.2 }));
        assert!("zipf:0".parse::<Popularity>().is_err());
        assert!("zipf1".parse::<Popularity>().is_err());
        assert!("pareto".parse::<Popularity>().is_err());
    }

    #[test]
    fn uniform_covers_every_topic_evenly() {
        let picker = TopicPicker::new(10, Popularity::Uniform);
        let mut rng = Rng::new(42);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[picker.pick(&mut rng) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn zipf_follows_its_weights() {
        let picker = TopicPicker::new(1000, Popularity::Zipf { exponent: 1.0 });
        let mut rng = Rng::new(9);
        let mut counts = vec![0u32; 1000];
        let draws = 400_000;
        for _ in 0..draws {
            counts[picker.pick(&mut rng) as usize] += 1;
        }
        // Rank 1 vs rank 2 is 2:1 for exponent 1; rank 1 gets 1/H(1000) ≈ 13.4% of draws.
        let ratio = counts[0] as f64 / counts[1] as f64;
        assert!((1.85..2.15).contains(&ratio), "ratio {ratio}");
        let share = counts[0] as f64 / draws as f64;
        assert!((0.125..0.143).contains(&share), "share {share}");
        assert!(counts[999] > 0, "the tail is reachable");
    }

    #[test]
    fn alias_table_is_exact_for_simple_weights() {
        let (keep, alias) = alias_table(&[1.0, 3.0]);
        // Column 0 keeps itself half the time (0.5 of 2 columns → weight 0.25), else 1.
        assert!((keep[0] - 0.5).abs() < 1e-12);
        assert_eq!(alias[0], 1);
        assert!((keep[1] - 1.0).abs() < 1e-12);
    }
}
