//! Live reload on SIGHUP: a good config replaces the old one, a bad one is refused.

use crate::harness::*;

const V1: &str = r#"
routes:
  - name: version
    match: { path: "/version" }
    handler: { respond: { body: "v1" } }
"#;

#[test]
fn sighup_applies_a_good_config_and_refuses_a_bad_one() {
    let t = Tessera::start(V1);
    assert_eq!(t.get("/version").text(), "v1");

    t.reload_with(
        r#"
routes:
  - name: version
    match: { path: "/version" }
    handler: { respond: { body: "v2" } }
  - name: added
    match: { path: "/added" }
    handler: { respond: { body: "new route" } }
"#,
    );
    assert!(
        eventually(5, || t.get("/version").text() == "v2"),
        "{}",
        t.log()
    );
    assert_eq!(t.get("/added").text(), "new route");
    assert_eq!(
        t.metric("tessera_config_reloads_total", &[("result", "ok")]),
        1.0
    );

    // Bad: a route names a cluster that does not exist, and a duplicate route name.
    t.reload_with(
        r#"
routes:
  - name: version
    match: { path: "/version" }
    handler: { respond: { body: "v3" } }
  - name: version
    match: { path: "/other" }
    handler: { proxy: { cluster: nowhere } }
"#,
    );
    assert!(eventually(5, || t.metric(
        "tessera_config_reloads_total",
        &[("result", "failed")]
    ) == 1.0));
    let path = t.config_path.display().to_string();
    let log = t.log();
    assert!(
        log.contains(&format!("{path}:8:11: duplicate route name")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "{path}:10:34: handler \\\"proxy\\\": unknown cluster"
        )),
        "{log}"
    );
    assert!(log.contains("config reload refused"));
    assert_eq!(t.get("/version").text(), "v2", "the running config stays");
    assert_eq!(t.get("/added").text(), "new route");

    // A syntax error is refused the same way.
    t.reload_with("routes: [\n");
    assert!(eventually(5, || t.metric(
        "tessera_config_reloads_total",
        &[("result", "failed")]
    ) == 2.0));
    assert_eq!(t.get("/version").text(), "v2");
}

#[test]
fn in_flight_requests_finish_on_the_old_config() {
    let slow = Backend::start("slow");
    let t = Tessera::start(&format!(
        r#"
clusters:
  web: {{ endpoints: ["{}"] }}
routes:
  - name: slow
    match: {{ path: "/slow/{{ms}}" }}
    handler: {{ proxy: {{ cluster: web }} }}
"#,
        slow.addr()
    ));
    let port = t.port;
    let in_flight = std::thread::spawn(move || get("/slow/1500").send(port));
    std::thread::sleep(std::time::Duration::from_millis(300));
    t.reload_with(
        r#"
routes:
  - name: slow
    match: { path: "/slow/{ms}" }
    handler: { respond: { status: 410, body: "gone" } }
"#,
    );
    assert!(eventually(5, || t.get("/slow/1").status == 410));
    let r = in_flight.join().unwrap();
    assert_eq!(
        r.status, 200,
        "the request that started before the reload is proxied to the end"
    );
    assert_eq!(r.echo()["backend"], "slow");
}

#[test]
fn listener_changes_are_reported_as_needing_a_restart() {
    let t = Tessera::start(V1);
    let other = free_port();
    let text = format!("listen: [{{ address: \"127.0.0.1:{other}\" }}]\nadmin: {{ address: \"127.0.0.1:{}\" }}\n{V1}", t.admin);
    std::fs::write(&t.config_path, text).unwrap();
    let pid = t.log(); // keep the borrow checker happy about t below
    drop(pid);
    std::process::Command::new("pkill")
        .args(["-HUP", "-f", &t.config_path.display().to_string()])
        .status()
        .unwrap();
    assert!(
        t.wait_log("take effect only after a restart"),
        "{}",
        t.log()
    );
    assert_eq!(
        t.get("/version").text(),
        "v1",
        "still serving on the old port"
    );
}

#[test]
fn watch_config_reloads_when_the_file_changes() {
    let watched = format!("server: {{ watch_config: 200ms }}\n{V1}");
    let t = Tessera::start(&watched);
    assert_eq!(t.get("/version").text(), "v1");
    t.write_config(&watched.replace("body: \"v1\"", "body: \"v2\""));
    assert!(
        eventually(5, || t.get("/version").text() == "v2"),
        "{}",
        t.log()
    );
    assert!(t.wait_log("config file changed: reloading"));
    // Unchanged content does not reload again; a broken file is refused and reported once.
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(
        t.metric("tessera_config_reloads_total", &[("result", "ok")]),
        1.0
    );
    t.write_config("routes: [\n");
    assert!(eventually(5, || t.metric(
        "tessera_config_reloads_total",
        &[("result", "failed")]
    ) == 1.0));
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(
        t.metric("tessera_config_reloads_total", &[("result", "failed")]),
        1.0
    );
    assert_eq!(t.get("/version").text(), "v2");
}
