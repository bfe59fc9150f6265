//! A decode's helper threads start on another CPU than the thread that asked for them.
//!
//! Why: on this 2-core virtual machine, a thread spawned after the server had been idle was
//! queued on its spawner's own CPU, behind the spawner, until the load balancer moved it: after
//! a 20 ms pause it first ran 2.6 ms later (median), on the spawner's CPU 80 times in 100; a
//! pool's parked thread woke within 8 µs but always on the waker's CPU, sharing it (so keeping
//! a pool does not help); a thread moved off the spawner's CPU ran within 67 µs
//! (`bench/thread_start.sh`; `docs/benchmarks.md`, "A decode's second thread, started
//! elsewhere"). Linux does not take the idle virtual CPU for a free one, likely because a
//! halted virtual CPU can read as preempted to the guest. A small view decodes in 7–13 ms, so
//! that wait was a fifth of it.
//!
//! So a helper is moved off the spawner's CPU right after it is spawned (before it first runs,
//! if it is still queued), and, once it runs, given back every CPU it was allowed: only its
//! start is placed, never where it may run later. Where the spawner may run on only one CPU,
//! or the system does not say, nothing is moved.
//!
//! Why `libc` and not a crate: the crates for affinity (`core_affinity`, `nix`'s
//! `sched_setaffinity`) set the calling thread's or a known thread id's; a thread that has not
//! yet run is reached only by its `pthread_t`, through `pthread_setaffinity_np`.

#[cfg(target_os = "linux")]
mod imp {
    use std::mem::{size_of, zeroed};
    use std::os::unix::thread::JoinHandleExt;

    /// The CPUs the spawning thread may run on, and the same without the one it runs on now.
    #[derive(Clone, Copy)]
    pub(crate) struct Placement {
        allowed: libc::cpu_set_t,
        elsewhere: libc::cpu_set_t,
    }

    impl Placement {
        /// Where the calling thread is now; `None` when there is nowhere else to go.
        pub(crate) fn here() -> Option<Self> {
            // SAFETY: a zeroed `cpu_set_t` is an empty set; `sched_getaffinity` writes at most
            // its size; the CPU_* helpers read and write within the set (`cpu` is checked
            // against its bits first).
            unsafe {
                let mut allowed: libc::cpu_set_t = zeroed();
                if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut allowed) != 0 {
                    return None;
                }
                let cpu = usize::try_from(libc::sched_getcpu()).ok()?;
                if cpu >= 8 * size_of::<libc::cpu_set_t>()
                    || !libc::CPU_ISSET(cpu, &allowed)
                    || libc::CPU_COUNT(&allowed) < 2
                {
                    return None;
                }
                let mut elsewhere = allowed;
                libc::CPU_CLR(cpu, &mut elsewhere);
                Some(Self { allowed, elsewhere })
            }
        }

        /// Move `helper`, just spawned, off the CPU [`Placement::here`] was taken on. A thread
        /// that has already ended, or a refusal, leaves it where it is; one that already ran
        /// and freed itself keeps off that CPU until it ends (it runs elsewhere already).
        pub(crate) fn send_elsewhere(&self, helper: &impl JoinHandleExt) {
            // SAFETY: the handle keeps the thread's `pthread_t` valid (it is not joined yet);
            // the set is read within its size.
            unsafe {
                libc::pthread_setaffinity_np(
                    helper.as_pthread_t(),
                    size_of::<libc::cpu_set_t>(),
                    &self.elsewhere,
                );
            }
        }

        /// Called by the helper once it runs: every CPU it was allowed, again.
        pub(crate) fn free_this_thread(&self) {
            // SAFETY: the set is read within its size; 0 is the calling thread.
            unsafe {
                libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &self.allowed);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::sync::{Arc, Barrier};

        fn this_threads_cpus() -> libc::cpu_set_t {
            // SAFETY: as in `Placement::here`.
            unsafe {
                let mut set: libc::cpu_set_t = zeroed();
                assert_eq!(
                    libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set),
                    0
                );
                set
            }
        }

        /// A helper sent elsewhere runs off its spawner's CPU (held at a barrier until it was
        /// sent, so that it cannot have run before), and has every CPU again once freed.
        #[test]
        fn a_helper_starts_off_the_spawners_cpu_and_is_then_freed() {
            let Some(placement) = Placement::here() else {
                return; // one CPU allowed: nothing to place
            };
            let sent = Arc::new(Barrier::new(2));
            let held = Arc::clone(&sent);
            let helper = std::thread::spawn(move || {
                held.wait();
                let started_with = this_threads_cpus();
                // SAFETY: no arguments; reads the calling thread's CPU.
                let started_on = unsafe { libc::sched_getcpu() };
                placement.free_this_thread();
                (started_with, started_on, this_threads_cpus())
            });
            placement.send_elsewhere(&helper);
            sent.wait();
            let (started_with, started_on, freed) = helper.join().expect("the helper ran");
            // SAFETY: sets compared and read within their size.
            unsafe {
                assert!(libc::CPU_EQUAL(&started_with, &placement.elsewhere));
                assert!(libc::CPU_ISSET(started_on as usize, &placement.elsewhere));
                assert!(libc::CPU_EQUAL(&freed, &placement.allowed));
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    /// Elsewhere than Linux, threads start where the system puts them.
    #[derive(Clone, Copy)]
    pub(crate) struct Placement;

    impl Placement {
        pub(crate) fn here() -> Option<Self> {
            None
        }
        pub(crate) fn send_elsewhere<T>(&self, _helper: &std::thread::JoinHandle<T>) {}
        pub(crate) fn free_this_thread(&self) {}
    }
}

pub(crate) use imp::Placement;
