//! Metrics, the access log and the debug header.

use crate::harness::*;

#[test]
fn metrics_count_requests_by_route_and_status() {
    let web = Backend::start("web");
    let dead = free_port();
    let t = Tessera::start(&format!(
        r#"
debug_headers: true
clusters:
  web: {{ endpoints: ["{}"] }}
  dead: {{ endpoints: ["127.0.0.1:{dead}"] }}
routes:
  - name: ok
    match: {{ path: "/ok" }}
    handler: {{ proxy: {{ cluster: web }} }}
  - name: teapot
    match: {{ path: "/teapot" }}
    handler: {{ respond: {{ status: 418 }} }}
  - name: broken
    match: {{ path: "/broken" }}
    handler: {{ proxy: {{ cluster: dead }} }}
"#,
        web.addr()
    ));
    for _ in 0..3 {
        let r = t.get("/ok");
        assert_eq!(
            r.header("x-proxy-destination"),
            Some(format!("route=ok; cluster=web; endpoint={}", web.addr()).as_str())
        );
    }
    let r = t.get("/teapot");
    assert_eq!(r.header("x-proxy-destination"), Some("route=teapot; local"));
    t.get("/broken");
    t.get("/nothing-here");

    let ok = |route: &str, status: &str| {
        t.metric(
            "tessera_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert!(eventually(5, || ok("ok", "200") == 3.0), "{}", t.metrics());
    assert_eq!(ok("teapot", "418"), 1.0);
    assert_eq!(ok("broken", "502"), 1.0);
    assert_eq!(ok("(none)", "404"), 1.0);
    assert_eq!(
        t.metric("tessera_request_duration_seconds_count", &[("route", "ok")]),
        3.0
    );
    let dead_endpoint = format!("127.0.0.1:{dead}");
    assert_eq!(
        t.metric(
            "tessera_upstream_errors_total",
            &[("cluster", "dead"), ("endpoint", &dead_endpoint)]
        ),
        1.0
    );
    let m = t.metrics();
    assert!(
        m.contains("# TYPE tessera_config_reloads_total counter"),
        "{m}"
    );

    assert_eq!(get("/healthz").send(t.admin).status, 200);
    assert_eq!(get("/readyz").send(t.admin).status, 200);
}

/// Tessera with one route, `/{route}/{rest*}` proxied to `web`, with more route keys in `extra`.
fn proxied_to(web: &Backend, route: &str, extra: &str) -> Tessera {
    Tessera::start(&format!(
        r#"
clusters:
  web: {{ endpoints: ["{}"] }}
routes:
  - name: {route}
    match: {{ path: "/{route}/{{rest*}}" }}
    {extra}
    handler: {{ proxy: {{ cluster: web }} }}
"#,
        web.addr()
    ))
}

#[test]
fn access_log_has_one_json_line_per_request() {
    let web = Backend::start("web");
    let t = proxied_to(&web, "logged", "");
    let r = t.get("/logged/abc?q=1");
    assert_eq!(r.status, 200);
    assert!(t.wait_log("/logged/abc?q=1"));
    let log = t.log();
    let line = log
        .lines()
        .find(|l| l.contains("tessera::access") && l.contains("/logged/abc"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["route"], "logged");
    assert_eq!(v["status"], 200);
    assert_eq!(v["method"], "GET");
    assert_eq!(v["upstream"], web.addr());
    assert_eq!(v["bytes"].as_u64().unwrap() as usize, r.body.len());
    assert!(v["duration_ms"].as_f64().unwrap() >= 0.0);
}

/// What an operator sees of the image work: decodes by handler and outcome (with their wait,
/// duration and slots held), info and render answers by outcome, the header index, the
/// process, and the build.
#[test]
fn decodes_the_header_index_and_the_process_are_measured() {
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&embedded_default(cache.path()));
    for path in [
        "/iiif/sample/info.json",
        "/iiif/sample/0,0,512,512/256,/0/default.jpg",
        "/iiif/sample/512,0,512,512/256,/0/default.jpg",
        "/iiif/sample/full/!200,200/0/default.jpg",
        "/iiif/missing/info.json",
    ] {
        t.get(path);
    }
    let m = |name: &str, labels: &[(&str, &str)]| t.metric(name, labels);
    let render = [("handler", "render")];
    assert_eq!(
        m(
            "tessera_decodes_total",
            &[("handler", "render"), ("outcome", "ok")]
        ),
        2.0
    );
    assert_eq!(m("tessera_decode_duration_seconds_count", &render), 2.0);
    assert_eq!(m("tessera_decode_wait_seconds_count", &render), 2.0);
    assert_eq!(m("tessera_decodes_in_flight", &render), 0.0);
    assert_eq!(
        m("tessera_decodes_total", &[("handler", "byte_range")]),
        1.0
    );
    let image = |handler: &str, outcome: &str| {
        m(
            "tessera_image_requests_total",
            &[("handler", handler), ("outcome", outcome)],
        )
    };
    assert_eq!(image("info", "jp2"), 1.0);
    assert_eq!(image("info", "failed"), 1.0);
    assert_eq!(image("render", "jp2"), 2.0);
    assert_eq!(
        m("tessera_index_lookups_total", &[("source", "built")]),
        1.0
    );
    assert!(m("tessera_index_lookups_total", &[("source", "memory")]) >= 2.0);
    assert!(m("tessera_index_read_bytes_total", &[]) > 0.0);
    assert!(m("process_resident_memory_bytes", &[]) > 0.0);
    assert!(m("process_open_fds", &[]) > 0.0);
    assert_eq!(m("tessera_build_info", &[]), 1.0);
}

/// One id per request, in the access log, upstream and in the answer: the client's when it is
/// a plausible one, else a new one; with the host, user agent, HTTP version and cache outcome.
#[test]
fn a_request_id_follows_the_request_upstream_and_back() {
    let web = Backend::start("web");
    let t = proxied_to(&web, "traced", "cache: {}");
    let r = get("/traced/a")
        .header("X-Request-Id", "front-42")
        .header("User-Agent", "viewer/5")
        .send(t.port);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("front-42"));
    assert_eq!(r.echo()["headers"]["x-request-id"], "front-42");
    let made = get("/traced/b")
        .header("X-Request-Id", "not <plausible>")
        .send(t.port);
    let id = made.header("x-request-id").unwrap().to_string();
    assert_ne!(id, "not <plausible>");
    assert_eq!(made.echo()["headers"]["x-request-id"], id.as_str());
    assert!(t.wait_log(&id));
    let line = t
        .log()
        .lines()
        .find(|l| l.contains("tessera::access") && l.contains("front-42"))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .unwrap();
    assert_eq!(line["request_id"], "front-42");
    assert_eq!(line["host"], "localhost");
    assert_eq!(line["user_agent"], "viewer/5");
    assert_eq!(line["http"], "HTTP/1.1");
    assert_eq!(line["cache"], "miss");
}
