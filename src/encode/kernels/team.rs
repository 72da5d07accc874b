//! A spinning team for the products of one small forward pass: the other threads of the pool
//! wait for work in a busy loop for the length of the pass, instead of going to sleep between
//! two layers and being woken by the next one. One comment's pass is 48 products of a few
//! hundred microseconds each on 2 threads; waking a sleeping worker (a futex, and on a
//! virtual machine an idle vCPU to schedule) cost about 30 microseconds of each.
//!
//! [`with_team`] runs a closure with `helpers` helpers spinning on the current rayon pool;
//! inside it, [`on_team`] posts a job of `parts` parts, and the calling thread and the helpers
//! claim its parts from a shared counter until none is left; it returns when all have ended.
//! Nothing waits for a helper to start: a helper that is not running yet (its pool thread busy
//! elsewhere) just claims nothing, and the caller runs the parts it leaves. What each part
//! computes is the caller's; the team changes only who runs it.
//!
//! Rules that keep it sound: the posted job lives on the poster's stack until every part has
//! ended (`done == parts`); a part is run only by whoever claimed its ticket, and a ticket names
//! its job's number, so a claim left over from the job before never runs a part of the new one
//! nor takes one from it; no part can post a job of its own (`CURRENT` is empty while parts
//! run, so [`on_team`] inside a part declines).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// A job: part `i` of the work.
type Job<'a> = &'a (dyn Fn(usize) + Sync);

/// What the calling thread and its helpers share.
struct Team {
    /// The last job's number (high 32 bits) and parts (low 32 bits); helpers look for work
    /// when the number changes.
    spec: AtomicU64,
    /// Claim tickets: the last job's number (high 32 bits) and the next part to claim (low 32
    /// bits). Reset after `spec` for each job, so a ticket of job `g` sees `spec` of job `g`.
    next: AtomicU64,
    /// Parts of the last job ended.
    done: AtomicUsize,
    /// The last job: the address of a `Job` on the poster's stack, valid until `done`
    /// reaches its parts.
    job: AtomicPtr<()>,
    /// Set when a part panicked.
    panicked: AtomicBool,
    /// Set when the closure of [`with_team`] has ended: helpers leave.
    stop: AtomicBool,
}

/// The low 32 bits of `spec` and `next`.
const LOW: u64 = (1 << 32) - 1;

thread_local! {
    /// The team of the [`with_team`] running on this thread (null: none, or a part running).
    static CURRENT: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
}

/// Puts `CURRENT` back as it was when dropped (on return and on unwind).
struct Restore(*const Team);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

impl Team {
    /// Claims and runs parts of the last job until none is left.
    fn work(&self) {
        loop {
            let ticket = self.next.fetch_add(1, Ordering::AcqRel);
            let spec = self.spec.load(Ordering::Acquire);
            if ticket >> 32 != spec >> 32 {
                // a ticket of the job before, taken just before the poster reset `next`
                std::hint::spin_loop();
                continue;
            }
            let j = (ticket & LOW) as usize;
            if j >= (spec & LOW) as usize {
                return;
            }
            // part `j` is claimed and not done, so the poster is still waiting in `post`,
            // whose `job` is the one `spec` numbers
            let p = self.job.load(Ordering::Acquire) as *const Job;
            // SAFETY: as just said: `post` stored the address of its live `Job` before
            // publishing `spec` and `next`, and waits for this part's `done` before it returns.
            let job = unsafe { *p };
            if catch_unwind(AssertUnwindSafe(|| job(j))).is_err() {
                self.panicked.store(true, Ordering::Release);
            }
            self.done.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A helper's loop: work on every job posted, until `stop`.
    fn serve(&self) {
        let mut seen = 0;
        let mut idle = 0u32;
        loop {
            let g = self.spec.load(Ordering::Acquire) >> 32;
            if g != seen {
                seen = g;
                self.work();
                idle = 0;
                continue;
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            pause(&mut idle);
        }
    }

    /// Runs `job(0 .. parts)` on this thread and whichever helpers are spinning; returns when
    /// every part has ended.
    fn post(&self, parts: usize, job: Job) {
        let g = (self.spec.load(Ordering::Relaxed) >> 32) + 1;
        self.job
            .store(&job as *const Job as *mut (), Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.spec
            .store(g << 32 | (parts as u64 & LOW), Ordering::Release);
        self.next.store(g << 32, Ordering::Release);
        self.work();
        let mut idle = 0u32;
        while self.done.load(Ordering::Acquire) < parts {
            pause(&mut idle);
        }
        assert!(
            !self.panicked.swap(false, Ordering::AcqRel),
            "a part of a product panicked"
        );
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

/// Turns of pure spinning before a wait yields too: 4,096 PAUSEs, about 0.1 to 0.3 ms (more
/// than the serial steps between two products of a pass: attention, layer norm).
const SPINS: u32 = 1 << 12;

/// Ends the team when the closure of [`with_team`] returns or unwinds.
struct Leave<'a>(&'a Team);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
    }
}

/// Runs `body` with `helpers` threads of the current rayon pool spinning for the parts of
/// [`on_team`]'s jobs (none, or `VOCMINE_NO_TEAM` set to measure without: `body` alone, and
/// the parts go to rayon's tasks). Call it inside the pool (`pool.install`) with `helpers`
/// below the pool's thread count. A helper whose thread is busy elsewhere joins late or never;
/// the jobs do not wait for it.
pub(crate) fn with_team<R: Send>(helpers: usize, body: impl FnOnce() -> R + Send) -> R {
    static OFF: OnceLock<bool> = OnceLock::new();
    if helpers == 0 || *OFF.get_or_init(|| std::env::var_os("VOCMINE_NO_TEAM").is_some()) {
        // no team here, not even an outer one: a pass of many rows inside a small one's part
        let _restore = Restore(CURRENT.with(|c| c.replace(std::ptr::null())));
        return body();
    }
    let team = Team {
        spec: AtomicU64::new(0),
        next: AtomicU64::new(0),
        done: AtomicUsize::new(0),
        job: AtomicPtr::new(std::ptr::null_mut()),
        panicked: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    };
    let team = &team;
    rayon::scope(|s| {
        for _ in 0..helpers {
            s.spawn(move |_| team.serve());
        }
        let _restore = Restore(CURRENT.with(|c| c.replace(team as *const Team)));
        let _leave = Leave(team);
        body()
    })
}

/// Runs `job(0 .. parts)` on this thread's team (this thread takes part too) and returns true
/// when they have all ended; false (nothing run) without a team, or inside a part.
pub(crate) fn on_team(parts: usize, job: Job) -> bool {
    let team = CURRENT.with(|c| c.replace(std::ptr::null()));
    if team.is_null() {
        return false;
    }
    let _restore = Restore(team);
    // SAFETY: `CURRENT` holds a team only while `with_team`'s closure runs on this thread,
    // which outlives this call.
    unsafe { &*team }.post(parts, job);
    true
}
