//! Per-thread I/O deadlines. A timeout here is a 16-byte handle into this thread's table and
//! one heap entry, where monoio's `Sleep` is 640 bytes aligned to 128 (which pads every future
//! that holds one, so every connection's task) and a timer-wheel insertion per use. One driver
//! task per runtime thread sleeps until the earliest deadline and wakes what expired.
//! A deadline never fires early, and late by at most 1/32 of its timeout (a millisecond for
//! short ones, up to a second for long ones): a long idle timeout re-armed on every event then
//! lands on a coarse grid, so the driver wakes a few times a second, not every millisecond
//! as thousands of connections re-arm theirs. A [`Deadline`] (a provider connection's idle
//! timeout) stays registered across its waits, and each wait only moves it.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Whole milliseconds of `d`, in u64 arithmetic (`as_millis` is u128; this runs on every
/// read of a stream).
fn whole_ms(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()))
}

/// `Entry::queued` of an entry with no heap item (it fired, and nothing re-armed it since).
const NOT_QUEUED: u64 = u64::MAX;

/// Stale heap entries (of timeouts that finished first) tolerated beyond the live ones before
/// the heap is rebuilt: cancelling is O(1), and the rebuild is amortised over as many cancels.
const STALE_SLACK: usize = 1024;

struct Entry {
    /// Bumped when the entry is freed, so a stale heap entry or handle never matches it.
    gen: u32,
    /// Deadline, in milliseconds since the table's epoch (rounded up).
    at: u64,
    /// Where the entry's current heap item sits (`NOT_QUEUED`: none). Equal to `at` but for a
    /// [`Deadline`] moved later, whose item fires early, finds `at` later and is queued again.
    queued: u64,
    waker: Option<Waker>,
    fired: bool,
    live: bool,
}

struct Table {
    epoch: Instant,
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// (deadline ms, entry, generation), earliest first; entries of cancelled timeouts stay
    /// until popped or rebuilt away.
    heap: BinaryHeap<Reverse<(u64, u32, u32)>>,
    live: usize,
    /// The driver task, woken when a deadline earlier than the one it sleeps for arrives.
    driver: Option<Waker>,
    /// What the driver sleeps until (None: nothing, or not running).
    driver_at: Option<u64>,
    driver_running: bool,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::new());
}

impl Table {
    fn new() -> Table {
        Table {
            epoch: Instant::now(),
            entries: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            live: 0,
            driver: None,
            driver_at: None,
            driver_running: false,
        }
    }

