//! [`SpinPool`]: the worker threads a [`crate::KernelContext`] splits kernels across.
//!
//! A forward pass of a small model is hundreds of short parallel sections (a matmul of a
//! 576-wide layer takes a few microseconds). A pool whose workers sleep between sections pays a
//! futex wake-up and a context switch for each one, which at batch 1 costs as much as the
//! arithmetic. Here the workers spin on an epoch counter between sections, then keep checking
//! it while yielding their core (so a thread sharing the core, e.g. the caller on a busy
//! machine, can run), and only park (on a condition variable) after [`SPIN_TIME`] without
//! work, e.g. between requests. The
//! calling thread takes part in every section, so `threads` threads means `threads - 1`
//! workers. Tasks are claimed one at a time from a shared counter, so a worker that starts
//! late or is preempted by another process only takes fewer tasks; and a section is *closed*
//! once its caller has run out of tasks, so a worker that had not entered it by then (it was
//! descheduled: the machine is busy with other processes) never holds the caller up. When
//! the caller twice waits longer than [`LATE`] for a worker preempted mid-task within
//! [`LATE_WINDOW`] sections, or [`MISSED_IN_A_ROW`] sections in a row see no worker, the next
//! [`INLINE_SECTIONS`] sections run on the caller alone: on a machine whose cores are taken
//! by other processes one thread is faster than two that wait for each other. (A single late
//! wait is usually one of the process's own threads, e.g. the server's, taking the core for a
//! moment; answering each with a stretch of single-threaded sections cost 6% of batch-8
//! decode on a quiet machine.)

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
const SPIN_TIME: Duration = Duration::from_micros(500);
/// Spins between two looks at the clock.
const SPINS_PER_CLOCK_CHECK: u32 = 256;
/// A wait for a worker inside a section longer than this: it was preempted mid-task.
const LATE: Duration = Duration::from_micros(200);
/// Two late waits at most this many sections apart ...
const LATE_WINDOW: u64 = 256;
/// ... or this many sections in a row that no worker entered ...
const MISSED_IN_A_ROW: usize = 16;
/// ... make the next this many sections (about a decode step) run on the caller alone.
const INLINE_SECTIONS: usize = 128;
/// Spins before an idle worker starts yielding its core between looks (a few microseconds:
/// back-to-back kernel calls of one forward pass come faster than that).
const PURE_SPINS: u32 = 1 << 11;

/// One parallel section: `tasks` calls of `f`, claimed through `next`.
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    tasks: usize,
    next: AtomicUsize,
    /// Whether any worker entered the section.
    entered: AtomicBool,
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

impl Job<'_> {
    /// Runs tasks until none is left; a panic is kept for the caller to resume.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.tasks {
                return;
            }
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| (self.f)(i))) {
                // Skip the remaining tasks; the caller resumes the first panic.
                self.next.store(self.tasks, Ordering::Relaxed);
                let mut slot = self.panic.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(payload);
                return;
            }
        }
    }
}

/// `state`: the section's epoch in the high 32 bits, [`CLOSED`], and the number of workers
/// inside the section in the low bits.
const CLOSED: u64 = 1 << 31;
const INSIDE: u64 = CLOSED - 1;

struct Shared {
    /// See [`CLOSED`]. A worker enters a section by incrementing the count of an open section
    /// of the epoch it saw; the caller closes it and waits for the count to reach 0.
    state: AtomicU64,
    /// The current section's `Job`, valid while the section is open or has workers inside.
    job: AtomicPtr<()>,
    /// Workers parked (or about to park) on `wake`.
    parked: AtomicUsize,
    stop: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

/// A fixed set of spinning worker threads; see the module docs.
pub struct SpinPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// One section at a time (holding the last epoch); a second concurrent caller runs its
    /// tasks itself.
    dispatch: Mutex<u32>,
    /// Sections still to run on the caller alone (see the module docs).
    inline_left: AtomicUsize,
    /// Sections dispatched to the workers so far, and the count at the last late wait.
    sections: AtomicU64,
    last_late: AtomicU64,
    /// Sections in a row that no worker entered.
    missed: AtomicUsize,
}

