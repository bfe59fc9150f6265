//! Every built-in filter through the real service.

use crate::harness::*;

#[test]
fn headers_filter_edits_requests_and_responses() {
    let web = Backend::start("web");
    let t = Tessera::start(
        &(clusters(&[("web", &[&web], "")])
            + r#"
routes:
  - name: h
    match: { path: "/img/{image}" }
    filters:
      - headers:
          request:
            set: { x-image: "{image}" }
            append: { x-trace: "tessera" }
            remove: [x-secret]
          response:
            set: { cache-control: "public, max-age=60" }
            remove: [x-backend]
    handler: { proxy: { cluster: web } }
"#),
    );
    let r = get("/img/abc")
        .header("X-Secret", "s")
        .header("X-Trace", "client")
        .send(t.port);
    assert_eq!(r.status, 200);
    let echo = r.echo();
    assert_eq!(echo["headers"]["x-image"], "abc");
    assert!(echo["headers"].get("x-secret").is_none());
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(r.header("x-backend"), None);
}

#[test]
fn cors_answers_preflight_and_marks_responses() {
    let web = Backend::start("web");
    let t = Tessera::start(
        &(clusters(&[("web", &[&web], "")])
            + r#"
routes:
  - name: open
    match: { path: "/open/{rest*}" }
    filters: [cors]
    handler: { proxy: { cluster: web } }
  - name: strict
    match: { path: "/strict/{rest*}" }
    filters:
      - cors: { allow_origins: ["https://viewer.example"], allow_credentials: true, expose_headers: [etag] }
    handler: { proxy: { cluster: web } }
"#),
    );
    let hits_before = web.hits();
    let r = request("OPTIONS", "/open/x")
        .header("Origin", "https://a.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "range")
        .send(t.port);
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("content-length"),
        None,
        "a 204 carries no Content-Length"
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-headers"), Some("range"));
    assert!(r
        .header("access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    assert_eq!(
        web.hits(),
        hits_before,
        "a preflight never reaches the backend"
    );

    let r = get("/open/x")
        .header("Origin", "https://a.example")
        .send(t.port);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let r = get("/open/x").send(t.port);
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "no Origin, no CORS headers"
    );

    let r = get("/strict/x")
        .header("Origin", "https://viewer.example")
        .send(t.port);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://viewer.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-expose-headers"), Some("etag"));
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = get("/strict/x")
        .header("Origin", "https://evil.example")
        .send(t.port);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(
        r.header("vary"),
        Some("Origin"),
        "caches must key on Origin even when refused"
    );
    let r = request("OPTIONS", "/strict/x")
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .send(t.port);
    assert_eq!(r.status, 403);
}

#[test]
fn rate_limit_per_ip_and_per_key() {
    let t = Tessera::start(
        r#"
routes:
  - name: per-ip
    match: { path: "/ip" }
    filters: [{ rate_limit: { per_ip: 3/m } }]
    handler: { respond: { body: "ok" } }
  - name: per-image
    match: { path: "/img/{image}" }
    filters: [{ rate_limit: { per_key: { key: "{image}", limit: 2/m } } }]
    handler: { respond: { body: "ok" } }
"#,
    );
    let statuses: Vec<u16> = (0..5).map(|_| t.get("/ip").status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    let r = t.get("/ip");
    assert_eq!(r.header("retry-after"), Some("60"));

    let a: Vec<u16> = (0..3).map(|_| t.get("/img/a").status).collect();
    assert_eq!(a, vec![200, 200, 429]);
    assert_eq!(
        t.get("/img/b").status,
        200,
        "another key has its own budget"
    );
}

#[test]
fn ip_filter_allows_and_denies() {
    let t = Tessera::start(
        r#"
routes:
  - name: deny-local
    match: { path: "/deny" }
    filters: [{ ip_filter: { deny: ["127.0.0.0/8"] } }]
    handler: { respond: { body: "ok" } }
  - name: allow-private
    match: { path: "/private" }
    filters: [{ ip_filter: { allow: ["10.0.0.0/8"] } }]
    handler: { respond: { body: "ok" } }
  - name: allow-local
    match: { path: "/local" }
    filters: [{ ip_filter: { allow: ["127.0.0.1", "::1"] } }]
    handler: { respond: { body: "ok" } }
"#,
    );
    assert_eq!(t.get("/deny").status, 403);
    assert_eq!(t.get("/private").status, 403);
    assert_eq!(t.get("/local").status, 200);
}
