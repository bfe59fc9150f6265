//! Route order, captures, matching on host/method/header/query, rewrites, local handlers.

use crate::harness::*;

#[test]
fn first_matching_route_wins_and_captures_fill_the_rewrite() {
    let web = Backend::start("web");
    let t = Tessera::start(
        &(clusters(&[("web", &[&web], "")])
            + r#"
routes:
  - name: special
    match: { path: "/iiif/{customer}/special/{rest*}" }
    handler: { respond: { body: "special" } }
  - name: iiif
    match: { path: "/iiif/{customer}/{space}/{image}/{iiif*}" }
    handler:
      proxy:
        cluster: web
        path: "/fcgi-bin/iipsrv.fcgi?IIIF={customer}-{space}-{image}/{iiif}"
  - name: catch-all
    match: { path: "/iiif/{rest*}" }
    handler: { respond: { status: 418, body: "catch-all" } }
"#),
    );
    let r = t.get("/iiif/2/special/a/b");
    assert_eq!((r.status, r.text().as_str()), (200, "special"));

    let r = t.get("/iiif/2/1/abc/full/max/0/default.jpg");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.echo()["path"],
        "/fcgi-bin/iipsrv.fcgi?IIIF=2-1-abc/full/max/0/default.jpg"
    );

    let r = t.get("/iiif/2/1");
    assert_eq!((r.status, r.text().as_str()), (418, "catch-all"));

    let r = t.get("/elsewhere");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no route"));
}

#[test]
fn host_method_header_and_query_conditions() {
    let t = Tessera::start(
        r#"
routes:
  - name: by-host
    match: { host: ["*.example.org"], path: "/x" }
    handler: { respond: { body: "host" } }
  - name: by-method
    match: { methods: [POST], path: "/x" }
    handler: { respond: { body: "post" } }
  - name: by-header
    match: { headers: { x-tier: gold }, path: "/x" }
    handler: { respond: { body: "header" } }
  - name: by-header-absent
    match: { headers: { x-tier: { present: false } }, query: { v: "2" }, path: "/x" }
    handler: { respond: { body: "query" } }
  - name: by-query-present
    match: { query: { debug: { present: true } }, path: "/x" }
    handler: { respond: { body: "debug" } }
  - name: fallback
    match: { path: "/x" }
    handler: { respond: { body: "fallback" } }
"#,
    );
    let body = |r: Response| r.text();
    assert_eq!(
        body(get("/x").header("Host", "a.example.org").send(t.port)),
        "host"
    );
    assert_eq!(
        body(get("/x").header("Host", "example.org").send(t.port)),
        "fallback"
    );
    assert_eq!(
        body(
            request("POST", "/x")
                .header("Content-Length", "0")
                .send(t.port)
        ),
        "post"
    );
    assert_eq!(
        body(get("/x").header("X-Tier", "gold").send(t.port)),
        "header"
    );
    assert_eq!(body(get("/x?v=2").send(t.port)), "query");
    assert_eq!(
        body(get("/x?v=2").header("X-Tier", "silver").send(t.port)),
        "fallback"
    );
    assert_eq!(
        body(get("/x?debug").header("X-Tier", "silver").send(t.port)),
        "debug"
    );
    assert_eq!(body(get("/x?v=3").send(t.port)), "fallback");
}

