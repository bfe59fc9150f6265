//! A background service that starts the clusters' health checks and reloads the config on SIGHUP
//! or, with `server.watch_config`, when the file's content changes.

use crate::state::{fingerprint, Shared};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

pub struct Supervisor {
    pub(crate) shared: Arc<Shared>,
}

/// Pingora starts the proxy service after this one; `/readyz` should only say ready once the
/// proxy's listeners accept connections. Returns the address of one that never does.
async fn wait_for_listeners(shared: &Shared) -> Result<(), String> {
    let runtime = shared.current.load_full();
    for l in &runtime.config.listen {
        let Ok(mut addr) = l.address.parse::<SocketAddr>() else {
            continue;
        };
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                Ipv4Addr::LOCALHOST.into()
            } else {
                Ipv6Addr::LOCALHOST.into()
            });
        }
        let mut accepted = false;
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                accepted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if !accepted {
            return Err(l.address.clone());
        }
    }
    Ok(())
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
        let watch_every = self.shared.current.load().config.server.watch_config;
        let mut watch = watch_every.map(|d| tokio::time::interval(d.0));
        // Content of the file as last seen, so that only real changes trigger a reload.
        let mut seen = self.shared.source.read().ok().map(|t| fingerprint(&t));
        if let Err(address) = wait_for_listeners(&self.shared).await {
            // Pingora could not build the listener (its thread panicked): a process that serves
            // nothing must not look alive to a supervisor.
            tracing::error!(address = %address, "the listener does not accept connections; exiting");
            std::process::exit(1);
        }
        self.shared.ready.store(true, Ordering::SeqCst);
        tracing::info!(config = %self.shared.source.name(), "tessera is serving; send SIGHUP to reload the config");
        loop {
            tokio::select! {
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading config");
                    let text = self.shared.source.read();
                    seen = text.as_deref().ok().map(fingerprint);
                    let _ = self.shared.apply(text);
                }
                _ = async { match watch.as_mut() { Some(w) => w.tick().await, None => std::future::pending().await } } => {
                    if let Ok(text) = self.shared.source.read() {
                        let now = Some(fingerprint(&text));
                        if now != seen {
                            seen = now;
                            tracing::info!("config file changed: reloading");
                            let _ = self.shared.apply(Ok(text));
                        }
                    }
                }
                _ = shutdown.changed() => {
                    self.shared.ready.store(false, Ordering::SeqCst);
                    break;
                }
            }
        }
    }
}
