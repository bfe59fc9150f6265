//! Load balancing, health checks, retries and upstream failures.

use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn consistent_hash_sends_a_key_to_the_same_endpoint() {
    let backends: Vec<Backend> = ["a", "b", "c"].iter().map(|n| Backend::start(n)).collect();
    let endpoints: Vec<String> = backends
        .iter()
        .map(|b| format!("\"{}\"", b.addr()))
        .collect();
    let t = Tessera::start(&format!(
        r#"
clusters:
  iip:
    endpoints: [{}]
    load_balancing: {{ consistent_hash: "{{image}}" }}
routes:
  - name: tiles
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    handler: {{ proxy: {{ cluster: iip }} }}
"#,
        endpoints.join(", ")
    ));
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for round in 0..3 {
        for i in 0..30 {
            let image = format!("img{i}");
            let r = t.get(&format!(
                "/iiif/{image}/0,0,256,256/256,/0/default.jpg?round={round}"
            ));
            assert_eq!(r.status, 200);
            let backend = r.header("x-backend").unwrap().to_string();
            let first = owner
                .entry(image.clone())
                .or_insert_with(|| backend.clone());
            assert_eq!(*first, backend, "{image} moved between endpoints");
        }
    }
    let used: BTreeSet<&String> = owner.values().collect();
    assert!(
        used.len() >= 2,
        "30 keys should spread over more than one endpoint: {used:?}"
    );
}

/// Two backends behind one cluster balanced by `policy`, and a route to it.
fn two_backends(policy: &str) -> (Backend, Backend, Tessera) {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let opts = format!("load_balancing: {policy}");
    let t = Tessera::start(&(clusters(&[("web", &[&a, &b], &opts)]) + PROXY_ALL));
    (a, b, t)
}

#[test]
fn round_robin_spreads_requests() {
    let (a, b, t) = two_backends("round_robin");
    for _ in 0..10 {
        assert_eq!(t.get("/x").status, 200);
    }
    assert_eq!((a.hits(), b.hits()), (5, 5));
}

#[test]
fn random_balancing_uses_every_endpoint() {
    let (a, b, t) = two_backends("random");
    for _ in 0..40 {
        assert_eq!(t.get("/x").status, 200);
    }
    // All 40 on one endpoint would happen with probability 2^-39.
    assert!(a.hits() > 0 && b.hits() > 0 && a.hits() + b.hits() == 40);
}

#[test]
fn tcp_health_check_takes_a_closed_port_out() {
    let live = Backend::start("live");
    let mut dead = Backend::start("dead");
    let dead_endpoint = dead.addr();
    let t = Tessera::start(
        &(clusters(&[(
            "web",
            &[&live, &dead],
            "retries: 0, health_check: { interval: 200ms }",
        )]) + PROXY_ALL),
    );
    dead.stop();
    assert!(eventually(5, || t.metric(
        "tessera_upstream_healthy",
        &[("endpoint", &dead_endpoint)]
    ) == 0.0));
    for _ in 0..6 {
        assert_eq!(t.get("/x").header("x-backend"), Some("live"));
    }
}

#[test]
fn no_healthy_endpoint_fails_fast_with_502() {
    let mut only = Backend::start("only");
    let endpoint = only.addr();
    let t = Tessera::start(&format!(
        r#"
clusters:
  web: {{ endpoints: ["{endpoint}"], health_check: {{ interval: 200ms }} }}
routes:
  - name: r
    match: {{ path: "/{{rest*}}" }}
    handler: {{ proxy: {{ cluster: web }} }}
"#
    ));
    only.stop();
    assert!(eventually(5, || t
        .metric("tessera_upstream_healthy", &[("endpoint", &endpoint)])
        == 0.0));
    let r = t.get("/x");
    assert_eq!(r.status, 502);
    assert!(t.wait_log("has no healthy endpoint left to try"));
}