impl std::fmt::Debug for SpinPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpinPool")
            .field("threads", &self.threads())
            .finish()
    }
}

impl SpinPool {
    /// A pool running sections on `threads` threads: the caller and `threads - 1` workers.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            parked: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut pool = Self {
            shared,
            workers: Vec::new(),
            dispatch: Mutex::new(0),
            inline_left: AtomicUsize::new(0),
            sections: AtomicU64::new(0),
            last_late: AtomicU64::new(0),
            missed: AtomicUsize::new(0),
        };
        for i in 1..threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            let handle = std::thread::Builder::new()
                .name(format!("agentc-kernel-{i}"))
                .spawn(move || worker(&shared))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Threads a section runs on, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `f(i)` for every `i < tasks`, spread over the pool, and returns when all are done.
    /// A panic in any task is resumed here after every thread has left the section.
    pub fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if tasks == 0 {
            return;
        }
        if self.inline_left.load(Ordering::Relaxed) > 0 {
            self.inline_left.fetch_sub(1, Ordering::Relaxed);
            (0..tasks).for_each(f);
            return;
        }
        let mut epoch = match self.dispatch.try_lock() {
            Ok(guard) if tasks > 1 && !self.workers.is_empty() => guard,
            // One task, no workers, or another section in progress (a concurrent caller):
            // run here.
            _ => {
                (0..tasks).for_each(f);
                return;
            }
        };
        self.sections.fetch_add(1, Ordering::Relaxed);
        // Never 0, the epoch workers start from.
        *epoch = epoch.wrapping_add(1).max(1);
        let job = Job {
            f,
            tasks,
            next: AtomicUsize::new(0),
            entered: AtomicBool::new(false),
            panic: Mutex::new(None),
        };
        let shared = &*self.shared;
        shared
            .job
            .store(&job as *const Job as *mut (), Ordering::Relaxed);
        shared
            .state
            .store(u64::from(*epoch) << 32, Ordering::SeqCst);
        if shared.parked.load(Ordering::SeqCst) > 0 {
            let _lock = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.wake.notify_all();
        }
        job.work();
        // `job` lives on this stack frame: close the section, then wait for the workers inside
        // it (each is running a task or about to find none left).
        shared.state.fetch_or(CLOSED, Ordering::AcqRel);
        if shared.state.load(Ordering::Acquire) & INSIDE != 0 {
            let waiting = Instant::now();
            let mut spins = 0u32;
            while shared.state.load(Ordering::Acquire) & INSIDE != 0 {
                spins += 1;
                if spins < 1 << 12 {
                    std::hint::spin_loop();
                } else {
                    // The worker was preempted mid-task: give it this core.
                    std::thread::yield_now();
                }
            }
            if waiting.elapsed() > LATE {
                let section = self.sections.load(Ordering::Relaxed);
                let previous = self.last_late.swap(section, Ordering::Relaxed);
                if previous > 0 && section - previous <= LATE_WINDOW {
                    self.go_inline();
                }
            }
        }
        // Workers that keep missing sections are not getting a core (or share the caller's):
        // their spinning only takes time from the caller.
        if job.entered.load(Ordering::Relaxed) {
            self.missed.store(0, Ordering::Relaxed);
        } else if self.missed.fetch_add(1, Ordering::Relaxed) + 1 >= MISSED_IN_A_ROW {
            self.go_inline();
        }
        shared.job.store(std::ptr::null_mut(), Ordering::Relaxed);
        drop(epoch);
        let panic = job.panic.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }
}

impl SpinPool {
    /// Other processes hold the cores: splitting costs more than it gains, so the next
    /// sections run on the caller alone (the workers park), then splitting is tried again.
    fn go_inline(&self) {
        self.missed.store(0, Ordering::Relaxed);
        self.inline_left.store(INLINE_SECTIONS, Ordering::Relaxed);
    }
}

impl Drop for SpinPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _lock = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for handle in self.workers.drain(..) {
            // A worker never panics (tasks are caught), so there is nothing to report.
            let _ = handle.join();
        }
    }
}

fn epoch_of(state: u64) -> u32 {
    (state >> 32) as u32
}