    /// Milliseconds since the epoch, rounded up: firing at `at` is never before `t`.
    fn ms_ceil(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.epoch);
        let ms = whole_ms(d);
        if d.subsec_nanos().is_multiple_of(1_000_000) {
            ms
        } else {
            ms.saturating_add(1)
        }
    }

    fn ms_floor(&self, t: Instant) -> u64 {
        whole_ms(t.saturating_duration_since(self.epoch))
    }

    /// `deadline` in table milliseconds, rounded up to its grid.
    fn slot_ms(&self, deadline: Instant, grain_ms: u64) -> u64 {
        self.ms_ceil(deadline)
            .div_ceil(grain_ms)
            .saturating_mul(grain_ms)
    }

    fn register(&mut self, deadline: Instant, grain_ms: u64, waker: &Waker) -> (u32, u32) {
        let at = self.slot_ms(deadline, grain_ms);
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(Entry {
                    gen: 0,
                    at: 0,
                    queued: NOT_QUEUED,
                    waker: None,
                    fired: false,
                    live: false,
                });
                u32::try_from(self.entries.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let Some(e) = self.entries.get_mut(idx as usize) else {
            return (u32::MAX, 0);
        };
        e.at = at;
        e.queued = at;
        e.waker = Some(waker.clone());
        e.fired = false;
        e.live = true;
        let gen = e.gen;
        self.heap.push(Reverse((at, idx, gen)));
        self.live += 1;
        self.ensure_driver(at);
        (idx, gen)
    }

    /// Start the driver, or wake it when `at` is earlier than what it sleeps for.
    fn ensure_driver(&mut self, at: u64) {
        if !self.driver_running {
            self.driver_running = true;
            monoio::spawn(Driver {
                sleep: None,
                armed: None,
            });
        } else if self.driver_at.is_none_or(|d| at < d) {
            if let Some(w) = &self.driver {
                w.wake_by_ref();
            }
        }
    }

    /// Move a live entry's deadline and waiter (a [`Deadline`] used again); None when `key`
    /// is not live. A later deadline only changes the entry: its heap item finds out when it
    /// comes due. An earlier one (or an entry that fired) gets a heap item of its own.
    /// The waker it replaces is returned, to be dropped outside the table.
    fn rearm(
        &mut self,
        key: (u32, u32),
        deadline: Instant,
        grain_ms: u64,
        waker: &Waker,
    ) -> Option<Option<Waker>> {
        let at = self.slot_ms(deadline, grain_ms);
        let e = self.entry(key)?;
        e.at = at;
        e.fired = false;
        let old = if e.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            None
        } else {
            e.waker.replace(waker.clone())
        };
        if at < e.queued {
            e.queued = at;
            self.heap.push(Reverse((at, key.0, key.1)));
            self.ensure_driver(at);
        }
        Some(old)
    }

    /// A registered entry polled again: Elapsed once it fired, else its waker kept current
    /// (the one replaced goes to `old`, to be dropped outside the table).
    fn poll_entry(
        &mut self,
        key: (u32, u32),
        waker: &Waker,
        old: &mut Option<Waker>,
    ) -> Poll<Elapsed> {
        match self.entry(key) {
            Some(e) if e.fired => Poll::Ready(Elapsed),
            Some(e) => {
                if !e.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    *old = e.waker.replace(waker.clone());
                }
                Poll::Pending
            }
            // Unreachable while the slot is ours; fail safe rather than hang.
            None => Poll::Ready(Elapsed),
        }
    }

    fn entry(&mut self, (idx, gen): (u32, u32)) -> Option<&mut Entry> {
        self.entries
            .get_mut(idx as usize)
            .filter(|e| e.live && e.gen == gen)
    }

    /// Free a timeout's entry; its waker is returned to be dropped outside the table.
    fn cancel(&mut self, key: (u32, u32)) -> Option<Waker> {
        let e = self.entry(key)?;
        e.live = false;
        let waker = e.waker.take();
        e.gen = e.gen.wrapping_add(1);
        self.free.push(key.0);
        self.live -= 1;
        if self.heap.len() > 2 * self.live + STALE_SLACK {
            let entries = &self.entries;
            self.heap.retain(|Reverse((at, i, g))| {
                entries
                    .get(*i as usize)
                    .is_some_and(|e| e.live && e.gen == *g && e.queued == *at)
            });
        }
        waker
    }

    /// Mark everything due by `now_ms` fired and collect its wakers; the earliest deadline
    /// still pending.
    fn fire(&mut self, now_ms: u64, wake: &mut Vec<Waker>) -> Option<u64> {
        while let Some(Reverse((at, idx, gen))) = self.heap.peek().copied() {
            let current = self
                .entries
                .get(idx as usize)
                .is_some_and(|e| e.live && e.gen == gen && e.queued == at);
            if !current {
                self.heap.pop();
                continue;
            }
            if at > now_ms {
                return Some(at);
            }
            self.heap.pop();
            let Some(e) = self.entries.get_mut(idx as usize) else {
                continue;
            };
            if e.at > at {
                // A Deadline moved later since this item was queued.
                e.queued = e.at;
                self.heap.push(Reverse((e.at, idx, gen)));
                continue;
            }
            e.queued = NOT_QUEUED;
            e.fired = true;
            wake.extend(e.waker.take());
        }
        None
    }
}

pin_project_lite::pin_project! {
    /// `fut`, bounded by a deadline.
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        deadline: Instant,
        grain_ms: u64,
        slot: Slot,
    }
}