#[test]
fn proxy_forwards_unchanged_or_rewrites_host() {
    let web = Backend::start("web");
    let t = Tessera::start(
        &(clusters(&[("web", &[&web], "")])
            + r#"
routes:
  - name: plain
    match: { path: "/plain/{rest*}" }
    handler: { proxy: { cluster: web } }
  - name: rehost
    match: { path: "/rehost/{rest*}" }
    handler: { proxy: { cluster: web, host: "images.internal", path: "/{rest}" } }
"#),
    );
    let r = get("/plain/a%2Fb/c?x=1&y=%20")
        .header("Host", "front.example")
        .send(t.port);
    let echo = r.echo();
    assert_eq!(
        echo["path"], "/plain/a%2Fb/c?x=1&y=%20",
        "percent-encoding and query are kept"
    );
    assert_eq!(echo["headers"]["host"], "front.example");
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");

    let r = request("POST", "/plain/upload")
        .body(b"region=full&size=max")
        .send(t.port);
    let echo = r.echo();
    assert_eq!(
        (echo["method"].as_str(), echo["body"].as_str()),
        (Some("POST"), Some("region=full&size=max"))
    );

    let echo = t.get("/rehost/q/r").echo();
    assert_eq!(echo["path"], "/q/r");
    assert_eq!(echo["headers"]["host"], "images.internal");
}

#[test]
fn redirect_and_respond_handlers() {
    let t = Tessera::start(
        r#"
routes:
  - name: old
    match: { path: "/old/{image}" }
    handler: { redirect: { location: "https://iiif.example.org/new/{image}/info.json", status: 301 } }
  - name: fixed
    match: { path: "/fixed" }
    handler: { respond: { status: 503, body: "down for maintenance", content_type: "text/html", headers: { retry-after: "120" } } }
"#,
    );
    let r = t.get("/old/abc");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://iiif.example.org/new/abc/info.json")
    );
    let r = t.get("/fixed");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "down for maintenance");
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.header("retry-after"), Some("120"));
    let r = request("HEAD", "/fixed").send(t.port);
    assert_eq!(r.status, 503);
    assert!(r.body.is_empty(), "HEAD gets no body");
}

