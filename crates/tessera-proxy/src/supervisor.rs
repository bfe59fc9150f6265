//! A background service that starts the clusters' health checks and reloads the config on SIGHUP.

use crate::state::Shared;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

pub struct Supervisor {
    pub(crate) shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for Supervisor {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.shared.current.load().start_background_tasks();
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!("cannot listen for SIGHUP, live reload is off: {e}");
                None
            }
        };
        self.shared.ready.store(true, Ordering::SeqCst);
        tracing::info!(config = %self.shared.source.name(), "tessera is serving; send SIGHUP to reload the config");
        loop {
            tokio::select! {
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading config");
                    let _ = self.shared.reload();
                }
                _ = shutdown.changed() => {
                    self.shared.ready.store(false, Ordering::SeqCst);
                    break;
                }
            }
        }
    }
}
