//! A hostile origin: a body that trickles, a body that stalls midway, a copy queue that does
//! not move. Every waiter is answered within the configured bound, with 504 (or 503 for the
//! queue), nothing partial is left in the hot cache, other images go on being served, and the
//! next request after the origin heals works.

use crate::harness::Tessera;
use crate::iipsrv::{start_iipsrv, Process};
use crate::images::jp2;
use crate::s3::S3Server;
use std::path::Path;
use std::time::{Duration, Instant};

const TILE: &str = "0,0,256,256/256,/0/default.jpg";

/// Orchestrate over FastCGI, with an origin whose bodies must not stall for more than `read`
/// nor come slower than 64 KiB/s after `after`.
fn config(
    s3: &S3Server,
    cache: &Path,
    iip: &Process,
    (read, after): (&str, &str),
    hot_cache: &str,
) -> String {
    let origin = s3.origin_yaml("masters").replace(
        "path_style: true }",
        &format!("path_style: true, timeouts: {{ read: {read}, min_rate: 64KiB, min_rate_after: {after} }} }}"),
    );
    format!(
        "origins:\n{origin}hot_cache: {{ dir: \"{dir}\", capacity: 1GiB{hot_cache} }}\nclusters:\n  iip: {{ endpoints: [\"127.0.0.1:{port}\"], protocol: fastcgi }}\nroutes:\n  - name: tiles\n    match: {{ path: \"/iiif/{{customer}}/{{space}}/{{image}}/{{iiif*}}\" }}\n    handler:\n      orchestrate:\n        origin: masters\n        key: \"{{customer}}/{{space}}/{{image}}\"\n        cluster: iip\n        upstream_path: \"/fcgi-bin/iipsrv.fcgi?IIIF={{local_path}}/{{iiif}}\"\n",
        dir = cache.display(),
        port = iip.port,
    )
}

/// Files in the cache's `objects/` and `tmp/`.
fn files(cache: &Path) -> (usize, usize) {
    let count = |d: &str| std::fs::read_dir(cache.join(d)).map_or(0, |d| d.count());
    (count("objects"), count("tmp"))
}

/// `n` clients asking for `path` at once, each on its own thread: join them for
/// (status, time taken).
fn waiters(
    t: &std::sync::Arc<Tessera>,
    path: &str,
    n: usize,
) -> Vec<std::thread::JoinHandle<(u16, Duration)>> {
    (0..n)
        .map(|_| {
            let (t, path) = (t.clone(), path.to_string());
            std::thread::spawn(move || timed(&t, &path))
        })
        .collect()
}

fn timed(t: &Tessera, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let r = t.get(path);
    (r.status, started.elapsed())
}

#[test]
fn a_trickling_origin_is_a_timeout_for_every_waiter_and_other_images_go_on() {
    let s3 = S3Server::start();
    let image = jp2(1200, 900, true);
    s3.put_file("2/1/slow", &image);
    s3.put_file("2/1/fine", &image);
    // 1000 bytes every half second: 2000 B/s, far under the 64 KiB/s floor.
    s3.trickle("2/1/slow", 1000, Duration::from_millis(500));
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    let t = std::sync::Arc::new(Tessera::start(&config(
        &s3,
        cache.path(),
        &iip,
        ("5s", "1s"),
        "",
    )));

    let waiters = waiters(&t, &format!("/iiif/2/1/slow/{TILE}"), 6);
    std::thread::sleep(Duration::from_millis(200));
    let (fine, fine_took) = timed(&t, &format!("/iiif/2/1/fine/{TILE}"));
    assert_eq!(fine, 200, "another image is served while one trickles");
    assert!(fine_took < Duration::from_secs(5), "{fine_took:?}");
    for w in waiters {
        let (status, took) = w.join().unwrap();
        assert_eq!(status, 504, "every waiter gets a timeout");
        assert!(
            took < Duration::from_secs(8),
            "answered within the bound: {took:?}"
        );
    }
    assert_eq!(
        s3.gets_for("2/1/slow").len(),
        1,
        "one copy for all the waiters"
    );
    assert_eq!(
        files(cache.path()),
        (1, 0),
        "only the fine image; no temporary left"
    );
    assert!(t.wait_log("the body came slower than"), "{}", t.log());
    let timeouts = t.metric(
        "tessera_hot_cache_copy_failures_total",
        &[("kind", "timeout")],
    );
    assert_eq!(timeouts, 1.0);

    s3.heal("2/1/slow");
    let r = t.get(&format!("/iiif/2/1/slow/{TILE}"));
    assert_eq!(
        r.status, 200,
        "the next request after the origin heals works"
    );
}

#[test]
fn a_stall_mid_body_is_a_timeout_after_the_read_timeout() {
    let s3 = S3Server::start();
    s3.put_file("2/1/stalls", &jp2(1200, 900, true));
    s3.stall_after("2/1/stalls", 2000);
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&config(&s3, cache.path(), &iip, ("1s", "30s"), ""));
    let (status, took) = timed(&t, &format!("/iiif/2/1/stalls/{TILE}"));
    assert_eq!(status, 504);
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(t.wait_log("no bytes of the body for"), "{}", t.log());
    let timeouts = t.metric(
        "tessera_hot_cache_copy_failures_total",
        &[("kind", "timeout")],
    );
    assert_eq!(timeouts, 1.0, "counted as a timeout, not as unavailable");
    assert_eq!(files(cache.path()), (0, 0));
}

