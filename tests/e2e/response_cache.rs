//! The response cache in front of real handlers: `thumbs` and `byte_range` reading a real S3
//! server, and a `proxy` route to a real HTTP backend. Fetches are counted where they happen
//! (S3 GETs, backend hits), not inferred from Tessera's own metrics.

use crate::harness::{clusters, get, request, Backend, Response, Tessera};
use crate::s3::S3Server;
use crate::thumbs::{store, stored, TOKEN};
use crate::views::rpcl;
use std::thread;
use std::time::Duration;

fn thumbs_config(s3: &S3Server) -> String {
    format!(
        r#"origins:
{origin}routes:
  - name: thumbs
    match: {{ path: "/thumbs/{{customer}}/{{space}}/{{image}}/{{iiif*}}" }}
    filters: [{{ auth: {{ tokens: ["{TOKEN}"] }} }}]
    cache: {{}}
    handler: {{ thumbs: {{ origin: masters, key: "thumbs/{{customer}}/{{space}}/{{image}}" }} }}
"#,
        origin = s3.origin_yaml("masters"),
    )
}

fn cache_status(r: &Response) -> &str {
    r.header("x-tessera-cache").unwrap_or("(none)")
}

/// `n` GETs of `path` at once, each on its own connection.
fn at_once(port: u16, path: &'static str, n: usize) -> Vec<Response> {
    let threads: Vec<_> = (0..n)
        .map(|_| thread::spawn(move || get(path).send(port)))
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn purge(t: &Tessera, query: &str) -> Response {
    request("POST", &format!("/cache/purge?{query}")).send(t.admin)
}

#[test]
fn a_hundred_concurrent_requests_make_one_origin_fetch() {
    let s3 = S3Server::start();
    let _files = store(&s3);
    // The thumbnail arrives slowly, so every request comes while the first is fetching it.
    s3.delay("thumbs/2/1/img/open/400.jpg", Duration::from_millis(500));
    let t = Tessera::start(&thumbs_config(&s3));

    // 300×225 is resized from the 400×300 thumbnail.
    let answers = at_once(t.port, "/thumbs/2/1/img/full/300,/0/default.jpg", 100);
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body == answers[0].body);
    }
    assert_eq!(s3.gets_for("thumbs/2/1/img/open/400.jpg").len(), 1);
    let misses = answers.iter().filter(|r| cache_status(r) == "miss").count();
    assert_eq!(misses, 1);
    assert_eq!(
        answers.iter().filter(|r| cache_status(r) == "hit").count(),
        99
    );
    let metric = |outcome| {
        t.metric(
            "tessera_cache_requests_total",
            &[("route", "thumbs"), ("outcome", outcome)],
        )
    };
    assert_eq!((metric("miss"), metric("hit")), (1.0, 99.0));
    // (How many waited depends on how fast 100 threads connect; at least one did.)
    assert!(t.metric("tessera_cache_lock_waits_total", &[("route", "thumbs")]) >= 1.0);
    assert_eq!(
        t.metric(
            "tessera_thumbs_requests_total",
            &[("route", "thumbs"), ("outcome", "resized")]
        ),
        1.0
    );
    assert!(t.metric("tessera_cache_bytes", &[]) > answers[0].body.len() as f64);
    assert_eq!(t.metric("tessera_cache_entries", &[]), 1.0);
}

#[test]
fn equivalent_spellings_of_a_request_share_one_answer() {
    let s3 = S3Server::start();
    s3.put_file("big", &rpcl(2000, 1500));
    let yaml = format!(
        r#"origins:
{origin}routes:
  - name: small
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    cache: {{}}
    handler: {{ byte_range: {{ origin: masters, key: "{{image}}", max_pixels: 250000 }} }}
"#,
        origin = s3.origin_yaml("masters"),
    );
    let t = Tessera::start(&yaml);

    let first = t.get("/iiif/big/full/200,/0/default.jpg");
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(cache_status(&first), "miss");
    let reads = s3.gets_for("big").len();
    // 2000×1500 at 200 wide is 200×150, whichever way it is asked.
    for spelling in [
        "full/200,/0/default.jpg",
        "full/200,150/0/default.jpg",
        "full/!200,200/0/default.jpg",
        "full/pct:10/0/default.jpg",
        "full/200,/0.0/default.jpg",
    ] {
        let r = t.get(&format!("/iiif/big/{spelling}"));
        assert_eq!(r.status, 200, "{spelling}: {}", r.text());
        assert_eq!(cache_status(&r), "hit", "{spelling}");
        assert!(r.body == first.body, "{spelling}");
        assert_eq!(r.header("etag"), first.header("etag"), "{spelling}");
        assert!(r.header("age").is_some(), "{spelling}");
    }
    assert_eq!(s3.gets_for("big").len(), reads, "hits read nothing");

    // Other sizes and formats are other answers.
    for other in ["full/100,/0/default.jpg", "full/200,/0/default.png"] {
        let r = t.get(&format!("/iiif/big/{other}"));
        assert_eq!(r.status, 200, "{other}: {}", r.text());
        assert_eq!(cache_status(&r), "miss", "{other}");
    }
    // Errors are not kept: a malformed request is answered by the handler each time.
    for _ in 0..2 {
        let r = t.get("/iiif/big/full/0,/0/default.jpg");
        assert_eq!(r.status, 400);
        assert_eq!(cache_status(&r), "bypass");
    }
}

