//! Realistic topic names for benchmarks and load: random words plus hex, about 35 bytes, much
//! less compressible than `TopicTest000123`, drawn from a fixed seed so every run sees the
//! same bytes. Must not: depend on the clock or on any global random state.

/// SplitMix64: a few lines, reproducible, good enough to pick words.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z as u128 * n as u128) >> 64) as u64
    }
}

/// The seed of `topic_names` ("meridian" in ASCII).
const SEED: u64 = 0x6d65_7269_6469_616e;
const ENVIRONMENTS: [&str; 4] = ["prod", "stage", "test", "dev"];
const DOMAINS: [&str; 12] =
    ["trade", "order", "payment", "user", "inventory", "logistics", "risk", "search", "ads", "billing", "coupon", "im"];
const ENTITIES: [&str; 12] = [
    "refund", "invoice", "cart", "profile", "shipment", "account", "session", "price", "review", "ticket", "stock",
    "audit",
];
const EVENTS: [&str; 8] = ["notify", "created", "updated", "deleted", "sync", "retry", "changed", "event"];

/// `count` distinct names like `prod_trade_refund_notify_7f3a2c_000123`; the same `count`
/// always gives the same names, and a longer list starts with a shorter one.
pub fn topic_names(count: usize) -> Vec<String> {
    let mut rng = Rng::new(SEED);
    (0..count)
        .map(|index| {
            let mut pick = |words: &[&'static str]| words[rng.below(words.len() as u64) as usize];
            let (env, domain, entity, event) = (pick(&ENVIRONMENTS), pick(&DOMAINS), pick(&ENTITIES), pick(&EVENTS));
            let hex = rng.below(1 << 24);
            format!("{env}_{domain}_{entity}_{event}_{hex:06x}_{index:06}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_reproducible_and_realistic() {
        let names = topic_names(1_000);
        assert_eq!(names, topic_names(1_000));
        assert_eq!(names[..10], topic_names(10)[..]);
        let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        let mean = names.iter().map(String::len).sum::<usize>() / names.len();
        assert!((25..=45).contains(&mean), "mean length {mean}");
    }
}