/// Most lateness tolerated, as a fraction of the timeout: 1/32.
const LATE_SHIFT: u32 = 5;
/// The coarsest grid a deadline is rounded up to.
const MAX_GRAIN_MS: u64 = 1024;

/// The grid a timeout of `dur` lands on: a power of two of milliseconds, at most `dur`/32.
fn grain(dur: Duration) -> u64 {
    let ms = u64::try_from(dur.as_millis() >> LATE_SHIFT).unwrap_or(u64::MAX);
    match ms {
        0 | 1 => 1,
        _ => (1u64 << ms.ilog2()).min(MAX_GRAIN_MS),
    }
}

/// A registered deadline; freed when the timeout is dropped.
#[derive(Default)]
struct Slot(Option<(u32, u32)>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(key) = self.0 {
            // try_with: a timeout dropped while the thread exits finds no table. try_borrow:
            // every path drops wakers (and with them tasks) outside the borrow, so a failed
            // borrow would mean a bug elsewhere; skipping the cancel then leaks one entry
            // instead of panicking the worker.
            let waker = TABLE
                .try_with(|t| t.try_borrow_mut().ok().and_then(|mut t| t.cancel(key)))
                .ok()
                .flatten();
            drop(waker);
        }
    }
}

/// Forget this thread's deadlines and driver: a new runtime starts on it (the tasks of an
/// old one, and their wakers, are never woken from here again).
pub fn reset() {
    // Wakers are dropped after the table is released: the last reference to a task of the old
    // runtime drops the task, and with it any timeout it holds.
    let mut wakers = Vec::new();
    let _ = TABLE.try_with(|t| {
        let mut t = t.borrow_mut();
        let mut freed = Vec::new();
        for (i, e) in t.entries.iter_mut().enumerate() {
            if e.live {
                e.live = false;
                wakers.extend(e.waker.take());
                e.gen = e.gen.wrapping_add(1);
                freed.extend(u32::try_from(i).ok());
            }
        }
        t.free.extend(freed);
        t.heap.clear();
        t.live = 0;
        wakers.extend(t.driver.take());
        t.driver_at = None;
        t.driver_running = false;
    });
    drop(wakers);
}

/// Run `fut` until `deadline`; `Err(Elapsed)` if it has not finished by then.
pub fn timeout_at<F: Future>(deadline: Instant, fut: F) -> Timeout<F> {
    let now = Instant::now();
    Timeout {
        fut,
        deadline,
        grain_ms: grain(deadline.saturating_duration_since(now)),
        slot: Slot(None),
    }
}

/// Run `fut` for at most `dur`.
pub fn timeout<F: Future>(dur: Duration, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        deadline: Instant::now() + dur,
        grain_ms: grain(dur),
        slot: Slot(None),
    }
}

/// Wait `dur`.
pub async fn sleep(dur: Duration) {
    let _ = timeout(dur, std::future::pending::<()>()).await;
}

/// A deadline its owner re-arms for each of a series of waits (a provider connection's
/// reads, each bounded by the idle timeout). Its table entry stays registered between waits,
/// and moving the deadline later, as every read does, changes only the entry: the heap item
/// comes due at the old time, finds the entry moved and is queued again (nginx's timers are
/// lazy the same way). A `timeout` per read registered an entry, pushed a heap item and
/// cancelled both again on every event of a stream.
#[derive(Default)]
pub struct Deadline {
    slot: Slot,
}

impl Deadline {
    /// Run `fut` for at most `dur`.
    pub fn within<F: Future>(&mut self, dur: Duration, fut: F) -> Within<'_, F> {
        Within {
            fut,
            deadline: Instant::now() + dur,
            grain_ms: grain(dur),
            owner: self,
            armed: false,
        }
    }
}

