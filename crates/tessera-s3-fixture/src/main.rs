//! `tessera-s3-fixture PORT [LATENCY_MS]`: serve a fresh bucket `images` on 127.0.0.1:PORT for
//! benchmarks, each request held LATENCY_MS before it is answered (default 0: at once).
//! The first line printed is the bucket's directory (put objects there as files); after it, one
//! line per request seen, `METHOD PATH RANGE`, so a benchmark can count what reached S3.

use std::io::Write;
use std::time::Duration;
use tessera_s3_fixture::S3Server;

fn usage() -> ! {
    eprintln!("usage: tessera-s3-fixture PORT [LATENCY_MS]");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| usage());
    let latency_ms: u64 = match args.next().map(|a| a.parse()) {
        None => 0,
        Some(Ok(ms)) => ms,
        Some(Err(_)) => usage(),
    };
    let server = S3Server::start_on(port);
    server.latency((latency_ms > 0).then(|| Duration::from_millis(latency_ms)));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", server.object_path("").display());
    let _ = out.flush();
    let mut printed = 0;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let new = server.requests_since(printed);
        for r in &new {
            let range = r.range.as_deref().unwrap_or("-");
            if writeln!(out, "{} {} {range}", r.method, r.path).is_err() {
                return;
            }
        }
        printed += new.len();
        let _ = out.flush();
    }
}
