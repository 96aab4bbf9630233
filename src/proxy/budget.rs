//! The worker's budget for bodies it holds whole (provider answers read for translation,
//! request bodies while they are translated, the answer a translated Responses stream holds
//! for its final event): one counter per worker, charged before memory is reserved and
//! released when the charge drops, so many concurrent huge bodies cannot add up past
//! `server.max_buffered_bytes`.

use std::cell::Cell;
use std::rc::Rc;

/// A worker's buffered-body budget. Single-threaded: a `Cell`, no atomics.
#[derive(Debug)]
pub struct BufferBudget {
    limit: Cell<usize>,
    used: Cell<usize>,
}

impl BufferBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        BufferBudget {
            limit: Cell::new(limit),
            used: Cell::new(0),
        }
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.limit.get()
    }

    /// A reload's new limit; charges already held stay (a lower limit refuses new ones until
    /// enough is given back).
    pub fn set_limit(&self, limit: usize) {
        self.limit.set(limit);
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// An empty charge against this budget; grow it before reserving memory.
    pub fn charge(&self) -> Charge<'_> {
        Charge {
            budget: self,
            bytes: 0,
        }
    }
}

/// Bytes one request holds against the budget; given back when dropped.
#[derive(Debug)]
pub struct Charge<'a> {
    budget: &'a BufferBudget,
    bytes: usize,
}

impl Charge<'_> {
    /// Make this charge `total` bytes. Growing fails (and changes nothing) when the worker's
    /// other charges leave too little room; shrinking always succeeds.
    pub fn resize(&mut self, total: usize) -> bool {
        let b = self.budget;
        let others = b.used.get().saturating_sub(self.bytes);
        if total > self.bytes && others.saturating_add(total) > b.limit.get() {
            return false;
        }
        b.used.set(others.saturating_add(total));
        self.bytes = total;
        true
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The budget's limit.
    pub fn limit(&self) -> usize {
        self.budget.limit.get()
    }

    /// The error for a growth this worker cannot take now: a 503 in the client's format,
    /// retryable once other answers have gone out.
    pub fn exhausted(&self) -> crate::error::Error {
        exhausted(self.budget.limit.get(), "answers")
    }
}

/// The 503 for a charge the worker cannot take now (`what`: what it holds too much of).
pub fn exhausted(limit: usize, what: &str) -> crate::error::Error {
    crate::error::Error::new(
        crate::error::ErrorKind::BufferBudget,
        format!(
            "the gateway is holding too many large {what} (server.max_buffered_bytes = {limit} per worker); retry shortly"
        ),
    )
}

/// A charge that keeps its budget alive itself: for state that outlives the borrows of a
/// request's phases (the answer a translated stream holds until its end).
#[derive(Debug)]
pub struct HeldCharge {
    budget: Rc<BufferBudget>,
    bytes: usize,
}

impl HeldCharge {
    /// An empty charge against `budget`.
    pub fn new(budget: Rc<BufferBudget>) -> HeldCharge {
        HeldCharge { budget, bytes: 0 }
    }

    /// As [`Charge::resize`].
    pub fn resize(&mut self, total: usize) -> bool {
        let b = &self.budget;
        let others = b.used.get().saturating_sub(self.bytes);
        if total > self.bytes && others.saturating_add(total) > b.limit.get() {
            return false;
        }
        b.used.set(others.saturating_add(total));
        self.bytes = total;
        true
    }

    /// The budget's limit.
    pub fn limit(&self) -> usize {
        self.budget.limit.get()
    }
}

impl Drop for HeldCharge {
    fn drop(&mut self) {
        let b = &self.budget;
        b.used.set(b.used.get().saturating_sub(self.bytes));
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        let b = self.budget;
        b.used.set(b.used.get().saturating_sub(self.bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_to_the_limit_and_are_given_back() {
        let b = BufferBudget::new(100);
        let mut a = b.charge();
        assert!(a.resize(60));
        {
            let mut c = b.charge();
            assert!(!c.resize(41), "60 + 41 > 100");
            assert_eq!(c.bytes(), 0, "a refused growth changes nothing");
            assert!(c.resize(40));
            assert_eq!(b.used(), 100);
            assert!(!a.resize(61));
            assert!(a.resize(10), "shrinking always works");
            assert_eq!(b.used(), 50);
        }
        assert_eq!(b.used(), 10, "dropping a charge gives it back");
        drop(a);
        assert_eq!(b.used(), 0);
        let mut big = b.charge();
        assert!(big.resize(100));
        assert!(!b.charge().resize(1));
    }

    #[test]
    fn held_charges_share_the_budget() {
        let b = Rc::new(BufferBudget::new(100));
        let mut held = HeldCharge::new(b.clone());
        assert!(held.resize(70));
        assert!(!b.charge().resize(31));
        assert!(!held.resize(101));
        assert_eq!(b.used(), 70, "a refused growth changes nothing");
        drop(held);
        assert_eq!(b.used(), 0);
    }
}