pin_project_lite::pin_project! {
    /// `fut`, bounded by its [`Deadline`].
    pub struct Within<'a, F> {
        #[pin]
        fut: F,
        deadline: Instant,
        grain_ms: u64,
        owner: &'a mut Deadline,
        // Whether this wait has set the entry's deadline yet.
        armed: bool,
    }
    impl<'a, F> PinnedDrop for Within<'a, F> {
        // Finished or dropped midway, a wait leaves no waker in the table: its task is not
        // woken for nothing later, nor kept referenced by a deadline that outlives it.
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let (true, Some(key)) = (*this.armed, this.owner.slot.0) {
                // try_with/try_borrow_mut, as in `Slot::drop`: never panic from a destructor.
                let old = TABLE
                    .try_with(|t| {
                        t.try_borrow_mut()
                            .ok()
                            .and_then(|mut t| t.entry(key).and_then(|e| e.waker.take()))
                    })
                    .ok()
                    .flatten();
                drop(old);
            }
        }
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let slot = &mut this.owner.slot;
        if let Poll::Ready(v) = this.fut.poll(cx) {
            // The waker is let go when the wait is dropped (see the PinnedDrop above).
            return Poll::Ready(Ok(v));
        }
        let (deadline, grain_ms) = (*this.deadline, *this.grain_ms);
        let first = !std::mem::replace(this.armed, true);
        let mut old = None;
        let out = TABLE.with(|t| {
            let mut t = t.borrow_mut();
            if !first {
                // Registered by the first poll; a missing slot fails safe, as in Timeout.
                return slot.0.map_or(Poll::Ready(Elapsed), |key| {
                    t.poll_entry(key, cx.waker(), &mut old)
                });
            }
            // The first poll moves the owner's entry, or registers one where it has none
            // (a new connection, or one whose entry a dropped read freed).
            match slot
                .0
                .and_then(|key| t.rearm(key, deadline, grain_ms, cx.waker()))
            {
                Some(prev) => old = prev,
                None => slot.0 = Some(t.register(deadline, grain_ms, cx.waker())),
            }
            Poll::Pending
        });
        drop(old);
        out.map(Err)
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        let deadline = *this.deadline;
        let grain_ms = *this.grain_ms;
        let slot = this.slot;
        let mut old = None;
        let out = TABLE.with(|t| {
            let mut t = t.borrow_mut();
            match slot.0 {
                None => {
                    slot.0 = Some(t.register(deadline, grain_ms, cx.waker()));
                    Poll::Pending
                }
                Some(key) => t.poll_entry(key, cx.waker(), &mut old),
            }
        });
        drop(old);
        out.map(Err)
    }
}