#[test]
fn validators_get_304_and_purges_drop_answers() {
    let s3 = S3Server::start();
    let _files = store(&s3);
    let t = Tessera::start(&thumbs_config(&s3));
    let path = "/thumbs/2/1/img/full/400,/0/default.jpg";
    let source = "thumbs/2/1/img/open/400.jpg";

    let first = t.get(path);
    assert_eq!((first.status, cache_status(&first)), (200, "miss"));
    assert!(first.body == stored(&s3, source));
    let etag = first.header("etag").expect("an ETag").to_string();

    let held = get(path).header("If-None-Match", &etag).send(t.port);
    assert_eq!((held.status, cache_status(&held)), (304, "hit"));
    assert!(held.body.is_empty());
    assert_eq!(held.header("etag"), Some(etag.as_str()));
    assert!(held.header("cache-control").is_some());
    let other = get(path).header("If-None-Match", "\"other\"").send(t.port);
    assert_eq!((other.status, cache_status(&other)), (200, "hit"));
    assert!(other.body == first.body);

    // Purging any spelling of the request drops the one answer.
    let r = purge(&t, "url=/thumbs/2/1/img/full/,300/0/default.jpg");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().trim(), r#"{"purged":1}"#);
    // A miss with a validator fetches the whole answer, keeps it, then answers 304.
    let refetched = get(path).header("If-None-Match", &etag).send(t.port);
    assert_eq!((refetched.status, cache_status(&refetched)), (304, "miss"));
    assert_eq!(s3.gets_for(source).len(), 2);
    assert_eq!(cache_status(&t.get(path)), "hit");

    // Purging the image drops every answer about it.
    for p in [
        "/thumbs/2/1/img/info.json",
        "/thumbs/2/1/img/full/200,/0/default.jpg",
    ] {
        assert_eq!(t.get(p).status, 200, "{p}");
        assert_eq!(cache_status(&t.get(p)), "hit", "{p}");
    }
    let r = purge(&t, "image=/thumbs/2/1/img");
    assert_eq!(r.text().trim(), r#"{"purged":3}"#);
    for p in [
        path,
        "/thumbs/2/1/img/info.json",
        "/thumbs/2/1/img/full/200,/0/default.jpg",
    ] {
        assert_eq!(cache_status(&t.get(p)), "miss", "{p}");
    }
    assert_eq!(t.metric("tessera_cache_purged_total", &[]), 4.0);

    // Purges are POSTs with exactly one of url= or image=.
    assert_eq!(get("/cache/purge?image=/x").send(t.admin).status, 405);
    assert_eq!(purge(&t, "").status, 400);
    assert_eq!(purge(&t, "url=/a&image=/b").status, 400);
}

#[test]
fn answers_that_depend_on_authorisation_are_kept_apart_or_not_at_all() {
    let s3 = S3Server::start();
    let _files = store(&s3);
    let t = Tessera::start(&thumbs_config(&s3));
    let max = "/thumbs/2/1/img/full/max/0/default.jpg";
    let bearer = format!("Bearer {TOKEN}");

    // Without authorisation, `max` is the largest open thumbnail, kept for everyone.
    let open = t.get(max);
    assert_eq!((open.status, cache_status(&open)), (200, "miss"));
    assert!(open.body == stored(&s3, "thumbs/2/1/img/open/1000.jpg"));
    assert_eq!(cache_status(&t.get(max)), "hit");

    // With it, `max` is the auth-only thumbnail: never the kept open one, and never kept
    // (it is private).
    for _ in 0..2 {
        let r = get(max).header("Authorization", &bearer).send(t.port);
        assert_eq!((r.status, cache_status(&r)), (200, "miss"));
        assert!(r.body == stored(&s3, "thumbs/2/1/img/auth/2000.jpg"));
        assert!(r.header("cache-control").unwrap().contains("private"));
    }
    assert_eq!(s3.gets_for("thumbs/2/1/img/auth/2000.jpg").len(), 2);
    assert_eq!(
        t.metric(
            "tessera_cache_stores_total",
            &[("route", "thumbs"), ("result", "not_cacheable")]
        ),
        2.0
    );

    // Concurrent requests for an answer that cannot be kept do not queue behind each other
    // for ever: all are answered.
    let port = t.port;
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let bearer = bearer.clone();
            thread::spawn(move || get(max).header("Authorization", &bearer).send(port))
        })
        .collect();
    for th in threads {
        assert_eq!(th.join().unwrap().status, 200);
    }
    // And the open answer is still the one kept for unauthorised requests.
    let again = t.get(max);
    assert_eq!(cache_status(&again), "hit");
    assert!(again.body == open.body);
}

