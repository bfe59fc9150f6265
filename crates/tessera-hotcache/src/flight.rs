//! One copy in flight: HEAD, reserve room, copy to a temporary file, rename into place, and
//! tell every waiter.
//!
//! The copy runs on a task of its own. [`Flight`] is a guard: however the task ends — answer,
//! error, panic or runtime shutdown — its `Drop` takes the copy out of the in-flight table,
//! gives back the reserved bytes and removes the temporary file, so a failed copy never blocks
//! the next request for the same image and never leaks budget.

use crate::inner::{Inner, Outcome};
use crate::{copy, CopyError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tessera_origin::{Origin, OriginError};
use tokio::sync::watch;

pub(crate) struct Flight {
    inner: Arc<Inner>,
    name: String,
    tx: watch::Sender<Option<Outcome>>,
    reserved: u64,
    tmp: Option<PathBuf>,
    finished: bool,
}

impl Flight {
    pub(crate) fn new(inner: Arc<Inner>, name: String, tx: watch::Sender<Option<Outcome>>) -> Self {
        Self {
            inner,
            name,
            tx,
            reserved: 0,
            tmp: None,
            finished: false,
        }
    }

    /// Run the copy to the end, whether or not anyone is still waiting.
    pub(crate) async fn run(mut self, origin: Arc<dyn Origin>, key: String) {
        let started = Instant::now();
        let inner = self.inner.clone();
        let wait = inner.settings.max_copy_wait;
        let result = match tokio::time::timeout(wait, inner.copy_slots.acquire()).await {
            Ok(Ok(_permit)) => self.copy(&*origin, &key).await,
            Ok(Err(_)) => Err(CopyError::Aborted),
            Err(_) => Err(CopyError::Busy(wait)),
        };
        // A failed copy's temporary file goes before anyone hears of the failure.
        if let Some(tmp) = self.tmp.take() {
            let _ = tokio::fs::remove_file(tmp).await;
        }
        let copied = result.as_ref().ok().copied();
        let mut st = inner.lock();
        st.inflight.remove(&self.name);
        st.reserved = st.reserved.saturating_sub(self.reserved);
        self.reserved = 0;
        let outcome = match result {
            Ok(size) => {
                let now = inner.now_ms();
                st.policy.insert(&self.name, size, now);
                Ok(inner.pin(&mut st, &self.name))
            }
            Err(e) => {
                if e == CopyError::NotFound {
                    inner.remember_not_found(&mut st, &self.name);
                }
                Err(e)
            }
        };
        inner.report(&st);
        drop(st);
        match &outcome {
            Ok(_) => {
                inner
                    .observer
                    .copied(copied.unwrap_or(0), started.elapsed());
                tracing::info!(origin = %origin.describe(), key = %key, file = %self.name, elapsed_ms = started.elapsed().as_millis() as u64, "hot cache: copied");
            }
            Err(CopyError::NotFound) => inner.observer.failed("not_found"),
            Err(e) => {
                tracing::error!(origin = %origin.describe(), key = %key, error = %e, kind = e.kind(), "hot cache: copy failed");
                inner.observer.failed(e.kind());
            }
        }
        self.finished = true;
        let _ = self.tx.send(Some(outcome));
    }

    /// HEAD, make room, copy to a temporary file, rename into place. Returns the size.
    async fn copy(&mut self, origin: &dyn Origin, key: &str) -> Result<u64, CopyError> {
        let inner = self.inner.clone();
        let meta = origin.head(key).await.map_err(|e| match e {
            OriginError::NotFound => CopyError::NotFound,
            e => CopyError::Origin(e),
        })?;
        let limit = inner.settings.high();
        if meta.size > limit {
            return Err(CopyError::TooLarge {
                size: meta.size,
                limit,
            });
        }
        let evicted = {
            let mut st = inner.lock();
            st.reserved += meta.size;
            self.reserved = meta.size;
            inner.evict_if_over(&mut st)
        };
        inner.discard(evicted);

        let tmp = copy::temp_path(&inner.tmp, &self.name);
        self.tmp = Some(tmp.clone());
        copy::copy_object(origin, key, &meta, &tmp, &inner.settings).await?;
        tokio::fs::rename(&tmp, inner.objects.join(&self.name))
            .await
            .map_err(|e| copy::local_error(&e))?;
        self.tmp = None;
        Ok(meta.size)
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
        if self.finished {
            return;
        }
        // The task ended without answering (a panic, or the runtime shutting down).
        let mut st = self.inner.lock();
        st.inflight.remove(&self.name);
        st.reserved = st.reserved.saturating_sub(self.reserved);
        self.inner.report(&st);
        drop(st);
        let _ = self.tx.send(Some(Err(CopyError::Aborted)));
    }
}
