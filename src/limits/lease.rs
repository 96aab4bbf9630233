//! A node's lease on one shared counter (cluster mode): units the shared store granted this
//! node ahead of time, which every worker spends through one atomic, and which the Redis
//! thread ([`super::redis`]) refills before they run out. A request never waits for the
//! store: it spends what the node holds.
//!
//! **Credit.** When the lease is spent and its refill is still on its way, a worker may spend
//! on credit, down to `-block`, unless the store last said the counter is empty (then it
//! refuses until the time the store gave). The next refill charges that debt to the store
//! first, whatever it grants. So a node is never more than one block ahead of the store's
//! count: across `N` nodes, what passes stays within `N × block` of the shared limit.
//!
//! While the store is unreachable the lease keeps counting what is spent (the balance goes
//! below 0 without bound); the first refill after it is back charges it (for rate limits at
//! most one window's worth: older use has refilled anyway).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Share of a limit one lease block holds, in parts per ten thousand (0.5%): with two nodes
/// the most that can pass over a limit is 1% of it.
pub const BLOCK_PER_10K: u64 = 50;
/// A refill unanswered this long means the store is slow: a worker that would refuse for want
/// of it keeps to the node's local share instead (as while the store is down).
pub const STALLED_NS: u64 = 50_000_000;
/// A lease unused this long goes back to the store.
pub const IDLE_RETURN_NS: u64 = 2_000_000_000;

/// The block a lease of a counter of `limit` refills by (at least 1).
pub fn block_for(limit: u64) -> u64 {
    (limit.saturating_mul(BLOCK_PER_10K) / 10_000).max(1)
}

/// One node's lease on one shared counter.
#[derive(Debug, Default)]
pub struct Lease {
    /// Units held; below 0, spent on credit or while the store was down.
    balance: AtomicI64,
    /// Units one refill asks for.
    block: AtomicU64,
    /// A refill is queued or in flight.
    pending: AtomicBool,
    /// Since when (limiter nanoseconds).
    pending_since: AtomicU64,
    /// The store said the counter is empty: no credit until then (limiter nanoseconds).
    empty_until: AtomicU64,
    /// Units left in the shared counter at the last reply (for headers).
    remaining: AtomicU64,
    /// When a worker last spent from it (limiter nanoseconds).
    last_used: AtomicU64,
    /// Generation of the counter this lease is on (a new limit or period starts a new one:
    /// a refill answered for an older one is not applied).
    generation: AtomicU64,
}

/// What a worker's attempt to spend got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Spent; `refill`: the caller should ask for a refill (it claimed the pending flag).
    Spent { refill: bool },
    /// Not spent: the lease is out and the store said empty (or credit is used up). `wait`:
    /// nanoseconds until the store said it fills (0: unknown, a refill is on its way).
    Refused { wait: u64, refill: bool },
}

/// What the Redis thread asks the store for on a lease's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// Units wanted.
    pub want: u64,
    /// Units spent beyond what was granted, charged first.
    pub debt: u64,
    /// Units owed beyond what the store is charged (older than a window: refilled by now),
    /// forgiven when the answer lands.
    pub forgive: u64,
    /// The counter generation this ask is for.
    pub generation: u64,
}

impl Lease {
    /// A lease refilled by `block` units.
    pub fn new(block: u64) -> Lease {
        let l = Lease::default();
        l.block.store(block.max(1), Ordering::Relaxed);
        l
    }

    /// Units held now (below 0: owed).
    pub fn balance(&self) -> i64 {
        self.balance.load(Ordering::Acquire)
    }

    /// The block.
    pub fn block(&self) -> u64 {
        self.block.load(Ordering::Relaxed)
    }

    /// Units the shared counter had left at the last reply, less what this node spent since.
    pub fn remaining_hint(&self) -> u64 {
        let held = self.balance().max(0) as u64;
        self.remaining.load(Ordering::Relaxed).saturating_add(held)
    }