#[test]
fn upstream_answers_are_kept_and_served_stale_when_the_upstream_fails() {
    let mut backend = Backend::start("b");
    let yaml = clusters(&[("web", &[&backend], "")])
        + r#"
routes:
  - name: r
    match: { path: "/{rest*}" }
    cache: { default_ttl: 4s, stale_if_error: 1m }
    handler: { proxy: { cluster: web } }
"#;
    let t = Tessera::start(&yaml);

    // /slow/300 answers after 300 ms: every request arrives while the first is upstream.
    let answers = at_once(t.port, "/slow/300", 100);
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body == answers[0].body);
    }
    assert_eq!(backend.hits(), 1);
    assert_eq!(
        answers.iter().filter(|r| cache_status(r) == "miss").count(),
        1
    );

    // A POST is never answered from the cache.
    let post = request("POST", "/slow/300").body(b"x").send(t.port);
    assert_eq!((post.status, cache_status(&post)), (200, "bypass"));
    assert_eq!(backend.hits(), 2);

    // Past its lifetime, an upstream answering 503 gets the kept answer served instead.
    let first = t.get("/fail-after/3/503");
    assert_eq!((first.status, cache_status(&first)), (200, "miss"));
    thread::sleep(Duration::from_millis(4200));
    let failing = t.get("/fail-after/3/503");
    assert_eq!((failing.status, cache_status(&failing)), (200, "stale"));
    assert!(failing.body == first.body);
    assert_eq!(backend.hits(), 4, "the stale answer replaced a real 503");

    // With the upstream gone altogether, likewise.
    backend.stop();
    let stale = t.get("/slow/300");
    assert_eq!((stale.status, cache_status(&stale)), (200, "stale"));
    assert!(stale.body == answers[0].body);
    assert!(t.wait_log("serving a stale answer"));
    assert_eq!(
        t.metric("tessera_cache_stale_served_total", &[("route", "r")]),
        2.0
    );
    // An answer never kept has nothing stale to fall back on.
    assert_eq!(t.get("/other").status, 502);
    // Concurrent requests during the outage: the one that fetches and those that wait for it
    // all get the stale answer.
    for r in at_once(t.port, "/slow/300", 20) {
        assert_eq!((r.status, cache_status(&r)), (200, "stale"));
        assert!(r.body == answers[0].body);
    }
}

#[test]
fn a_handed_on_request_is_kept_by_the_route_that_answers_it_under_its_filters() {
    let s3 = S3Server::start();
    let _files = store(&s3);
    let yaml = format!(
        r#"origins:
{origin}routes:
  - name: thumbs
    match: {{ path: "/thumbs/{{customer}}/{{space}}/{{image}}/{{iiif*}}" }}
    cache: {{}}
    handler: {{ thumbs: {{ origin: masters, key: "thumbs/{{customer}}/{{space}}/{{image}}", otherwise: protected }} }}
  - name: protected
    match: {{ path: "/thumbs/{{customer}}/{{space}}/{{image}}/{{iiif*}}" }}
    filters: [{{ auth: {{ tokens: ["{TOKEN}"], required: true }} }}]
    cache: {{}}
    handler: {{ respond: {{ body: "rendered from the master", headers: {{ cache-control: "public, max-age=60", etag: "\"v1\"" }} }} }}
"#,
        origin = s3.origin_yaml("masters"),
    );
    let t = Tessera::start(&yaml);
    // Rotation is not a thumbnail: `thumbs` hands it to `protected`, whose filter wants a token.
    let path = "/thumbs/2/1/img/full/200,/90/default.jpg";
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(t.get(path).status, 401);
    let r = get(path).header("Authorization", &bearer).send(t.port);
    assert_eq!(
        (r.status, r.text().trim()),
        (200, "rendered from the master")
    );
    // Kept by `protected`, for authorised requests: never served past its filter.
    assert_eq!(t.get(path).status, 401);
    let again = get(path).header("Authorization", &bearer).send(t.port);
    assert_eq!((again.status, cache_status(&again)), (200, "hit"));
    // The first route's lookup took the client's validators off the request; they are put
    // back when it hands the request on, so the answering route can say 304.
    let held = get(path)
        .header("Authorization", &bearer)
        .header("If-None-Match", "\"v1\"")
        .send(t.port);
    assert_eq!((held.status, cache_status(&held)), (304, "hit"));
}
