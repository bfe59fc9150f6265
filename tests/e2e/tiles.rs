//! The tile path end to end: a real S3 server (s3s-fs), Tessera's hot cache and orchestrate
//! handler, and the real iipsrv, reached over FastCGI directly or through nginx.

use crate::harness::{get, Tessera};
use crate::iipsrv::{direct, start_iipsrv, start_nginx_front, Process};
use crate::images::jp2;
use crate::s3::S3Server;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TILE: &str = "0,0,256,256/256,/0/default.jpg";

/// The route table every test uses: `/iiif/{customer}/{space}/{image}/...` → key
/// `{customer}/{space}/{image}`, as in the DLCS layout.
fn config(s3: &S3Server, cache: &Path, capacity: &str, cluster: &str) -> String {
    config_with(s3, cache, &format!("capacity: {capacity}"), cluster)
}

/// [`config`] with more `hot_cache:` settings.
fn config_with(s3: &S3Server, cache: &Path, hot_cache: &str, cluster: &str) -> String {
    format!(
        "origins:\n{origin}hot_cache: {{ dir: \"{dir}\", {hot_cache} }}\nclusters:\n  iip: {cluster}\nroutes:\n  - name: tiles\n    match: {{ path: \"/iiif/{{customer}}/{{space}}/{{image}}/{{iiif*}}\" }}\n    handler:\n      orchestrate:\n        origin: masters\n        key: \"{{customer}}/{{space}}/{{image}}\"\n        cluster: iip\n        upstream_path: \"/fcgi-bin/iipsrv.fcgi?IIIF={{local_path}}/{{iiif}}\"\n",
        origin = s3.origin_yaml("masters"),
        dir = cache.display(),
    )
}

fn fastcgi_cluster(iip: &Process) -> String {
    format!(
        "{{ endpoints: [\"127.0.0.1:{}\"], protocol: fastcgi }}",
        iip.port
    )
}

fn http_cluster(nginx: &Process) -> String {
    format!("{{ endpoints: [\"127.0.0.1:{}\"] }}", nginx.port)
}