/// The thread's driver task: sleeps (one monoio timer) until the earliest deadline.
struct Driver {
    sleep: Option<Pin<Box<monoio::time::Sleep>>>,
    armed: Option<u64>,
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut wake = Vec::new();
        loop {
            let (next, epoch, old) = TABLE.with(|t| {
                let mut t = t.borrow_mut();
                let now = t.ms_floor(Instant::now());
                let next = t.fire(now, &mut wake);
                let mut old = None;
                if !t.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    old = t.driver.replace(cx.waker().clone());
                }
                t.driver_at = next;
                (next, t.epoch, old)
            });
            drop(old);
            for w in wake.drain(..) {
                w.wake();
            }
            let Some(at) = next else {
                self.sleep = None;
                self.armed = None;
                return Poll::Pending;
            };
            let when = monoio::time::Instant::from_std(epoch + Duration::from_millis(at));
            let same = self.armed == Some(at);
            match (&mut self.sleep, same) {
                (Some(s), false) => s.as_mut().reset(when),
                (None, _) => self.sleep = Some(Box::pin(monoio::time::sleep_until(when))),
                (Some(_), true) => {}
            }
            self.armed = Some(at);
            if let Some(s) = self.sleep.as_mut() {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The runtime is going away: a later runtime on this thread starts a new driver.
        // try_borrow, as in `Slot::drop`: never panic a worker from a destructor.
        let old = TABLE
            .try_with(|t| {
                t.try_borrow_mut().ok().and_then(|mut t| {
                    t.driver_running = false;
                    t.driver_at = None;
                    t.driver.take()
                })
            })
            .ok()
            .flatten();
        drop(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt<F: Future>(f: F) -> F::Output {
        reset();
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_deadline_fires_not_before_it_is_due() {
        rt(async {
            let start = Instant::now();
            let r = timeout(Duration::from_millis(30), std::future::pending::<()>()).await;
            assert_eq!(r, Err(Elapsed));
            assert!(start.elapsed() >= Duration::from_millis(30));
        });
    }

    #[test]
    fn a_finished_future_wins_and_frees_its_entry() {
        rt(async {
            for _ in 0..10_000 {
                let r = timeout(Duration::from_secs(60), async { 7 }).await;
                assert_eq!(r, Ok(7));
            }
            let r = timeout(Duration::from_secs(60), async {
                monoio::time::sleep(Duration::from_millis(5)).await;
                8
            })
            .await;
            assert_eq!(r, Ok(8));
            TABLE.with(|t| {
                let t = t.borrow();
                assert_eq!(t.live, 0);
                // One entry reused throughout; stale heap entries stay bounded.
                assert!(t.entries.len() <= 2, "{}", t.entries.len());
                assert!(t.heap.len() <= STALE_SLACK + 2, "{}", t.heap.len());
            });
        });
    }

    #[test]
    fn an_earlier_deadline_registered_later_still_fires_first() {
        rt(async {
            let long = monoio::spawn(timeout(
                Duration::from_secs(60),
                std::future::pending::<()>(),
            ));
            monoio::time::sleep(Duration::from_millis(5)).await;
            let start = Instant::now();
            let r = timeout(Duration::from_millis(20), std::future::pending::<()>()).await;
            assert_eq!(r, Err(Elapsed));
            // Fired first: long before the 60 s one (half of it is slack for any machine).
            assert!(start.elapsed() < Duration::from_secs(30));
            drop(long);
        });
    }

    /// Pending once, then ready: a wait that arms its deadline and finishes at once.
    async fn yield_once() {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }

    /// How long a wait that never finishes takes to time out on `d` with `dur`.
    async fn time_to_elapse(d: &mut Deadline, dur: Duration) -> Duration {
        let start = Instant::now();
        let r = d.within(dur, std::future::pending::<()>()).await;
        assert_eq!(r, Err(Elapsed));
        start.elapsed()
    }

    fn table_counts() -> (usize, usize, usize) {
        TABLE.with(|t| {
            let t = t.borrow();
            (t.live, t.entries.len(), t.heap.len())
        })
    }

    #[test]
    fn a_deadline_moved_later_fires_at_its_new_time_not_the_old() {
        rt(async {
            let mut d = Deadline::default();
            let r = d
                .within(
                    Duration::from_millis(30),
                    monoio::time::sleep(Duration::from_millis(5)),
                )
                .await;
            assert_eq!(r, Ok(()));
            // The heap item of the first wait is due in ~25 ms; the second wait must outlast it.
            let took = time_to_elapse(&mut d, Duration::from_millis(80)).await;
            assert!(took >= Duration::from_millis(80), "{took:?}");
            assert_eq!(table_counts().0, 1);
            drop(d);
            assert_eq!(table_counts().0, 0);
        });
    }

    #[test]
    fn a_deadline_moved_earlier_fires_early() {
        rt(async {
            let mut d = Deadline::default();
            let r = d.within(Duration::from_secs(5), yield_once()).await;
            assert_eq!(r, Ok(()));
            let took = time_to_elapse(&mut d, Duration::from_millis(20)).await;
            assert!(
                took >= Duration::from_millis(20) && took < Duration::from_secs(4),
                "{took:?}"
            );
        });
    }

    #[test]
    fn a_fired_deadline_is_armed_again_by_the_next_wait() {
        rt(async {
            let mut d = Deadline::default();
            time_to_elapse(&mut d, Duration::from_millis(10)).await;
            assert_eq!(
                d.within(Duration::from_secs(60), yield_once()).await,
                Ok(())
            );
            let took = time_to_elapse(&mut d, Duration::from_millis(15)).await;
            assert!(took >= Duration::from_millis(15), "{took:?}");
            assert_eq!(table_counts().0, 1);
        });
    }

    /// Wakes its task `n` times (as a read woken before its data is whole would), then waits
    /// forever.
    async fn woken_then_pending(mut n: u32) {
        std::future::poll_fn(|cx| {
            if n > 0 {
                n -= 1;
                cx.waker().wake_by_ref();
            }
            Poll::<()>::Pending
        })
        .await;
    }

    #[test]
    fn a_wait_after_a_fired_one_is_not_elapsed_by_an_early_wake() {
        rt(async {
            let mut d = Deadline::default();
            time_to_elapse(&mut d, Duration::from_millis(5)).await;
            let start = Instant::now();
            let r = d
                .within(Duration::from_millis(30), woken_then_pending(20))
                .await;
            assert_eq!(r, Err(Elapsed));
            assert!(
                start.elapsed() >= Duration::from_millis(30),
                "{:?}",
                start.elapsed()
            );
        });
    }

    #[test]
    fn a_wait_dropped_midway_leaves_its_deadline_armed_for_nobody() {
        rt(async {
            let mut d = Deadline::default();
            {
                let wait = d.within(Duration::from_secs(60), std::future::pending::<()>());
                let mut wait = std::pin::pin!(wait);
                // One poll registers it; the race that cancels a read drops it here.
                let polled = std::future::poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx))).await;
                assert!(polled.is_pending());
            }
            let key = d.slot.0.expect("registered");
            TABLE.with(|t| {
                let mut t = t.borrow_mut();
                assert!(t.entry(key).expect("live").waker.is_none());
            });
            // And the deadline still works for the next wait.
            assert_eq!(
                d.within(Duration::from_secs(60), yield_once()).await,
                Ok(())
            );
        });
    }