#[test]
fn health_check_takes_a_dead_endpoint_out_and_back() {
    let live = Backend::start("live");
    let mut flaky = Backend::start("flaky");
    let flaky_port = flaky.port;
    let t = Tessera::start(&(clusters(&[("web", &[&live, &flaky], "retries: 0, health_check: { interval: 200ms, path: \"/health\", timeout: 500ms, unhealthy_threshold: 1, healthy_threshold: 1 }")]) + PROXY_ALL));
    let flaky_endpoint = format!("127.0.0.1:{flaky_port}");
    assert!(eventually(5, || t.metric(
        "tessera_upstream_healthy",
        &[("endpoint", &flaky_endpoint)]
    ) == 1.0));

    flaky.stop();
    assert!(
        eventually(5, || t.metric(
            "tessera_upstream_healthy",
            &[("endpoint", &flaky_endpoint)]
        ) == 0.0),
        "the stopped endpoint is marked unhealthy:\n{}",
        t.metrics()
    );
    assert!(t.wait_log("taken out of rotation"));
    // With retries off, any request sent to the dead endpoint would fail: none does.
    for _ in 0..10 {
        let r = t.get("/x");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-backend"), Some("live"));
    }

    let back = Backend::start_on("flaky", flaky_port);
    assert!(eventually(5, || t.metric(
        "tessera_upstream_healthy",
        &[("endpoint", &flaky_endpoint)]
    ) == 1.0));
    assert!(t.wait_log("back in rotation"));
    for _ in 0..10 {
        assert_eq!(t.get("/x").status, 200);
    }
    assert!(
        back.hits() > 5,
        "the returned endpoint gets traffic again (health checks + requests)"
    );
}

#[test]
fn connect_failure_retries_on_another_endpoint() {
    let live = Backend::start("live");
    let dead = free_port();
    let t = Tessera::start(&format!(
        r#"
clusters:
  web: {{ endpoints: ["127.0.0.1:{dead}", "{}"], load_balancing: round_robin, retries: 1 }}
routes:
  - name: r
    match: {{ path: "/{{rest*}}" }}
    handler: {{ proxy: {{ cluster: web }} }}
"#,
        live.addr()
    ));
    for _ in 0..6 {
        let r = t.get("/x");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(live.hits(), 6);
    let dead_endpoint = format!("127.0.0.1:{dead}");
    assert!(
        t.metric(
            "tessera_upstream_errors_total",
            &[("endpoint", &dead_endpoint), ("kind", "connect")]
        ) >= 3.0
    );
}

#[test]
fn unreachable_upstream_is_502_and_slow_upstream_is_504() {
    let slow = Backend::start("slow");
    let dead = free_port();
    let t = Tessera::start(&format!(
        r#"
clusters:
  dead: {{ endpoints: ["127.0.0.1:{dead}"] }}
  slow: {{ endpoints: ["{}"], timeouts: {{ read: 300ms }} }}
  slow-total: {{ endpoints: ["{}"], timeouts: {{ read: 5s, total: 300ms }} }}
routes:
  - name: to-dead
    match: {{ path: "/dead" }}
    filters: [cors]
    handler: {{ proxy: {{ cluster: dead }} }}
  - name: to-slow
    match: {{ path: "/slow/{{ms}}" }}
    handler: {{ proxy: {{ cluster: slow }} }}
  - name: to-slow-total
    match: {{ path: "/total/{{ms}}" }}
    handler: {{ proxy: {{ cluster: slow-total, path: "/slow/{{ms}}" }} }}
"#,
        slow.addr(),
        slow.addr()
    ));
    let r = get("/dead")
        .header("Origin", "https://v.example")
        .send(t.port);
    assert_eq!(r.status, 502);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("*"),
        "filters see error responses too"
    );
    assert!(t.wait_log("cannot connect to upstream endpoint"));
    assert!(t.wait_log("upstream failed"));
    let log = t.log();
    let line = log
        .lines()
        .find(|l| l.contains("upstream failed") && l.contains("to-dead"))
        .expect("502 log line");
    assert!(
        line.contains("\"cluster\":\"dead\"") && line.contains(&format!("127.0.0.1:{dead}")),
        "{line}"
    );

    let r = t.get("/slow/2000");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(t.wait_log("\"route\":\"to-slow\""));
    let r = t.get("/slow/10");
    assert_eq!(r.status, 200);

    let r = t.get("/total/1000");
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(t.get("/total/10").status, 200);
    assert!(
        t.metric(
            "tessera_upstream_errors_total",
            &[("cluster", "slow"), ("kind", "timeout")]
        ) >= 1.0
    );
}

#[test]
fn a_reused_connection_closed_by_the_upstream_is_retried_on_the_same_endpoint() {
    let only = Backend::start_closing("only");
    let t = Tessera::start(&(clusters(&[("web", &[&only], "retries: 0")]) + PROXY_ALL));
    for i in 0..10 {
        let r = t.get(&format!("/x{i}"));
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    assert_eq!(only.hits(), 10);
}
