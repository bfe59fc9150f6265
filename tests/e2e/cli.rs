//! `tessera check`, `tessera schema`, `tessera --version`, and the embedded default.

use crate::harness::*;
use std::process::Command;

fn check(yaml: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(tessera_bin())
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn check_accepts_a_good_config() {
    let (ok, stdout, _) = check(
        r#"
clusters:
  web: { endpoints: ["127.0.0.1:9"], load_balancing: { consistent_hash: "{image}" } }
routes:
  - name: r
    match: { path: "/i/{image}/{iiif*}" }
    handler: { proxy: { cluster: web } }
"#,
    );
    assert!(ok);
    assert!(stdout.contains("ok (1 routes, 1 clusters)"), "{stdout}");
}

#[test]
fn check_reports_every_problem_with_its_position() {
    let (ok, _, stderr) = check(
        r#"clusters:
  web: { endpoints: ["127.0.0.1:9"], load_balancing: { consistent_hash: "{image}" } }
routes:
  - name: a
    match: { path: "/a/{id}" }
    handler: { proxy: { cluster: web } }
  - name: a
    match: { path: "/b" }
    filters: [nope, { rate_limit: { per_ip: lots } }]
    handler: { proxy: { cluster: missing, path: "/x/{ghost}" } }
  - name: c
    match: { path: "/c" }
    handler: { redirect: { location: "/{who}" } }
"#,
    );
    assert!(!ok);
    let lines: Vec<&str> = stderr.lines().collect();
    let expected = [
        "FILE:6:34: handler \"proxy\": cluster \"web\" hashes on a key this route cannot build",
        "FILE:7:11: duplicate route name \"a\" (first defined on line 4)",
        "FILE:9:15: unknown filter \"nope\"",
        "FILE:9:45: filter \"rate_limit\": invalid rate \"lots\"",
        "FILE:10:34: handler \"proxy\": unknown cluster \"missing\"",
        "FILE:13:38: handler \"redirect\": template \"/{who}\" uses {who}",
    ];
    for e in expected {
        assert!(
            lines.iter().any(|l| l.starts_with(e)),
            "missing {e:?} in:\n{stderr}"
        );
    }
    assert_eq!(lines.len(), expected.len(), "{stderr}");
}

#[test]
fn check_reports_too_many_skipped_bit_planes_at_their_value() {
    let (ok, _, stderr) = check(
        r#"origins:
  m: { dir: "/tmp" }
routes:
  - name: small
    match: { path: "/s/{image}/{iiif*}" }
    handler: { byte_range: { origin: m, key: "{image}", skip_last_bit_planes: 4 } }
"#,
    );
    assert!(!ok);
    // Line 6, column 79: the value of `skip_last_bit_planes`.
    assert!(
        stderr.starts_with("FILE:6:79: handler \"byte_range\": must be at most 3"),
        "{stderr}"
    );
}

#[test]
fn check_reports_unknown_keys_and_bad_values() {
    let (ok, _, stderr) = check("listen:\n  - address: \"127.0.0.1:80\"\n    tls_cert: x\n");
    assert!(!ok);
    assert!(
        stderr.starts_with("FILE:3:5: listen[0]: unknown field `tls_cert`"),
        "{stderr}"
    );
    let (ok, _, stderr) = check("listen:\n  - address: \"nowhere\"\n");
    assert!(!ok);
    assert!(
        stderr.starts_with("FILE:2:14: \"nowhere\" is not an ip:port address"),
        "{stderr}"
    );
    let (ok, _, stderr) = check("routes:\n  - name: x\n    match: { path: \"/\" }\n    handler: { respond: { stauts: 200 } }\n");
    assert!(!ok);
    assert!(
        stderr.contains("FILE:4:35: handler \"respond\": unknown field `stauts`"),
        "{stderr}"
    );
}

#[test]
fn schema_is_json_schema_with_every_plugin() {
    let out = Command::new(tessera_bin()).arg("schema").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["$schema"].as_str().unwrap().contains("json-schema.org"));
    let filters = v["$defs"]["FilterSpec"]["oneOf"].to_string();
    for name in ["cors", "headers", "rate_limit", "ip_filter"] {
        assert!(filters.contains(name), "{name} missing from {filters}");
    }
    let handlers = v["$defs"]["HandlerSpec"]["oneOf"].to_string();
    for name in ["proxy", "redirect", "respond"] {
        assert!(handlers.contains(name), "{name} missing");
    }
    assert!(v["properties"]["routes"].is_object());
}

#[test]
fn schema_has_the_image_applications_sections_and_handlers() {
    let out = Command::new(tessera_bin()).arg("schema").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for section in ["origins", "hot_cache", "image_index"] {
        assert!(
            !v["properties"][section].is_null(),
            "{section} missing from the schema's properties"
        );
    }
    assert_eq!(v["additionalProperties"], false);
    let handlers = v["$defs"]["HandlerSpec"]["oneOf"].to_string();
    for name in ["orchestrate", "byte_range", "info", "render", "thumbs"] {
        assert!(handlers.contains(name), "{name} missing");
    }
    assert!(v["$defs"]["FilterSpec"]["oneOf"]
        .to_string()
        .contains("auth"));
}

