//! The scale scenario's topic layout: B brokers each hosting exactly T topics drawn from a
//! topic universe, every topic on 2..=10 brokers (fewer when there are fewer brokers).
//!
//! The B×T topic-on-broker entries are numbered as slots; topic t owns the consecutive slots
//! `starts[t]..starts[t + 1]` and slot s lives on broker `s % B`, so a topic's brokers are
//! distinct (its width never exceeds B) and every broker gets exactly T slots. Widths are
//! uniform in 2..=max from a seeded generator; the last topic takes what is left, and no
//! width ever leaves fewer than 2 slots behind. Pure functions of (B, T, seed): must not do
//! I/O or read the clock.

use crate::rng::Rng;

/// Fewest brokers hosting one topic.
pub const WIDTH_MIN: u32 = 2;
/// Most brokers hosting one topic.
pub const WIDTH_MAX: u32 = 10;
/// Most topic-on-broker entries (B×T) a layout may have; slots are counted in u32 elsewhere.
pub const ENTRIES_MAX: u64 = 100_000_000;

/// Slot starts of every topic, `topics + 1` values from 0 to B×T (see the module doc).
pub fn topic_starts(brokers: u32, per_broker: u32, seed: u64) -> Result<Vec<u64>, String> {
    if brokers < WIDTH_MIN {
        return Err(format!("--brokers {brokers}: every topic is on at least {WIDTH_MIN} brokers"));
    }
    if per_broker < 2 {
        return Err(format!("--topics-per-broker {per_broker} must be at least 2"));
    }
    let entries = brokers as u64 * per_broker as u64;
    if entries > ENTRIES_MAX {
        return Err(format!("{entries} entries (--brokers × --topics-per-broker) > {ENTRIES_MAX}"));
    }
    let width_max = WIDTH_MAX.min(brokers) as u64;
    let mut rng = Rng::derive(seed, 0x7370_7264);
    let mut starts = Vec::with_capacity((entries / 5) as usize + 2);
    starts.push(0u64);
    let mut at = 0u64;
    while at < entries {
        let left = entries - at;
        let width = if left <= width_max {
            left
        } else {
            // Never leave 1 slot behind: nothing could take it.
            let top = width_max.min(left - WIDTH_MIN as u64);
            WIDTH_MIN as u64 + rng.below(top - WIDTH_MIN as u64 + 1)
        };
        at += width;
        starts.push(at);
    }
    Ok(starts)
}

/// Per broker, the topics it hosts, ascending (each list has exactly T entries).
pub fn hosted(starts: &[u64], brokers: u32) -> Vec<Vec<u32>> {
    let entries = starts.last().copied().unwrap_or(0);
    let per_broker = (entries / brokers as u64) as usize;
    let mut hosted: Vec<Vec<u32>> = (0..brokers).map(|_| Vec::with_capacity(per_broker)).collect();
    for (t, pair) in starts.windows(2).enumerate() {
        for slot in pair[0]..pair[1] {
            hosted[(slot % brokers as u64) as usize].push(t as u32);
        }
    }
    hosted
}

/// (fewest, most, mean) brokers per topic of a layout.
pub fn width_stats(starts: &[u64]) -> (u64, u64, f64) {
    let widths = starts.windows(2).map(|p| p[1] - p[0]);
    let (min, max) = widths.clone().fold((u64::MAX, 0), |(lo, hi), w| (lo.min(w), hi.max(w)));
    let topics = starts.len().saturating_sub(1).max(1);
    (min, max, starts.last().copied().unwrap_or(0) as f64 / topics as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_is_on_2_to_10_distinct_brokers_and_every_broker_hosts_t() {
        for (brokers, per_broker) in [(1000, 50), (5, 50), (2, 7), (3, 2), (11, 13), (100, 1000)] {
            let starts = topic_starts(brokers, per_broker, 7).unwrap();
            assert_eq!(*starts.last().unwrap(), brokers as u64 * per_broker as u64, "B×T entries");
            let width_max = WIDTH_MAX.min(brokers) as u64;
            for pair in starts.windows(2) {
                let width = pair[1] - pair[0];
                assert!((WIDTH_MIN as u64..=width_max).contains(&width), "{brokers}×{per_broker}: width {width}");
            }
            let hosted = hosted(&starts, brokers);
            for topics in &hosted {
                assert_eq!(topics.len(), per_broker as usize, "{brokers}×{per_broker}");
                assert!(topics.windows(2).all(|p| p[0] < p[1]), "ascending, so no topic twice on a broker");
            }
            let entries: usize = hosted.iter().map(Vec::len).sum();
            assert_eq!(entries as u64, brokers as u64 * per_broker as u64);
        }
    }

    #[test]
    fn widths_spread_over_the_whole_range_with_a_mean_near_6() {
        let starts = topic_starts(1000, 1000, 1).unwrap();
        let (min, max, mean) = width_stats(&starts);
        assert_eq!((min, max), (2, 10));
        assert!((5.8..6.2).contains(&mean), "mean {mean}");
        let universe = starts.len() - 1;
        assert!((160_000..175_000).contains(&universe), "{universe} topics for 1M entries");
    }

    #[test]
    fn the_same_seed_gives_the_same_layout() {
        let a = topic_starts(100, 500, 3).unwrap();
        assert_eq!(a, topic_starts(100, 500, 3).unwrap());
        assert_ne!(a, topic_starts(100, 500, 4).unwrap());
    }

    #[test]
    fn refusals_name_the_flag() {
        assert!(topic_starts(1, 100, 1).unwrap_err().contains("--brokers"));
        assert!(topic_starts(10, 1, 1).unwrap_err().contains("--topics-per-broker"));
        assert!(topic_starts(100_000, 10_000, 1).unwrap_err().contains("entries"));
    }
}
