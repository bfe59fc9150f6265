//! `pingora-minimal LISTEN UPSTREAM THREADS [forwarding]`: proxies every request to one
//! upstream, nothing else (no routing, filters, metrics or logs). Same Pingora settings as
//! Tessera: no work stealing.
//!
//! With `forwarding`, it also does the per-request work Tessera's proxy route does with
//! Pingora's own means and no more: Tessera's default upstream timeouts (connect 2 s,
//! read/write 30 s, idle 30 s) and the `X-Forwarded-For` / `X-Forwarded-Proto` headers. The
//! difference between the two tells what those features cost in Pingora itself, apart from
//! the rest of Tessera.

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::time::Duration;

struct Minimal {
    upstream: String,
    forwarding: bool,
}

#[async_trait]
impl ProxyHttp for Minimal {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream.as_str(), false, String::new());
        if self.forwarding {
            peer.options.connection_timeout = Some(Duration::from_secs(2));
            peer.options.read_timeout = Some(Duration::from_secs(30));
            peer.options.write_timeout = Some(Duration::from_secs(30));
            peer.options.idle_timeout = Some(Duration::from_secs(30));
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        _c: &mut (),
    ) -> Result<()> {
        if self.forwarding {
            if let Some(ip) = session.client_addr().and_then(|a| a.as_inet()) {
                upstream.insert_header("x-forwarded-for", ip.ip().to_string())?;
            }
            upstream.insert_header("x-forwarded-proto", "http")?;
        }
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (listen, upstream, threads, forwarding) = match args.as_slice() {
        [_, l, u, t] => (l, u, t, false),
        [_, l, u, t, f] if f == "forwarding" => (l, u, t, true),
        _ => {
            eprintln!("usage: pingora-minimal LISTEN UPSTREAM THREADS [forwarding]");
            std::process::exit(2);
        }
    };
    let conf = ServerConf {
        threads: threads.parse().unwrap_or(1),
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let proxy = Minimal {
        upstream: upstream.clone(),
        forwarding,
    };
    let mut svc = http_proxy_service(&server.configuration, proxy);
    svc.add_tcp(listen);
    server.add_service(svc);
    server.run_forever();
}
