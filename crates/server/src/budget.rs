//! The process-wide registration memory budget (`registrationMemoryBytesMax`): one atomic
//! count of the bytes that registrations in flight on every shard hold (their wire bytes,
//! inflated bytes and decoded bodies), taken before the memory is allocated and given back
//! when the guard drops, so a refusal on any path leaks nothing.
//!
//! Fairness: a registration that cannot reserve may wait, up to a deadline, for bytes
//! that others give back. The oldest waiter (one at a time) *claims* the bytes it needs:
//! everyone else's reservations and growths then leave that much room, so a stream of
//! decompression bombs cannot starve a legitimate registration. A waiter holds nothing
//! while it waits, and every wait ends at its deadline, so waiters cannot deadlock.
//! Must not: know about frames, shards or sockets, or block a thread (waiting is async).

use meridian_protocol::body::{BodyError, MemoryGate};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The budget every shard charges. Cheap to share: an `Arc` of two atomics and an event.
pub struct MemoryBudget {
    bytes_max: usize,
    in_use_bytes: AtomicUsize,
    /// What the oldest waiter needs (0: nobody claims); others leave that much room.
    claimed_bytes: AtomicUsize,
    /// Notified whenever bytes are given back or a claim ends.
    released: event_listener::Event,
}

impl MemoryBudget {
    pub fn new(bytes_max: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            bytes_max,
            in_use_bytes: AtomicUsize::new(0),
            claimed_bytes: AtomicUsize::new(0),
            released: event_listener::Event::new(),
        })
    }

    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }

    /// Bytes reserved now, by every shard.
    pub fn in_use_bytes(&self) -> usize {
        self.in_use_bytes.load(Ordering::Acquire)
    }

    /// The error a refused reservation becomes (its text names the key).
    pub fn exhausted(&self) -> BodyError {
        BodyError::MemoryBudgetExhausted { registration_memory_bytes_max: self.bytes_max }
    }

    /// Reserves `bytes` now, or `None` if they do not fit (leaving room for a claim).
    pub fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        self.take(bytes, false).then(|| Reservation { budget: self.clone(), bytes })
    }

    /// Reserves `bytes`, waiting until `deadline` for others to give bytes back; `None` if
    /// they never fit in time (at once if they exceed the whole budget). `sleep` is the
    /// executor's timer (`glommio::timer::sleep` on a shard).
    pub async fn reserve_waiting<S: Future<Output = ()>>(
        self: &Arc<Self>,
        bytes: usize,
        deadline: Instant,
        sleep: impl Fn(Duration) -> S,
    ) -> Option<Reservation> {
        if bytes > self.bytes_max {
            return None;
        }
        let mut claim: Option<Claim<'_>> = None;
        loop {
            if self.take(bytes, claim.is_some()) {
                return Some(Reservation { budget: self.clone(), bytes });
            }
            if claim.is_none()
                && self.claimed_bytes.compare_exchange(0, bytes, Ordering::AcqRel, Ordering::Acquire).is_ok()
            {
                claim = Some(Claim { budget: self });
                continue;
            }
            let released = self.released.listen();
            // Bytes given back between the attempt above and `listen` would not wake us.
            if self.take(bytes, claim.is_some()) {
                return Some(Reservation { budget: self.clone(), bytes });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            futures_lite::future::or(released, sleep(left)).await;
        }
    }

    /// Adds `bytes` to the count if they fit; a claimant does not leave room for itself.
    fn take(&self, bytes: usize, claimant: bool) -> bool {
        let room_bytes = if claimant { 0 } else { self.claimed_bytes.load(Ordering::Acquire) };
        self.in_use_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_use| {
                in_use.checked_add(bytes).filter(|total| total.saturating_add(room_bytes) <= self.bytes_max)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        if bytes > 0 {
            self.in_use_bytes.fetch_sub(bytes, Ordering::AcqRel);
            self.released.notify(usize::MAX);
        }
    }
}

/// The oldest waiter's claim; ends (and wakes the other waiters) when dropped.
struct Claim<'b> {
    budget: &'b MemoryBudget,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.budget.claimed_bytes.store(0, Ordering::Release);
        self.budget.released.notify(usize::MAX);
    }
}