#[test]
fn bad_requests_get_400_and_oversized_headers_431() {
    let t = Tessera::start(
        r#"
limits: { max_request_header_bytes: 4096 }
routes:
  - name: all
    match: { path: "/{rest*}" }
    handler: { respond: { body: "ok" } }
"#,
    );
    let big = "a".repeat(8000);
    let r = get("/").header("X-Big", &big).send(t.port);
    assert_eq!(r.status, 431);

    let r = send_raw(t.port, b"GARBAGE\r\n\r\n");
    assert_eq!(r.status, 400);
    let r = send_raw(t.port, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    assert_eq!(r.status, 400);
    // Still serving after all that.
    assert_eq!(t.get("/").status, 200);
}

#[test]
fn rewrites_refuse_traversal_and_keep_captures_inside_query_values() {
    let web = Backend::start("web");
    let t = Tessera::start(
        &(clusters(&[("web", &[&web], "")])
            + r#"
routes:
  - name: iip
    match: { path: "/iiif/{image}/{iiif*}" }
    handler: { proxy: { cluster: web, path: "/fcgi?IIIF=/images/{image}/{iiif}" } }
  - name: go
    match: { path: "/go/{rest*}" }
    handler: { redirect: { location: "/{rest}" } }
"#),
    );
    let r = t.get("/iiif/a&FIF=secret.tif/full/max/0/default.jpg");
    assert_eq!(
        r.echo()["path"],
        "/fcgi?IIIF=/images/a%26FIF=secret.tif/full/max/0/default.jpg"
    );

    let hits = web.hits();
    for path in [
        "/iiif/x/../../etc/passwd",
        "/iiif/x/%2e%2e/secret",
        "/iiif/../info.json",
        "/iiif/x/a/./b",
    ] {
        let r = t.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
    assert_eq!(
        web.hits(),
        hits,
        "refused requests never reach the upstream"
    );

    let r = t.get("/go//evil.example/x");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("/evil.example/x"),
        "a local redirect stays local"
    );
}

#[test]
fn forwarding_headers_and_connection_handling() {
    let web = Backend::start("web");
    let dead = free_port();
    let t = Tessera::start(&format!(
        r#"
clusters:
  web: {{ endpoints: ["{web}"] }}
  dead: {{ endpoints: ["127.0.0.1:{dead}"] }}
routes:
  - name: web
    match: {{ path: "/web" }}
    handler: {{ proxy: {{ cluster: web }} }}
  - name: dead
    match: {{ path: "/dead" }}
    handler: {{ proxy: {{ cluster: dead }} }}
  - name: limited
    match: {{ path: "/limited" }}
    filters: [{{ rate_limit: {{ per_ip: 1/m }} }}]
    handler: {{ respond: {{ body: "ok" }} }}
"#,
        web = web.addr()
    ));
    let echo = get("/web")
        .header("X-Forwarded-For", "203.0.113.9")
        .send(t.port)
        .echo();
    assert_eq!(echo["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "http");

    // Keep-alive requests: an upstream failure answers and closes the connection cleanly.
    let r = send_raw(t.port, b"GET /dead HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 502);
    assert_eq!(r.header("connection"), Some("close"));

    // A refused request with an unread body closes the connection instead of draining it.
    assert_eq!(t.get("/limited").status, 200);
    let r = send_raw(
        t.port,
        b"POST /limited HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\npartial",
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.header("connection"), Some("close"));
}

#[test]
fn hostile_requests_never_take_the_service_down() {
    let web = Backend::start("web");
    let t = Tessera::start(
        &(clusters(&[(
            "web",
            &[&web],
            "load_balancing: { consistent_hash: \"{a}\" }",
        )]) + r#"
routes:
  - name: parts
    match: { path: "/p/{a}/{b}.{c}/{rest*}", headers: { x-mode: { present: false } } }
    filters: [cors, { rate_limit: { per_key: { key: "{a}", limit: 100000/s } } }, { headers: { request: { set: { x-a: "{a}" } } } }]
    handler: { proxy: { cluster: web, path: "/up/{a}?q={b}&r={rest}" } }
  - name: go
    match: { path: "/go/{rest*}" }
    handler: { redirect: { location: "/{rest}" } }
"#),
    );
    // A small deterministic generator: no dependency, same inputs every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<u8> =
        b"abz09/._-~%2e%2F?&=#;+:@!$'()*,[]{}\\\"<> \t\x00\x7f\xc3\xa9\xff".to_vec();
    for i in 0..300 {
        let len = (next() % 60) as usize;
        let junk: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let prefix: &[u8] = match i % 3 {
            0 => b"/p/",
            1 => b"/go/",
            _ => b"/",
        };
        let mut raw = b"GET ".to_vec();
        raw.extend_from_slice(prefix);
        raw.extend_from_slice(&junk);
        raw.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", t.port)) {
            use std::io::{Read, Write};
            s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let _ = s.write_all(&raw);
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            if out.starts_with(b"HTTP/1.1 ") {
                let status: u16 = String::from_utf8_lossy(&out[9..12]).parse().unwrap_or(0);
                assert!(
                    matches!(status, 200 | 302 | 400 | 404 | 502),
                    "{status} for {raw:?}"
                );
            }
        }
    }
    assert_eq!(
        t.get("/p/a/b.c/d").status,
        200,
        "still serving:\n{}",
        t.log()
    );
    assert!(!t.log().contains("panicked"), "{}", t.log());
}

/// The host a request names goes into URLs that handlers build: one that is not a host name
/// or address is refused, and an HTTP/1.1 request without one too.
#[test]
fn hosts_that_are_not_hosts_are_400() {
    let t = Tessera::start(
        r#"
routes:
  - name: go
    match: { path: "/go" }
    handler: { redirect: { location: "http://example.org/" } }
"#,
    );
    let r = send_raw(
        t.port,
        b"GET /go HTTP/1.1\r\nHost: evil.example/x?y=1#\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = send_raw(t.port, b"GET /go HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = send_raw(
        t.port,
        b"GET /go HTTP/1.1\r\nHost: images.example.org:8080\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 302, "{}", r.text());
}

/// A client's malformed request is the client's fault: answered, logged at INFO, never as an
/// ERROR of ours. A repeated Content-Length reaches the upstream as one value.
#[test]
fn client_faults_are_not_our_errors() {
    let web = Backend::start("web");
    let t = Tessera::start(&(clusters(&[("web", &[&web], "")]) + PROXY_ALL));
    let r = send_raw(
        t.port,
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nnot a chunk\r\n0\r\n\r\n",
    );
    assert!(r.status == 0 || r.status >= 400, "{}", r.status);
    let r = send_raw(
        t.port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echo()["headers"]["content-length"], "5");
    assert!(t.wait_log("the client's request failed"), "{}", t.log());
    assert!(!t.log().contains("\"level\":\"ERROR\""), "{}", t.log());
}

/// A config with no routes (an empty file) starts, and says that every request gets 404.
#[test]
fn a_config_without_routes_says_so() {
    let t = Tessera::start("routes: []\n");
    assert!(t.wait_log("the config has no routes"), "{}", t.log());
    assert_eq!(t.get("/").status, 404);
}