    #[test]
    fn many_waits_on_one_deadline_keep_one_entry_one_heap_item_and_no_waker() {
        rt(async {
            let mut d = Deadline::default();
            for _ in 0..10_000 {
                assert_eq!(
                    d.within(Duration::from_secs(60), yield_once()).await,
                    Ok(())
                );
            }
            let (live, entries, heap) = table_counts();
            assert_eq!(live, 1);
            assert!(entries <= 2, "{entries}");
            assert!(heap <= 2, "{heap}");
            let key = d.slot.0.expect("registered");
            TABLE.with(|t| {
                let mut t = t.borrow_mut();
                let e = t.entry(key).expect("live");
                // A finished wait leaves no task referenced from the table.
                assert!(e.waker.is_none());
            });
        });
    }

    #[test]
    fn long_timeouts_land_on_a_coarse_grid_short_ones_do_not() {
        assert_eq!(grain(Duration::from_millis(20)), 1);
        assert_eq!(grain(Duration::from_millis(100)), 2);
        assert_eq!(grain(Duration::from_secs(1)), 16);
        assert_eq!(grain(Duration::from_secs(10)), 256);
        assert_eq!(grain(Duration::from_secs(600)), MAX_GRAIN_MS);
        for ms in [1u64, 7, 31, 32, 33, 100, 999, 1000, 5000, 60_000, 3_600_000] {
            let g = grain(Duration::from_millis(ms));
            assert!(
                g.is_power_of_two() && (g == 1 || g <= ms / 32),
                "{ms} ms: grain {g}"
            );
        }
        // Many connections re-arming a 60 s idle timeout within a second share a few deadlines.
        let t = Table::new();
        let g = grain(Duration::from_secs(60));
        let distinct: std::collections::BTreeSet<u64> = (0..1000u64)
            .map(|i| {
                let deadline = t.epoch + Duration::from_millis(60_000 + i);
                t.ms_ceil(deadline).div_ceil(g) * g
            })
            .collect();
        assert!(distinct.len() <= 2, "{}", distinct.len());
    }

    #[test]
    fn a_new_runtime_on_the_same_thread_gets_a_driver() {
        for _ in 0..2 {
            rt(async {
                let _keep = monoio::spawn(sleep(Duration::from_secs(60)));
                let r = timeout(Duration::from_millis(10), std::future::pending::<()>()).await;
                assert_eq!(r, Err(Elapsed));
            });
        }
    }
}