    /// Start over on a new counter (a new limit, a new period): what is held is dropped, a
    /// refill in flight is ignored when it lands.
    pub fn restart(&self, block: u64) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.block.store(block.max(1), Ordering::Relaxed);
        self.balance.store(0, Ordering::Release);
        self.empty_until.store(0, Ordering::Release);
        self.remaining.store(0, Ordering::Relaxed);
        self.pending.store(false, Ordering::Release);
    }

    /// Refill by `block` from now on, keeping what is held.
    pub fn restart_block(&self, block: u64) {
        self.block.store(block.max(1), Ordering::Relaxed);
    }

    /// Refill by at least `cost` (a budget lease must hold one whole reservation).
    pub fn grow_block(&self, cost: u64) {
        self.block.fetch_max(cost, Ordering::Relaxed);
    }

    /// Claim the right to queue a refill (one at a time).
    pub fn claim_refill(&self) -> bool {
        !self.pending.swap(true, Ordering::AcqRel)
    }

    /// [`Lease::claim_refill`], noting when.
    fn claim_refill_at(&self, now: u64) -> bool {
        let claimed = self.claim_refill();
        if claimed {
            self.pending_since.store(now, Ordering::Release);
        }
        claimed
    }

    /// A refill has been on its way for longer than [`STALLED_NS`].
    pub fn stalled(&self, now: u64) -> bool {
        self.pending.load(Ordering::Acquire)
            && now.saturating_sub(self.pending_since.load(Ordering::Acquire)) > STALLED_NS
    }

    /// The refill could not be queued or answered: let the next spend try again.
    pub fn release_refill(&self) {
        self.pending.store(false, Ordering::Release);
    }

    /// Spend `cost` at `now` (a token lease spends 0 at admission: it must only not be out).
    /// `credit`: whether spending below 0 is allowed now (the store is reachable).
    pub fn spend(&self, cost: u64, now: u64, credit: bool) -> Spend {
        let block = self.block() as i64;
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        let floor = if credit && now >= self.empty_until.load(Ordering::Acquire) {
            -block
        } else {
            0
        };
        let mut b = self.balance();
        loop {
            let after = b.saturating_sub(cost);
            // A token lease (cost 0) needs something left, or credit.
            let fits = if cost == 0 { b > floor } else { after >= floor };
            if !fits {
                let wait = self.empty_until.load(Ordering::Acquire).saturating_sub(now);
                let refill = wait == 0 && self.claim_refill_at(now);
                return Spend::Refused { wait, refill };
            }
            match self
                .balance
                .compare_exchange_weak(b, after, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.last_used.store(now, Ordering::Relaxed);
                    let low = after.saturating_mul(2) < block;
                    let refill = low && now >= self.empty_until.load(Ordering::Acquire);
                    return Spend::Spent {
                        refill: refill && self.claim_refill_at(now),
                    };
                }
                Err(seen) => b = seen,
            }
        }
    }

    /// Spend `n` whatever the balance (usage known after the fact, or a request admitted
    /// while the store is down): true when the caller should ask for a refill.
    pub fn charge(&self, n: u64, now: u64) -> bool {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let after = self
            .balance
            .fetch_sub(n, Ordering::AcqRel)
            .saturating_sub(n);
        self.last_used.store(now, Ordering::Relaxed);
        after.saturating_mul(2) < self.block() as i64 && self.claim_refill_at(now)
    }

    /// Give `n` back (a reservation larger than what was used).
    pub fn refund(&self, n: u64) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.balance.fetch_add(n, Ordering::AcqRel);
    }

    /// What a refill asks for: a block, and the debt (capped at `max_debt`).
    pub fn ask(&self, max_debt: u64) -> Ask {
        let owed = self.balance().min(0).unsigned_abs();
        Ask {
            want: self.block(),
            debt: owed.min(max_debt),
            forgive: owed.saturating_sub(max_debt),
            generation: self.generation.load(Ordering::Acquire),
        }
    }

    /// The store's answer to `ask`: `granted` units (the debt was charged), `remaining` left
    /// in the shared counter, `wait` nanoseconds until it has room when it granted none.
    pub fn answer(&self, ask: Ask, granted: u64, remaining: u64, wait: u64, now: u64) {
        if self.generation.load(Ordering::Acquire) == ask.generation {
            let add = ask.debt.saturating_add(ask.forgive).saturating_add(granted);
            let add = i64::try_from(add).unwrap_or(i64::MAX);
            self.balance.fetch_add(add, Ordering::AcqRel);
            self.remaining.store(remaining, Ordering::Relaxed);
            let until = if granted == 0 {
                now.saturating_add(wait.max(1))
            } else {
                0
            };
            self.empty_until.store(until, Ordering::Release);
            self.pending.store(false, Ordering::Release);
        }
        // An answer for an older counter leaves the flag alone: `restart` cleared it, and a
        // newer claim may hold it now.
    }

    /// Units to give back to the store when unused for [`IDLE_RETURN_NS`] (taken out of the
    /// lease here; 0: keep it).
    pub fn take_idle(&self, now: u64) -> (u64, u64) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.pending.load(Ordering::Acquire)
            || now.saturating_sub(self.last_used.load(Ordering::Relaxed)) < IDLE_RETURN_NS
        {
            return (0, generation);
        }
        let mut b = self.balance();
        while b > 0 {
            match self
                .balance
                .compare_exchange_weak(b, 0, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return (b as u64, generation),
                Err(seen) => b = seen,
            }
        }
        (0, generation)
    }

    /// The counter generation (for a return to name).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        assert_eq!(block_for(1), 1);
        assert_eq!(block_for(600), 3);
        assert_eq!(block_for(60_000), 300);
    }

    #[test]
    fn credit_is_one_block_and_the_refill_charges_it() {
        let l = Lease::new(3);
        // Nothing held: the first spends go on credit, the first of them claims the refill.
        assert_eq!(l.spend(1, 10, true), Spend::Spent { refill: true });
        assert_eq!(l.spend(1, 10, true), Spend::Spent { refill: false });
        assert_eq!(l.spend(1, 10, true), Spend::Spent { refill: false });
        assert_eq!(l.balance(), -3);
        assert!(matches!(
            l.spend(1, 10, true),
            Spend::Refused { wait: 0, .. }
        ));
        // The store charges the 3 owed and grants a block.
        let ask = l.ask(u64::MAX);
        assert_eq!((ask.want, ask.debt), (3, 3));
        l.answer(ask, 3, 100, 0, 11);
        assert_eq!(l.balance(), 3);
        assert_eq!(l.spend(1, 12, true), Spend::Spent { refill: false });
        assert_eq!(l.spend(1, 12, true), Spend::Spent { refill: true });
        // Empty: granted nothing, wait 5 ns: what is held is spent, then no credit until then.
        let ask = l.ask(u64::MAX);
        l.answer(ask, 0, 0, 5, 12);
        assert_eq!(l.balance(), 1);
        assert_eq!(l.spend(1, 13, true), Spend::Spent { refill: false });
        assert_eq!(
            l.spend(1, 13, true),
            Spend::Refused {
                wait: 4,
                refill: false
            }
        );
        assert_eq!(l.spend(1, 17, true), Spend::Spent { refill: true });
        // Without credit (store down, budgets closed) nothing passes below 0.
        let l = Lease::new(3);
        assert!(matches!(l.spend(1, 0, false), Spend::Refused { .. }));
        // A token lease spends 0: it needs something left.
        let t = Lease::new(100);
        t.answer(t.ask(0), 100, 0, 0, 0);
        assert!(matches!(t.spend(0, 0, false), Spend::Spent { .. }));
        assert!(t.charge(250, 0));
        assert_eq!(t.balance(), -150);
        assert!(matches!(t.spend(0, 0, true), Spend::Refused { .. }));
    }

    #[test]
    fn an_answer_for_an_older_counter_is_dropped() {
        let l = Lease::new(10);
        let ask = l.ask(0);
        l.restart(20);
        l.answer(ask, 10, 0, 0, 0);
        assert_eq!(l.balance(), 0);
        assert!(l.claim_refill(), "the pending flag was cleared");
    }

    #[test]
    fn idle_leases_go_back() {
        let l = Lease::new(10);
        l.answer(l.ask(0), 10, 0, 0, 0);
        l.spend(1, 1, true);
        l.release_refill();
        assert_eq!(l.take_idle(2).0, 0, "used a moment ago");
        assert_eq!(l.take_idle(1 + IDLE_RETURN_NS).0, 9);
        assert_eq!(l.balance(), 0);
    }
}
