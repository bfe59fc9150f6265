//! Slow and greedy clients: a request header that trickles in is cut at `limits.header_timeout`,
//! and so is an idle kept-alive connection; past `max_connections_per_client` a client's next
//! connection gets a 503 at once; and all of it is let go, so the client is served again after.

use crate::harness::{eventually, metric_value, Tessera};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Send a request header on `stream` a byte every 200 ms, from a thread of its own, never
/// finishing it.
fn trickle(stream: &TcpStream) {
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if writer.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}

/// Read until the server closes the connection (or `within` passes); what was read, and when.
fn read_until_closed(s: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
        if started.elapsed() > within {
            break;
        }
    }
    (
        String::from_utf8_lossy(&all).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn slow_and_greedy_clients_are_bounded() {
    let t = Tessera::start(
        r#"
limits: { header_timeout: 1s, max_connections: 50, max_connections_per_client: 5 }
routes:
  - name: all
    match: { path: "/{rest*}" }
    handler: { respond: { body: "ok" } }
"#,
    );

    // A header sent a byte every 200 ms: cut about a second in (Pingora alone would wait 60 s
    // per byte).
    let mut slow = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    trickle(&slow);
    let (_, took) = read_until_closed(&mut slow, Duration::from_secs(5));
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    assert_eq!(t.metric("tessera_header_timeouts_total", &[]), 1.0);

    // A kept-alive connection left idle after its answer is closed too.
    let mut idle = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (answer, took) = read_until_closed(&mut idle, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        took < Duration::from_secs(3),
        "idle connection closed after {took:?}"
    );

    // The next request on a kept-alive connection has a deadline of its own: sent slowly after
    // a first one was answered, it is cut too.
    let mut kept = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    kept.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut first = [0u8; 512];
    let n = kept.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    trickle(&kept);
    let (_, took) = read_until_closed(&mut kept, Duration::from_secs(5));
    assert!(
        took < Duration::from_secs(3),
        "second request cut after {took:?}"
    );

    // Five connections that say nothing: the sixth from the same address is refused at once.
    let silent: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(("127.0.0.1", t.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut sixth = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    let (answer, took) = read_until_closed(&mut sixth, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        took < Duration::from_millis(900),
        "refused at once, not after {took:?}"
    );
    assert!(
        metric_value(
            &t.metrics(),
            "tessera_connections_refused_total",
            &[("reason", "max_connections_per_client")]
        ) >= 1.0
    );

    // Their header deadline lets them go; the client is served again.
    std::thread::sleep(Duration::from_millis(1500));
    drop(silent);
    assert_eq!(t.get("/").status, 200);
    assert!(
        eventually(3, || metric_value(
            &t.metrics(),
            "tessera_connections_open",
            &[]
        ) == 0.0),
        "every connection let go"
    );
    // Clients that hung up or were cut off mid-header are counted, not logged as our errors.
    assert!(
        !t.log().contains(r#""level":"ERROR""#),
        "no ERROR line for a client's fault:\n{}",
        t.log()
    );
}

/// At `max_connections`, a new client is not turned away while others sit waiting for their
/// header: the longest wait is cut short to make room.
#[test]
fn at_the_connection_limit_the_longest_wait_makes_room() {
    let t = Tessera::start(
        r#"
limits: { header_timeout: 60s, max_connections: 10 }
routes:
  - name: all
    match: { path: "/{rest*}" }
    handler: { respond: { body: "ok" } }
"#,
    );
    let mut silent: Vec<TcpStream> = (0..10)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(t.get("/").status, 200, "served, not refused");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        metric_value(&t.metrics(), "tessera_connections_shed_total", &[]),
        1.0
    );
    // The oldest of the silent ones was closed; the newest still waits.
    let (_, took) = read_until_closed(&mut silent[0], Duration::from_secs(2));
    assert!(took < Duration::from_secs(1), "the oldest was closed");
    let (_, took) = read_until_closed(&mut silent[9], Duration::from_millis(500));
    assert!(
        took >= Duration::from_millis(450),
        "the newest is still open"
    );
}