/// Bytes reserved by one registration; given back when dropped.
#[must_use = "the bytes are given back when the reservation drops"]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Reserves `bytes` more now (never waits: the holder may not wait holding bytes).
    pub fn grow(&mut self, bytes: usize) -> bool {
        let fits = self.budget.take(bytes, false);
        if fits {
            self.bytes += bytes;
        }
        fits
    }

    /// Gives back `bytes` (at most what is held).
    pub fn shrink(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        self.budget.give_back(bytes);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

/// A reservation a body decode draws from: first `prepaid_bytes` reserved up front (while
/// the registration could still wait), then growth, which fails at once when it does not fit.
pub struct Metered {
    reservation: Reservation,
    prepaid_bytes: usize,
}

impl Metered {
    /// `prepaid_bytes` of `reservation` are for the decode to draw; the rest stays held.
    pub fn new(reservation: Reservation, prepaid_bytes: usize) -> Metered {
        let prepaid_bytes = prepaid_bytes.min(reservation.bytes());
        Metered { reservation, prepaid_bytes }
    }

    /// Gives back what the decode did not draw.
    pub fn return_unused(&mut self) {
        self.reservation.shrink(std::mem::take(&mut self.prepaid_bytes));
    }

    pub fn held_bytes(&self) -> usize {
        self.reservation.bytes()
    }
}

impl MemoryGate for Metered {
    fn reserve(&mut self, bytes: usize) -> Result<(), BodyError> {
        if bytes <= self.prepaid_bytes {
            self.prepaid_bytes -= bytes;
            return Ok(());
        }
        if !self.reservation.grow(bytes - self.prepaid_bytes) {
            return Err(self.reservation.budget.exhausted());
        }
        self.prepaid_bytes = 0;
        Ok(())
    }

    fn release(&mut self, bytes: usize) {
        self.reservation.shrink(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    const MIB: usize = 1024 * 1024;

    /// A timer for tests: a short blocking nap, after which the waiter looks again.
    async fn nap(left: Duration) {
        std::thread::sleep(left.min(Duration::from_millis(1)));
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn reserve_grow_shrink_and_release_on_drop() {
        let budget = MemoryBudget::new(10 * MIB);
        let mut a = budget.try_reserve(4 * MIB).expect("fits");
        assert_eq!(budget.in_use_bytes(), 4 * MIB);
        assert!(a.grow(4 * MIB));
        assert!(budget.try_reserve(3 * MIB).is_none(), "8 + 3 > 10");
        let b = budget.try_reserve(2 * MIB).expect("8 + 2 fits exactly");
        assert!(!a.grow(1), "full");
        assert_eq!(a.bytes(), 8 * MIB, "a refused growth changes nothing");
        a.shrink(5 * MIB);
        assert_eq!(budget.in_use_bytes(), 5 * MIB);
        a.shrink(usize::MAX);
        assert_eq!(a.bytes(), 0);
        drop(b);
        drop(a);
        assert_eq!(budget.in_use_bytes(), 0);
        assert!(budget.try_reserve(11 * MIB).is_none());
        assert!(block_on(budget.reserve_waiting(11 * MIB, soon(1_000), nap)).is_none(), "never fits: no wait");
    }

    #[test]
    fn metered_draws_prepaid_then_grows_and_leaks_nothing_on_refusal() {
        let budget = MemoryBudget::new(10 * MIB);
        let mut metered = Metered::new(budget.try_reserve(4 * MIB).unwrap(), 2 * MIB);
        metered.reserve(MIB).unwrap();
        metered.reserve(2 * MIB).unwrap();
        assert_eq!(budget.in_use_bytes(), 5 * MIB, "1 MiB of the 2 prepaid, then 1 MiB more");
        let error = metered.reserve(6 * MIB).unwrap_err();
        assert!(error.to_string().contains("registrationMemoryBytesMax 10485760"), "{error}");
        assert_eq!(budget.in_use_bytes(), 5 * MIB, "a refused growth takes nothing");
        metered.release(3 * MIB);
        assert_eq!(metered.held_bytes(), 2 * MIB);
        drop(metered);
        assert_eq!(budget.in_use_bytes(), 0);
        let mut metered = Metered::new(budget.try_reserve(4 * MIB).unwrap(), 3 * MIB);
        metered.reserve(MIB).unwrap();
        metered.return_unused();
        assert_eq!(budget.in_use_bytes(), 2 * MIB, "the 1 MiB held plus the 1 MiB drawn");
        drop(metered);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    #[test]
    fn a_waiter_gets_bytes_given_back_before_its_deadline() {
        let budget = MemoryBudget::new(10 * MIB);
        let held = budget.try_reserve(8 * MIB).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(held);
        });
        let got = block_on(budget.reserve_waiting(6 * MIB, soon(10_000), nap)).expect("released in time");
        assert_eq!(got.bytes(), 6 * MIB);
        releaser.join().unwrap();
        drop(got);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    #[test]
    fn a_waiter_gives_up_at_its_deadline_holding_nothing() {
        let budget = MemoryBudget::new(10 * MIB);
        let held = budget.try_reserve(8 * MIB).unwrap();
        assert!(block_on(budget.reserve_waiting(6 * MIB, soon(30), nap)).is_none());
        assert_eq!(budget.in_use_bytes(), 8 * MIB);
        assert_eq!(budget.claimed_bytes.load(Ordering::Acquire), 0, "the claim ended with the wait");
        drop(held);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    /// While the oldest waiter claims its bytes, others' growth leaves room for it, so a
    /// stream of bombs that grow until refused cannot starve it.
    #[test]
    fn a_claim_keeps_growth_from_starving_the_waiter() {
        let budget = MemoryBudget::new(10 * MIB);
        let mut bomb = budget.try_reserve(6 * MIB).unwrap();
        let other = budget.clone();
        let bombs = std::thread::spawn(move || {
            // Once the waiter claims, the bomb tries to grow, as an inflating body would.
            while other.claimed_bytes.load(Ordering::Acquire) == 0 {
                std::thread::yield_now();
            }
            let refused = !bomb.grow(2 * MIB) && other.try_reserve(MIB).is_none();
            drop(bomb);
            refused
        });
        let got = block_on(budget.reserve_waiting(8 * MIB, soon(10_000), nap)).expect("the claimant gets its bytes");
        assert!(bombs.join().unwrap(), "6 + 2 + 8 claimed > 10: the bomb's growth and new bombs are refused");
        drop(got);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    /// Many waiters, each needing more than half the budget: they take turns, none holds
    /// anything while waiting, and all are served well before their deadline.
    #[test]
    fn waiters_do_not_deadlock() {
        let budget = MemoryBudget::new(10 * MIB);
        let waiters: Vec<_> = (0..6)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || {
                    let got = block_on(budget.reserve_waiting(6 * MIB, soon(30_000), nap)).expect("served in turn");
                    std::thread::sleep(Duration::from_millis(2));
                    drop(got);
                })
            })
            .collect();
        waiters.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(budget.in_use_bytes(), 0);
    }
}