/// Bytes in the cache's `objects/` and the number of files in its `tmp/`.
fn disk(cache: &Path) -> (u64, usize) {
    let bytes = std::fs::read_dir(cache.join("objects"))
        .map(|d| d.map(|e| e.unwrap().metadata().unwrap().len()).sum())
        .unwrap_or(0);
    let temps = std::fs::read_dir(cache.join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    (bytes, temps)
}

fn in_parallel<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = std::sync::Arc::new(f);
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let f = f.clone();
            std::thread::spawn(move || f(i))
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn tiles_are_byte_identical_to_iipsrv_reading_the_file_directly() {
    let s3 = S3Server::start();
    let tiled = jp2(1200, 900, true);
    let single = jp2(1200, 900, false);
    s3.put_file("2/1/tiled", &tiled);
    s3.put_file("2/1/single", &single);
    let iip = start_iipsrv();
    let nginx = start_nginx_front(iip.port);
    for cluster in [fastcgi_cluster(&iip), http_cluster(&nginx)] {
        let cache = tempfile::tempdir().unwrap();
        let t = Tessera::start(&config(&s3, cache.path(), "1GiB", &cluster));
        for (key, file) in [("2/1/tiled", &tiled), ("2/1/single", &single)] {
            for iiif in [
                TILE,
                "256,256,256,256/256,/0/default.jpg",
                "full/300,/0/default.jpg",
                "0,0,600,600/150,/0/gray.jpg",
            ] {
                let r = t.get(&format!("/iiif/{key}/{iiif}"));
                let (status, reference) = direct(iip.port, file, iiif);
                assert_eq!(
                    (r.status, status),
                    (200, 200),
                    "{cluster} {key} {iiif}: {}",
                    r.text()
                );
                assert_eq!(r.header("content-type"), Some("image/jpeg"));
                assert!(
                    r.body == reference,
                    "{cluster} {key} {iiif}: bytes differ from iipsrv's own"
                );
            }
        }
        // info.json names the image by its public URL, not the local file.
        let info = t.get("/iiif/2/1/tiled/info.json");
        assert_eq!(info.status, 200, "{}", info.text());
        let text = info.text();
        assert!(
            text.contains("\"http://localhost/iiif/2/1/tiled\""),
            "{text}"
        );
        assert!(
            !text.contains(&cache.path().display().to_string()),
            "{text}"
        );
        assert!(
            text.contains("\"width\" : 1200") || text.contains("\"width\":1200"),
            "{text}"
        );
    }
    // Each image was copied once per Tessera (two Tesseras, two caches).
    assert_eq!(s3.gets_for("2/1/tiled").len(), 2);
}

#[test]
fn a_cold_flood_copies_the_image_exactly_once() {
    let s3 = S3Server::start();
    let file = jp2(1200, 900, true);
    s3.put_file("7/1/flood", &file);
    // Hold the GET so that all 200 requests arrive while the copy is in flight.
    s3.delay("7/1/flood", Duration::from_millis(500));
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&config(&s3, cache.path(), "1GiB", &fastcgi_cluster(&iip)));
    let (_, reference) = direct(iip.port, &file, TILE);
    let port = t.port;
    let results = in_parallel(200, move |_| {
        let r = get(&format!("/iiif/7/1/flood/{TILE}")).send(port);
        (r.status, r.body)
    });
    for (status, body) in &results {
        assert_eq!(*status, 200);
        assert!(*body == reference, "a tile differs from iipsrv's own");
    }
    let gets = s3.gets_for("7/1/flood");
    assert_eq!(gets.len(), 1, "S3 saw {gets:?}");
    assert!(gets[0].range.is_none(), "{gets:?}");
    assert_eq!(
        t.metric("tessera_hot_cache_requests_total", &[("outcome", "miss")]),
        1.0
    );
    let joined = t.metric("tessera_hot_cache_requests_total", &[("outcome", "joined")]);
    let hits = t.metric("tessera_hot_cache_requests_total", &[("outcome", "hit")]);
    assert_eq!(joined + hits, 199.0);
    assert!(joined > 0.0, "no request waited on the copy");
    assert_eq!(
        t.metric("tessera_hot_cache_copy_bytes_total", &[]),
        std::fs::metadata(&file).unwrap().len() as f64
    );
}