#[test]
fn version_is_printed() {
    let out = Command::new(tessera_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tessera "));
}

#[test]
fn repository_proxy_yaml_checks() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proxy.yaml");
    let out = Command::new(tessera_bin())
        .args(["check", path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_refuses_unsafe_settings() {
    let (ok, _, stderr) = check(
        r#"clusters:
  web: { endpoints: ["127.0.0.1:9"], health_check: { path: "health" } }
  ok: { endpoints: ["127.0.0.1:9"] }
routes:
  - name: a
    match: { path: "/a" }
    filters: [{ cors: { allow_credentials: true } }, { headers: { response: { set: { content-length: "1" } } } }]
    handler: { respond: { headers: { transfer-encoding: chunked } } }
  - name: b
    match: { path: "/b/{x}" }
    handler: { proxy: { cluster: ok, path: "{x}" } }
"#,
    );
    assert!(!ok);
    for needle in [
        "health_check.path \"health\" must be a path starting with '/'",
        "filter \"cors\": allow_credentials needs an explicit allow_origins list",
        "filter \"headers\": \"content-length\" frames the message",
        "handler \"respond\": \"transfer-encoding\" is not a header name this handler may set",
        "handler \"proxy\": the rewritten path must start with '/'",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

/// The example configs in the repository are valid, and checking one never touches its hot
/// cache directory. The fleet example reads its address and secret from the environment, as
/// it says.
#[test]
fn the_example_configs_pass_check() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let out = Command::new(tessera_bin())
            .env("POD_IP", "10.0.0.11")
            .env("TESSERA_FLEET_SECRET", "an example secret of 32 bytes!!!")
            .arg("check")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        seen += 1;
    }
    assert!(seen >= 1);
    assert!(!std::path::Path::new("/var/cache/tessera/objects").exists());
}

/// The embedded default (the repository's proxy.yaml) serves its sample image through info,
/// byte_range and render. Ports and the hot cache are moved aside so the test runs anywhere.
#[test]
fn the_embedded_default_serves_the_sample_image() {
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&embedded_default(cache.path()));
    let info = t.get("/iiif/sample/info.json");
    assert_eq!(info.status, 200, "{}", info.text());
    let json: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(
        (json["width"].as_u64(), json["height"].as_u64()),
        (Some(2048), Some(1536))
    );
    for path in [
        "/iiif/sample/full/!400,400/0/default.jpg",
        "/iiif/sample/512,512,512,512/256,/0/default.jpg",
        "/iiif/sample/full/200,/90/gray.png",
    ] {
        let r = t.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    assert_eq!(t.get("/iiif/sample").status, 303);
    assert_eq!(
        t.metric(
            "tessera_byte_range_requests_total",
            &[("outcome", "served")]
        ),
        2.0
    );
}

/// An address another process holds: `tessera run` says which and exits non-zero at once,
/// instead of staying up, serving nothing, with `/readyz` saying ready. Start-up errors are
/// printed once.
#[test]
fn a_listener_that_cannot_bind_stops_the_start() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(
        &path,
        format!("listen: [{{ address: \"127.0.0.1:{port}\" }}]\nadmin: {{ address: \"127.0.0.1:{admin}\" }}\nroutes: []\n"),
    )
    .unwrap();
    let run = || {
        Command::new(tessera_bin())
            .args(["run", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let started = std::time::Instant::now();
    let out = run();
    assert!(!out.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("listener 127.0.0.1:{port}: cannot listen")),
        "{stderr}"
    );

    // A config error at start, once.
    std::fs::write(&path, "listen: [{ address: \"nowhere\" }]\n").unwrap();
    let out = run();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("is not an ip:port address").count(),
        1,
        "{stderr}"
    );
    drop(held);
}

#[test]
fn check_refuses_admin_and_listen_on_one_address() {
    let (ok, _, stderr) = check(
        "listen: [{ address: \"127.0.0.1:18080\" }]\nadmin: { address: \"127.0.0.1:18080\" }\n",
    );
    assert!(!ok);
    assert!(
        stderr.contains("FILE:2:")
            && stderr.contains("127.0.0.1:18080 is already used by another listener"),
        "{stderr}"
    );
}

/// `tessera run --listen` serves the config's routes on the address given instead of the
/// config's own; a malformed address is refused before anything starts.
#[test]
fn run_listen_overrides_the_config_s_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    let (configured, given) = (free_port(), free_port());
    std::fs::write(
        &path,
        format!("listen: [{{ address: \"127.0.0.1:{configured}\" }}]\nroutes:\n  - name: hi\n    match: {{ path: \"/\" }}\n    handler: {{ respond: {{ body: \"hi\" }} }}\n"),
    )
    .unwrap();
    let mut child = Command::new(tessera_bin())
        .args(["run", "--config"])
        .arg(&path)
        .args(["--listen", &format!("127.0.0.1:{given}")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = eventually(20, || {
        std::net::TcpStream::connect(("127.0.0.1", given)).is_ok()
    });
    let configured_open = std::net::TcpStream::connect(("127.0.0.1", configured)).is_ok();
    let answer = up.then(|| get("/").send(given).text());
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "nothing listens on the --listen address");
    assert_eq!(answer.as_deref(), Some("hi"));
    assert!(!configured_open, "the config's own address was bound too");

    let out = Command::new(tessera_bin())
        .args(["run", "--config"])
        .arg(&path)
        .args(["--listen", "nowhere"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen \"nowhere\""));
}