fn worker(shared: &Shared) {
    // Epoch 0 is the pool's before its first section (sections are never 0). Starting from it,
    // not from a load, lets a worker thread that starts late still join the section open when
    // it starts, instead of taking that section as already seen and missing it.
    let mut seen = 0;
    loop {
        // Wait for a new section: spin, then park.
        let mut idle_since = Instant::now();
        let mut spins = 0u32;
        let mut state = loop {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            let state = shared.state.load(Ordering::Acquire);
            if epoch_of(state) != seen {
                break state;
            }
            spins += 1;
            if spins < PURE_SPINS {
                std::hint::spin_loop();
                continue;
            }
            if !spins.is_multiple_of(SPINS_PER_CLOCK_CHECK) || idle_since.elapsed() < SPIN_TIME {
                // Let a thread sharing this core run (the caller itself, when the machine has
                // fewer free cores than threads): pure spinning would burn its time slice.
                std::thread::yield_now();
                continue;
            }
            let lock = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.parked.fetch_add(1, Ordering::SeqCst);
            // Checked after announcing the park: a section started before this load is seen
            // here, one started after it sees `parked > 0` and notifies under the lock.
            let lock = if epoch_of(shared.state.load(Ordering::SeqCst)) == seen
                && !shared.stop.load(Ordering::SeqCst)
            {
                shared.wake.wait(lock).unwrap_or_else(|e| e.into_inner())
            } else {
                lock
            };
            shared.parked.fetch_sub(1, Ordering::SeqCst);
            drop(lock);
            idle_since = Instant::now();
            spins = 0;
        };
        seen = epoch_of(state);
        // Enter the section unless its caller has closed it (or already moved on).
        loop {
            if epoch_of(state) != seen || state & CLOSED != 0 {
                break;
            }
            match shared.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let job = shared.job.load(Ordering::Relaxed) as *const Job;
                    // SAFETY: the caller published `job` before opening the section (the
                    // `state` store this thread acquired) and keeps it alive until the count
                    // of workers inside drops to 0, which needs this worker's decrement.
                    let job = unsafe { &*job };
                    job.entered.store(true, Ordering::Relaxed);
                    job.work();
                    shared.state.fetch_sub(1, Ordering::Release);
                    break;
                }
                Err(now) => state = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_task_runs_exactly_once() {
        let pool = SpinPool::new(3).expect("pool");
        for tasks in [0, 1, 2, 7, 100] {
            let hits: Vec<AtomicU64> = (0..tasks).map(|_| AtomicU64::new(0)).collect();
            pool.run(tasks, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "{tasks}"
            );
        }
    }

    #[test]
    fn sections_after_the_workers_parked_still_run_on_them() {
        let pool = SpinPool::new(2).expect("pool");
        std::thread::sleep(SPIN_TIME * 4);
        let caller = std::thread::current().id();
        let worker_ran = AtomicBool::new(false);
        // The caller's task waits for a task on the (woken) worker; it gives up after 10 s.
        pool.run(2, &|_| {
            if std::thread::current().id() != caller {
                worker_ran.store(true, Ordering::SeqCst);
                return;
            }
            let start = Instant::now();
            while !worker_ran.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        assert!(worker_ran.load(Ordering::SeqCst));
    }

    #[test]
    fn a_panicking_task_is_resumed_in_the_caller_and_the_pool_still_works() {
        let pool = SpinPool::new(2).expect("pool");
        let result = catch_unwind(AssertUnwindSafe(|| {
            pool.run(8, &|i| assert!(i != 5, "task five"));
        }));
        let payload = result.expect_err("panics");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"task five"));
        let sum = AtomicU64::new(0);
        pool.run(10, &|i| {
            sum.fetch_add(i as u64, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 45);
    }

    #[test]
    fn concurrent_callers_each_get_all_their_tasks_done() {
        let pool = Arc::new(SpinPool::new(2).expect("pool"));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let sum = AtomicU64::new(0);
                        pool.run(16, &|i| {
                            sum.fetch_add(i as u64 + t, Ordering::Relaxed);
                        });
                        assert_eq!(sum.load(Ordering::Relaxed), 120 + 16 * t);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("no panic");
        }
    }
}