#[test]
fn large_images_are_copied_as_ranged_gets_that_cover_them_once() {
    let s3 = S3Server::start();
    let file = jp2(4000, 3000, true);
    assert!(
        std::fs::metadata(&file).unwrap().len() > 1 << 20,
        "the image must span several parts"
    );
    let size = std::fs::metadata(&file).unwrap().len();
    s3.put_file("7/2/ranged", &file);
    s3.delay("7/2/ranged", Duration::from_millis(300));
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    let hot_cache = "capacity: 1GiB, parallel_copy: { threshold: 1MiB, part_size: 1MiB, parts: 3 }";
    let t = Tessera::start(&config_with(
        &s3,
        cache.path(),
        hot_cache,
        &fastcgi_cluster(&iip),
    ));
    let (_, reference) = direct(iip.port, &file, TILE);
    let port = t.port;
    let results = in_parallel(50, move |_| {
        get(&format!("/iiif/7/2/ranged/{TILE}")).send(port)
    });
    assert!(results
        .iter()
        .all(|r| r.status == 200 && r.body == reference));
    let mut ranges: Vec<(u64, u64)> = s3
        .gets_for("7/2/ranged")
        .iter()
        .map(|g| {
            let r = g.range.as_deref().expect("every GET is ranged");
            let (a, b) = r.trim_start_matches("bytes=").split_once('-').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    ranges.sort();
    assert_eq!(ranges.len() as u64, size.div_ceil(1 << 20));
    let mut next = 0;
    for (a, b) in ranges {
        assert_eq!(a, next, "ranges overlap or leave a gap");
        next = b + 1;
    }
    assert_eq!(next, size, "the ranges cover the object exactly");
}

#[test]
fn a_client_that_leaves_mid_copy_does_not_break_it_for_the_others() {
    let s3 = S3Server::start();
    let file = jp2(1200, 900, true);
    s3.put_file("3/1/leaver", &file);
    s3.delay("3/1/leaver", Duration::from_millis(800));
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&config(&s3, cache.path(), "1GiB", &fastcgi_cluster(&iip)));
    let mut leaver = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    write!(
        leaver,
        "GET /iiif/3/1/leaver/{TILE} HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(leaver);
    let r = t.get(&format!("/iiif/3/1/leaver/{TILE}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, direct(iip.port, &file, TILE).1);
    assert_eq!(s3.gets_for("3/1/leaver").len(), 1);
}

#[test]
fn an_s3_failure_mid_copy_gives_every_waiter_502_and_leaves_nothing() {
    let s3 = S3Server::start();
    let file = jp2(1200, 900, true);
    s3.put_file("4/1/cut", &file);
    s3.cut_after("4/1/cut", Some(20_000));
    s3.delay("4/1/cut", Duration::from_millis(300));
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&config(&s3, cache.path(), "1GiB", &fastcgi_cluster(&iip)));
    let port = t.port;
    let statuses = in_parallel(20, move |_| {
        get(&format!("/iiif/4/1/cut/{TILE}")).send(port).status
    });
    assert!(statuses.iter().all(|&s| s == 502), "{statuses:?}");
    assert_eq!(disk(cache.path()), (0, 0), "a partial file was left behind");
    assert!(t.wait_log("hot cache: copy failed"), "{}", t.log());
    assert!(t.log().contains("4/1/cut"), "the log names the object");
    assert!(t.metric("tessera_hot_cache_copy_failures_total", &[]) >= 1.0);

    s3.cut_after("4/1/cut", None);
    let r = t.get(&format!("/iiif/4/1/cut/{TILE}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, direct(iip.port, &file, TILE).1);
}

#[test]
fn the_budget_holds_under_a_stream_of_distinct_images() {
    let s3 = S3Server::start();
    let file = jp2(1200, 900, true);
    let size = std::fs::metadata(&file).unwrap().len();
    for i in 0..10 {
        s3.put_file(&format!("5/1/img{i}"), &file);
    }
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    // Room for about three images: every new one beyond that evicts.
    let capacity = size * 3 + size / 2;
    let t = Tessera::start(&config(
        &s3,
        cache.path(),
        &capacity.to_string(),
        &fastcgi_cluster(&iip),
    ));
    let port = t.port;
    for round in 0..5 {
        // Two images at a time, several tiles each: files in use must not be evicted under them.
        let statuses = in_parallel(8, move |i| {
            let image = (round * 2 + i % 2) % 10;
            get(&format!("/iiif/5/1/img{image}/{TILE}"))
                .send(port)
                .status
        });
        assert!(
            statuses.iter().all(|&s| s == 200),
            "round {round}: {statuses:?}"
        );
        let (bytes, temps) = disk(cache.path());
        assert!(
            bytes <= capacity * 9 / 10,
            "round {round}: {bytes} bytes on disk, budget {capacity}"
        );
        assert_eq!(temps, 0);
    }
    assert!(t.metric("tessera_hot_cache_evictions_total", &[]) >= 5.0);
    assert_eq!(t.metric("tessera_hot_cache_pinned_files", &[]), 0.0);
    let (bytes, _) = disk(cache.path());
    assert_eq!(
        t.metric("tessera_hot_cache_bytes", &[]),
        bytes as f64,
        "the index matches the disk"
    );
}

#[test]
fn a_restart_recovers_the_index_and_sweeps_temporaries() {
    let s3 = S3Server::start();
    let file = jp2(1200, 900, true);
    s3.put_file("6/1/kept", &file);
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    let yaml = config(&s3, cache.path(), "1GiB", &fastcgi_cluster(&iip));
    let mut first = Tessera::start(&yaml);
    assert_eq!(first.get(&format!("/iiif/6/1/kept/{TILE}")).status, 200);
    first.kill();
    // What a crash mid-copy leaves behind.
    std::fs::write(cache.path().join("tmp/abc.jp2.1.0.part"), vec![0u8; 1000]).unwrap();

    let second = Tessera::start(&yaml);
    assert_eq!(disk(cache.path()).1, 0, "temporaries were not swept");
    assert!(second.wait_log("hot cache opened"));
    assert_eq!(second.metric("tessera_hot_cache_files", &[]), 1.0);
    let r = second.get(&format!("/iiif/6/1/kept/{TILE}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, direct(iip.port, &file, TILE).1);
    assert_eq!(
        s3.gets_for("6/1/kept").len(),
        1,
        "the restarted cache copied it again"
    );
    assert_eq!(
        second.metric("tessera_hot_cache_requests_total", &[("outcome", "hit")]),
        1.0
    );
}

#[test]
fn missing_images_are_404_and_bad_identifiers_400_before_any_io() {
    let s3 = S3Server::start();
    let iip = start_iipsrv();
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&config(&s3, cache.path(), "1GiB", &fastcgi_cluster(&iip)));
    let r = t.get(&format!("/iiif/1/1/nothing-here/{TILE}"));
    assert_eq!(r.status, 404, "{}", r.text());
    let before = s3.all_requests().len();
    for bad in [
        "/iiif/1/1/%2e%2e/0,0,1,1/1,/0/default.jpg",
        "/iiif/1/%2E%2E/x/0,0,1,1/1,/0/default.jpg",
        "/iiif/1/1/a%00b/0,0,1,1/1,/0/default.jpg",
        "/iiif/1/1/%2Fetc%2Fpasswd/0,0,1,1/1,/0/default.jpg",
        "/iiif/1/1/ok/../../../etc/passwd/full/max/0/default.jpg",
        "/iiif/1/1/%ff/0,0,1,1/1,/0/default.jpg",
    ] {
        let r = t.get(bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    assert_eq!(
        s3.all_requests().len(),
        before,
        "a bad identifier reached S3"
    );
    assert_eq!(disk(cache.path()), (0, 0));
}

#[test]
fn iipimage_down_is_502_with_a_log_line() {
    let s3 = S3Server::start();
    s3.put_file("8/1/img", &jp2(1200, 900, true));
    let cache = tempfile::tempdir().unwrap();
    let closed = crate::harness::free_port();
    for cluster in [
        format!("{{ endpoints: [\"127.0.0.1:{closed}\"], protocol: fastcgi }}"),
        format!("{{ endpoints: [\"127.0.0.1:{closed}\"] }}"),
    ] {
        let t = Tessera::start(&config(&s3, cache.path(), "1GiB", &cluster));
        let r = t.get(&format!("/iiif/8/1/img/{TILE}"));
        assert_eq!(r.status, 502, "{cluster}: {}", r.text());
        assert!(t.wait_log(&format!("127.0.0.1:{closed}")), "{}", t.log());
        assert!(t.log().contains("\"cluster\":\"iip\""), "{}", t.log());
    }
}

/// A hot cache on a tiny filesystem: the copy that does not fit fails with 503, leaves no
/// partial file, and a copy that fits still works.
#[test]
fn disk_full_while_copying_is_503_and_harms_nothing_else() {
    let mount = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=320k", "tmpfs"])
        .arg(mount.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("NOT RUN: disk_full_while_copying_is_503_and_harms_nothing_else needs to mount a tmpfs (root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.path().to_path_buf());

    let s3 = S3Server::start();
    let big = jp2(2000, 1500, true);
    let small = jp2(300, 200, false);
    assert!(
        std::fs::metadata(&big).unwrap().len() > 320 << 10,
        "the big image must not fit"
    );
    s3.put_file("9/1/big", &big);
    s3.put_file("9/1/small", &small);
    let iip = start_iipsrv();
    // The budget says there is room; the filesystem says otherwise.
    let t = Tessera::start(&config(&s3, mount.path(), "1GiB", &fastcgi_cluster(&iip)));
    let r = t.get(&format!("/iiif/9/1/big/{TILE}"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(disk(mount.path()), (0, 0), "a partial file was left behind");
    assert!(
        t.log().contains("disk_full") || t.wait_log("disk_full"),
        "{}",
        t.log()
    );
    let r = t.get("/iiif/9/1/small/0,0,100,100/100,/0/default.jpg");
    assert_eq!(r.status, 200, "{}", r.text());
}
