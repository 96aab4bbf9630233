//! A one-way, per-worker notice (a drain has started; the drain's deadline has passed) that any
//! number of tasks await or race their work against; firing it wakes them all. Single thread:
//! a `RefCell`, no lock. Waiters that finish first give their slot back, so a worker whose
//! connections come and go for days holds only as many slots as tasks wait right now.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A notice that fires once and stays fired.
#[derive(Default)]
pub struct Beacon {
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    fired: bool,
    /// One slot per waiting task; `None` once woken or given back.
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Beacon {
    /// An unfired beacon.
    pub fn new() -> Beacon {
        Beacon::default()
    }

    /// Fire (once; later calls change nothing) and wake every waiter.
    pub fn fire(&self) {
        let wakers: Vec<Waker> = {
            let mut inner = self.inner.borrow_mut();
            if inner.fired {
                return;
            }
            inner.fired = true;
            inner.slots.iter_mut().filter_map(Option::take).collect()
        };
        // Woken outside the borrow: a waker may poll a future that looks at this beacon.
        for w in wakers {
            w.wake();
        }
    }

    /// Has it fired?
    pub fn fired(&self) -> bool {
        self.inner.borrow().fired
    }

    /// A future that completes when the beacon fires.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            beacon: self,
            slot: None,
        }
    }

    /// Run `fut` until it completes (`Some(output)`) or the beacon fires first (`None`; `fut`
    /// is dropped, cancelling what it was doing).
    pub fn race<F: Future>(&self, fut: F) -> Race<'_, F> {
        Race {
            fut,
            wait: self.wait(),
        }
    }

    /// Tasks waiting now (for tests: slots are given back).
    pub fn waiting(&self) -> usize {
        let inner = self.inner.borrow();
        inner.slots.len() - inner.free.len()
    }
}

/// Completes when its beacon fires.
pub struct Wait<'b> {
    beacon: &'b Beacon,
    slot: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.beacon.inner.borrow_mut();
        if inner.fired {
            return Poll::Ready(());
        }
        let waker = Some(cx.waker().clone());
        let (slot, old) = match self.slot {
            Some(i) => (
                i,
                inner
                    .slots
                    .get_mut(i)
                    .and_then(|s| std::mem::replace(s, waker)),
            ),
            None => match inner.free.pop() {
                Some(i) => (
                    i,
                    inner
                        .slots
                        .get_mut(i)
                        .and_then(|s| std::mem::replace(s, waker)),
                ),
                None => {
                    inner.slots.push(waker);
                    (inner.slots.len() - 1, None)
                }
            },
        };
        drop(inner);
        self.slot = Some(slot);
        // Dropped outside the borrow: the last reference to a task may drop a future that
        // holds another wait on this beacon.
        drop(old);
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot.take() {
            let old = match self.beacon.inner.try_borrow_mut() {
                Ok(mut inner) => {
                    let old = inner.slots.get_mut(i).and_then(Option::take);
                    inner.free.push(i);
                    old
                }
                Err(_) => None,
            };
            drop(old);
        }
    }
}

pin_project_lite::pin_project! {
    /// A future raced against a beacon: see [`Beacon::race`].
    pub struct Race<'b, F> {
        #[pin]
        fut: F,
        wait: Wait<'b>,
    }
}

impl<F: Future> Future for Race<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Some(v));
        }
        match Pin::new(this.wait).poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<F: Future + Unpin>(f: &mut F, count: &Arc<Count>) -> Poll<F::Output> {
        let waker = Waker::from(count.clone());
        Pin::new(f).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn firing_wakes_every_waiter_once_and_slots_are_reused() {
        let b = Beacon::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let mut a = b.wait();
        let mut c = b.wait();
        assert!(poll(&mut a, &count).is_pending());
        assert!(
            poll(&mut a, &count).is_pending(),
            "a second poll keeps one slot"
        );
        assert!(poll(&mut c, &count).is_pending());
        assert_eq!(b.waiting(), 2);
        drop(c);
        assert_eq!(b.waiting(), 1, "a dropped waiter gives its slot back");
        let mut d = b.wait();
        assert!(poll(&mut d, &count).is_pending());
        assert_eq!(b.inner.borrow().slots.len(), 2, "the freed slot was reused");
        b.fire();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(poll(&mut a, &count).is_ready());
        assert!(poll(&mut d, &count).is_ready());
        assert!(b.fired());
        b.fire();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "firing twice wakes nobody again"
        );
    }

    #[test]
    fn a_race_ends_with_the_work_or_the_beacon() {
        let b = Beacon::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let mut done = Box::pin(b.race(std::future::ready(7)));
        assert_eq!(done.as_mut().poll(&mut ctx(&count)), Poll::Ready(Some(7)));
        let mut stuck = Box::pin(b.race(std::future::pending::<u8>()));
        assert_eq!(stuck.as_mut().poll(&mut ctx(&count)), Poll::Pending);
        b.fire();
        assert_eq!(stuck.as_mut().poll(&mut ctx(&count)), Poll::Ready(None));
    }

    fn ctx(count: &Arc<Count>) -> Context<'static> {
        let waker = Box::leak(Box::new(Waker::from(count.clone())));
        Context::from_waker(waker)
    }
}
