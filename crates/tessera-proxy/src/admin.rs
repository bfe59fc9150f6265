//! The admin listener: `/metrics` (Prometheus), `/healthz` (the process answers), `/readyz`
//! (the service is serving with a loaded config), `/cache/purge` (drop kept answers). Keep it on
//! a private address.

use crate::metrics;
use crate::response_cache::RESPONSE_CACHE;
use crate::state::Shared;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub struct Admin {
    pub(crate) shared: Arc<Shared>,
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let text = "text/plain; charset=utf-8";
        match session.req_header().uri.path() {
            "/metrics" => {
                let runtime = self.shared.current.load();
                let ready = self.shared.ready.load(Ordering::SeqCst);
                crate::state::READY.set(i64::from(ready));
                if let Some(fleet) = &runtime.fleet {
                    fleet.count_nodes();
                }
                let (entries, bytes) = runtime.response_cache.usage();
                RESPONSE_CACHE.entries.set(entries as i64);
                RESPONSE_CACHE.bytes.set(bytes as i64);
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    metrics::render(),
                )
            }
            "/healthz" => reply(StatusCode::OK, text, b"ok\n".to_vec()),
            "/readyz" if self.shared.ready.load(Ordering::SeqCst) => {
                reply(StatusCode::OK, text, b"ready\n".to_vec())
            }
            "/readyz" => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                text,
                b"starting\n".to_vec(),
            ),
            "/cache/purge" if matches!(session.req_header().method.as_str(), "POST" | "PURGE") => {
                let query = session.req_header().uri.query().unwrap_or("").to_string();
                let runtime = self.shared.current.load_full();
                let answer = crate::admin_purge::purge(&runtime, &query).await;
                reply(answer.status, text, answer.body.into_bytes())
            }
            "/cache/purge" => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                text,
                b"purge with POST /cache/purge?url=... or ?image=...\n".to_vec(),
            ),
            _ => reply(
                StatusCode::NOT_FOUND,
                text,
                b"admin endpoints: /metrics /healthz /readyz /cache/purge\n".to_vec(),
            ),
        }
    }
}
