//! Metrics: `counters` written on the request path by one thread each, and `http`, the
//! scrape endpoint that sums them. Must not: take a lock on the request path.

pub mod counters;
pub mod http;