#[test]
fn a_copy_that_cannot_get_a_slot_in_time_is_503() {
    let s3 = S3Server::start();
    let image = jp2(1200, 900, true);
    s3.put_file("2/1/stuck", &image);
    s3.put_file("2/1/queued", &image);
    // The stuck copy holds the only slot until its 10 s read timeout.
    s3.stall_after("2/1/stuck", 2000);
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    let yaml = config(
        &s3,
        cache.path(),
        &iip,
        ("10s", "30s"),
        ", max_concurrent_copies: 1, max_copy_wait: 1s",
    );
    let t = std::sync::Arc::new(Tessera::start(&yaml));
    let stuck = waiters(&t, &format!("/iiif/2/1/stuck/{TILE}"), 1).remove(0);
    std::thread::sleep(Duration::from_millis(300));
    let (status, took) = timed(&t, &format!("/iiif/2/1/queued/{TILE}"));
    assert_eq!(status, 503);
    assert!(took < Duration::from_secs(4), "{took:?}");
    let busy = t.metric("tessera_hot_cache_copy_failures_total", &[("kind", "busy")]);
    assert_eq!(busy, 1.0);
    assert_eq!(stuck.join().unwrap().0, 504);
}

#[test]
fn a_storm_of_503s_is_502_for_every_waiter_and_the_next_request_works() {
    let s3 = S3Server::start();
    s3.put_file("2/1/busy", &jp2(1200, 900, true));
    s3.unavailable("2/1/busy", 1000);
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    let t = std::sync::Arc::new(Tessera::start(&config(
        &s3,
        cache.path(),
        &iip,
        ("5s", "5s"),
        "",
    )));
    for w in waiters(&t, &format!("/iiif/2/1/busy/{TILE}"), 6) {
        let (status, took) = w.join().unwrap();
        assert_eq!(status, 502);
        assert!(took < Duration::from_secs(15), "{took:?}");
    }
    assert_eq!(files(cache.path()), (0, 0));
    s3.heal("2/1/busy");
    assert_eq!(t.get(&format!("/iiif/2/1/busy/{TILE}")).status, 200);
}

#[test]
fn a_connection_reset_mid_copy_leaves_nothing_and_the_next_request_works() {
    let s3 = S3Server::start();
    s3.put_file("2/1/reset", &jp2(1200, 900, true));
    s3.cut_after("2/1/reset", Some(5000));
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&config(&s3, cache.path(), &iip, ("5s", "5s"), ""));
    assert_eq!(t.get(&format!("/iiif/2/1/reset/{TILE}")).status, 502);
    assert_eq!(files(cache.path()), (0, 0), "no partial file is ever kept");
    s3.heal("2/1/reset");
    assert_eq!(t.get(&format!("/iiif/2/1/reset/{TILE}")).status, 200);
}

/// Killed (SIGKILL: no clean-up) while four cold copies are half done, then restarted on the
/// same cache: the temporaries are swept, the budget holds, and every answer is the same as
/// iipsrv reading the original file.
#[test]
fn a_kill_mid_copies_and_a_restart_lose_nothing() {
    use crate::iipsrv::direct;
    let s3 = S3Server::start();
    let names = ["a", "b", "c", "d"];
    let originals: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let file = jp2(1200 + 8 * i as u32, 900, true);
            let key = format!("2/1/{name}");
            s3.put_file(&key, &file);
            // About 100 KB/s: the copies are in flight when the kill comes.
            s3.trickle(&key, 10_000, Duration::from_millis(100));
            (key, file)
        })
        .collect();
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    let yaml = config(&s3, cache.path(), &iip, ("5s", "5s"), "");
    let mut first = Tessera::start(&yaml);
    let port = first.port;
    let clients: Vec<_> = originals
        .iter()
        .map(|(key, _)| {
            let path = format!("/iiif/{key}/{TILE}");
            std::thread::spawn(move || crate::harness::get(&path).send(port).status)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while files(cache.path()).1 < names.len() {
        assert!(Instant::now() < deadline, "the copies did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill();
    for c in clients {
        let _ = c.join();
    }
    assert_eq!(
        files(cache.path()),
        (0, names.len()),
        "half-done copies left as temporaries"
    );

    for (key, _) in &originals {
        s3.heal(key);
    }
    let second = Tessera::start(&yaml);
    assert!(second.wait_log("hot cache opened"));
    assert!(
        second
            .log()
            .contains(&format!("\"swept_temporaries\":{}", names.len())),
        "{}",
        second.log()
    );
    for (key, file) in &originals {
        let r = second.get(&format!("/iiif/{key}/{TILE}"));
        assert_eq!(r.status, 200, "{key}: {}", r.text());
        assert!(
            r.body == direct(iip.port, file, TILE).1,
            "{key}: bytes differ"
        );
    }
    assert_eq!(files(cache.path()), (names.len(), 0));
    let bytes: u64 = originals
        .iter()
        .map(|(_, f)| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(
        second.metric("tessera_hot_cache_bytes", &[]),
        bytes as f64,
        "the budget counts what is on disk"
    );
}
