//! A spinning team for the products of one small forward pass: the other threads of the pool
//! wait for work in a busy loop for the length of the pass, instead of going to sleep between
//! two layers and being woken by the next one. One comment's pass is 48 products of a few
//! hundred microseconds each on 2 threads; waking a sleeping worker (a futex, and on a
//! virtual machine an idle vCPU to schedule) cost about 30 microseconds of each.
//!
//! [`with_team`] runs a closure with `helpers` helpers spinning on the current rayon pool;
//! inside it, [`on_team`] hands part `1 + i` of a job to helper `i`, runs part 0 itself and
//! returns when all have ended. The calling thread never waits for a helper that has not
//! started: until every helper runs, [`on_team`] declines and the caller splits its work the
//! usual way. What each part computes is the caller's; the team changes only who runs it.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// A job: part `i` of the work (the caller's part is 0).
type Job<'a> = &'a (dyn Fn(usize) + Sync);

/// What the calling thread and its helpers share.
struct Team {
    helpers: usize,
    /// Helpers in their loop.
    started: AtomicUsize,
    /// Jobs posted so far.
    posted: AtomicUsize,
    /// Helpers done with the last job.
    done: AtomicUsize,
    /// The last job: the address of a `Job` on the poster's stack, valid until `done`
    /// reaches `helpers`.
    job: AtomicPtr<()>,
    /// Set when a helper's part panicked.
    panicked: AtomicBool,
    /// Set when the closure of [`with_team`] has ended: helpers leave.
    stop: AtomicBool,
}

thread_local! {
    /// The team of the [`with_team`] running on this thread (null: none).
    static CURRENT: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
}

impl Team {
    /// Helper `i`'s loop: run part `1 + i` of every job posted, until `stop`.
    fn serve(&self, i: usize) {
        let mut seen = self.posted.load(Ordering::Acquire);
        self.started.fetch_add(1, Ordering::AcqRel);
        let mut idle = 0u32;
        loop {
            let g = self.posted.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                let p = self.job.load(Ordering::Acquire) as *const Job;
                // SAFETY: `post` stored the address of a live `Job` before publishing `g` and
                // keeps it alive until every helper has counted itself in `done`.
                let job = unsafe { *p };
                if catch_unwind(AssertUnwindSafe(|| job(1 + i))).is_err() {
                    self.panicked.store(true, Ordering::Release);
                }
                self.done.fetch_add(1, Ordering::AcqRel);
                idle = 0;
                continue;
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            pause(&mut idle);
        }
    }

    /// Runs `job(0)` here and `job(1 + i)` on helper `i`; false (nothing run) unless every
    /// helper is in its loop.
    fn post(&self, job: Job) -> bool {
        if self.started.load(Ordering::Acquire) < self.helpers {
            return false;
        }
        self.done.store(0, Ordering::Relaxed);
        self.job
            .store(&job as *const Job as *mut (), Ordering::Relaxed);
        self.posted.fetch_add(1, Ordering::Release);
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        let mut idle = 0u32;
        while self.done.load(Ordering::Acquire) < self.helpers {
            pause(&mut idle);
        }
        if let Err(e) = mine {
            std::panic::resume_unwind(e);
        }
        assert!(
            !self.panicked.load(Ordering::Acquire),
            "a helper's part of a product panicked"
        );
        true
    }
}

/// One turn of a wait: a spin-loop hint, and past [`SPINS`] turns in a row a yield of the
/// thread too (so that more threads than cores still make progress).
fn pause(idle: &mut u32) {
    *idle = idle.saturating_add(1);
    if *idle > SPINS {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Turns of pure spinning before a wait yields too (tens of microseconds).
const SPINS: u32 = 1 << 14;

/// Ends the team when the closure of [`with_team`] returns or unwinds.
struct Leave<'a>(&'a Team, *const Team);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.1));
        self.0.stop.store(true, Ordering::Release);
    }
}

/// Runs `body` with `helpers` threads of the current rayon pool spinning for the parts of
/// [`on_team`]'s jobs (none, or `VOCMINE_NO_TEAM` set to measure without: `body` alone, and
/// the parts go to rayon's tasks). Call it inside the pool (`pool.install`) with `helpers`
/// below the pool's thread count.
pub(crate) fn with_team<R: Send>(helpers: usize, body: impl FnOnce() -> R + Send) -> R {
    static OFF: OnceLock<bool> = OnceLock::new();
    if helpers == 0 || *OFF.get_or_init(|| std::env::var_os("VOCMINE_NO_TEAM").is_some()) {
        return body();
    }
    let team = Team {
        helpers,
        started: AtomicUsize::new(0),
        posted: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        job: AtomicPtr::new(std::ptr::null_mut()),
        panicked: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    };
    let team = &team;
    rayon::scope(|s| {
        for i in 0..helpers {
            s.spawn(move |_| team.serve(i));
        }
        let before = CURRENT.with(|c| c.replace(team as *const Team));
        let _leave = Leave(team, before);
        body()
    })
}

/// Runs `job(0 .. parts)` on this thread's team, part 0 here, and returns true when they have
/// all ended; false (nothing run) without a team of `parts - 1` helpers all spinning.
pub(crate) fn on_team(parts: usize, job: Job) -> bool {
    let team = CURRENT.with(|c| c.get());
    if team.is_null() {
        return false;
    }
    // SAFETY: `CURRENT` holds a team only while `with_team`'s closure runs on this thread,
    // which outlives this call.
    let team = unsafe { &*team };
    team.helpers + 1 == parts && team.post(job)
}
