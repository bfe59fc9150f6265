//! Copying an image into the hot cache before its tiles are asked for.
//!
//! A viewer asks for info.json, then for tiles. Where info.json is answered from the header
//! index (`info`, in milliseconds) and the tiles need the local copy (`orchestrate`, `render`),
//! the first tiles wait for the whole copy. With `prefetch` on the `info` route, answering
//! info.json also puts the image in a queue, and the copy starts in the background: by the
//! time the tiles come it is on its way (a tile then joins the copy in flight) or done.
//!
//! The queue is bounded (`QUEUE` images): when it is full, the image waiting longest is
//! dropped, since a viewer that asked long ago has asked for its tiles already (and those
//! copy what they need). At most `WORKERS` prefetches copy at once, so prefetching never holds
//! all of the hot cache's copy slots that requests wait for.

use prometheus::{register_int_counter_vec_with_registry, IntCounterVec};
use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use tessera_hotcache::HotCache;
use tessera_origin::Origin;
use tessera_proxy::metrics::registry;

/// Images waiting to be copied, at most.
const QUEUE: usize = 64;
/// Prefetches copying at once, at most.
const WORKERS: usize = 2;

static PREFETCH: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec_with_registry!(
        "tessera_hot_cache_prefetch_total",
        "Images an info.json request put in the hot cache's prefetch queue, by outcome: queued, dropped (the queue was full), copied, present (already there), failed.",
        &["outcome"],
        registry()
    )
    .expect("metric registers")
});

pub(crate) fn init_metrics() {
    for outcome in ["queued", "dropped", "copied", "present", "failed"] {
        PREFETCH.with_label_values(&[outcome]);
    }
}

/// One image to copy.
struct Job {
    origin: Arc<dyn Origin>,
    key: String,
    suffix: String,
}

/// A bounded queue that forgets its oldest entry to make room. Pure, so it is tested alone.
#[derive(Debug)]
pub(crate) struct Bounded<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> Bounded<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Add `item`; returns the one dropped to make room, if any.
    pub(crate) fn push(&mut self, item: T) -> Option<T> {
        let dropped = (self.items.len() >= self.capacity)
            .then(|| self.items.pop_front())
            .flatten();
        self.items.push_back(item);
        dropped
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }
}

struct Queue {
    jobs: Bounded<Job>,
    workers: usize,
}

/// The prefetch queue of one hot cache.
pub struct Prefetcher {
    queue: Mutex<Queue>,
}

impl Default for Prefetcher {
    fn default() -> Self {
        Self {
            queue: Mutex::new(Queue {
                jobs: Bounded::new(QUEUE),
                workers: 0,
            }),
        }
    }
}

impl Prefetcher {
    /// Queue `key` of `origin` for copying into `slot`'s cache, and start a worker if fewer
    /// than `WORKERS` run. Needs a Tokio runtime (a request's).
    pub fn prefetch(
        self: &Arc<Self>,
        cache: &HotCache,
        origin: &Arc<dyn Origin>,
        key: &str,
        suffix: &str,
    ) {
        let start = {
            let mut queue = self.lock();
            let job = Job {
                origin: origin.clone(),
                key: key.to_string(),
                suffix: suffix.to_string(),
            };
            if queue.jobs.push(job).is_some() {
                PREFETCH.with_label_values(&["dropped"]).inc();
            }
            PREFETCH.with_label_values(&["queued"]).inc();
            let start = queue.workers < WORKERS;
            if start {
                queue.workers += 1;
            }
            start
        };
        if start {
            let (this, cache) = (self.clone(), cache.clone());
            tokio::spawn(async move { this.work(&cache).await });
        }
    }

    /// Copy queued images until the queue is empty.
    async fn work(&self, cache: &HotCache) {
        loop {
            let job = {
                let mut queue = self.lock();
                match queue.jobs.pop() {
                    Some(job) => job,
                    None => {
                        queue.workers -= 1;
                        return;
                    }
                }
            };
            if cache.contains(&job.origin, &job.key, &job.suffix) {
                PREFETCH.with_label_values(&["present"]).inc();
                continue;
            }
            match cache.ensure(&job.origin, &job.key, &job.suffix).await {
                // The lease is let go at once: the copy stays, unpinned, like any other.
                Ok(_lease) => PREFETCH.with_label_values(&["copied"]).inc(),
                Err(e) => {
                    tracing::info!(origin = %job.origin.describe(), key = %job.key, error = %e, "hot cache: prefetch failed");
                    PREFETCH.with_label_values(&["failed"]).inc();
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Bounded;

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let mut q = Bounded::new(2);
        assert_eq!(q.push(1), None);
        assert_eq!(q.push(2), None);
        assert_eq!(q.push(3), Some(1));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), None);
    }
}
