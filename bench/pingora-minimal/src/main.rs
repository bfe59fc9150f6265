//! `pingora-minimal LISTEN UPSTREAM THREADS [forwarding[=PARTS]]`: proxies every request to one
//! upstream, nothing else (no routing, filters, metrics or logs). Same Pingora settings as
//! Tessera: no work stealing.
//!
//! With `forwarding`, it also does the per-request work Tessera's proxy route does with
//! Pingora's own means and no more: Tessera's default upstream timeouts (connect 2 s,
//! read/write 30 s, idle 30 s) and the `X-Forwarded-For` / `X-Forwarded-Proto` headers. The
//! difference between the two tells what those features cost in Pingora itself, apart from
//! the rest of Tessera. `forwarding=read,idle` (any of `connect`, `read`, `write`, `idle`,
//! `headers`) does only those parts, to tell each one's cost.

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::time::Duration;

struct Minimal {
    upstream: String,
    forwarding: Forwarding,
}

/// Which of Tessera's per-request upstream work the proxy does.
#[derive(Default)]
struct Forwarding {
    connect: bool,
    read: bool,
    write: bool,
    idle: bool,
    headers: bool,
}

impl Forwarding {
    fn all() -> Self {
        Self::parse("connect,read,write,idle,headers").unwrap()
    }

    fn parse(parts: &str) -> Option<Self> {
        let mut f = Self::default();
        for part in parts.split(',') {
            match part {
                "connect" => f.connect = true,
                "read" => f.read = true,
                "write" => f.write = true,
                "idle" => f.idle = true,
                "headers" => f.headers = true,
                _ => return None,
            }
        }
        Some(f)
    }
}

#[async_trait]
impl ProxyHttp for Minimal {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream.as_str(), false, String::new());
        let f = &self.forwarding;
        let secs = |on: bool, n| on.then(|| Duration::from_secs(n));
        peer.options.connection_timeout = secs(f.connect, 2);
        peer.options.read_timeout = secs(f.read, 30);
        peer.options.write_timeout = secs(f.write, 30);
        peer.options.idle_timeout = secs(f.idle, 30);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        _c: &mut (),
    ) -> Result<()> {
        if self.forwarding.headers {
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
        [_, l, u, t] => (l, u, t, Forwarding::default()),
        [_, l, u, t, f] if f == "forwarding" => (l, u, t, Forwarding::all()),
        [_, l, u, t, f] => match f.strip_prefix("forwarding=").and_then(Forwarding::parse) {
            Some(parts) => (l, u, t, parts),
            None => usage(),
        },
        _ => usage(),
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

fn usage() -> ! {
    eprintln!("usage: pingora-minimal LISTEN UPSTREAM THREADS [forwarding[=connect,read,write,idle,headers]]");
    std::process::exit(2);
}
