//! The example binary runs, knows the filter (check and schema), and the filter works.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera-api-key");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str, extra: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `tessera-api-key check` of `config`.
fn check(config: &std::path::Path) -> std::process::Output {
    Command::new(BIN).arg("check").arg(config).output().unwrap()
}

/// Run the example binary on `config` until it listens on `port`.
fn run(config: &std::path::Path, port: u16) -> std::process::Child {
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the example binary did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn api_key_filter_guards_a_route() {
    let (port, admin) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("tessera-api-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
listen: [{{ address: "127.0.0.1:{port}" }}]
admin: {{ address: "127.0.0.1:{admin}" }}
routes:
  - name: private
    match: {{ path: "/private" }}
    filters: [{{ api_key: {{ keys: ["s3cret"] }} }}]
    handler: {{ respond: {{ body: "welcome" }} }}
"#
        ),
    )
    .unwrap();

    let check = check(&config);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let schema = Command::new(BIN).arg("schema").output().unwrap();
    assert!(String::from_utf8_lossy(&schema.stdout).contains("api_key"));

    let mut child = run(&config, port);
    let denied = get(port, "/private", "");
    let allowed = get(port, "/private", "X-Api-Key: s3cret\r\n");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    assert!(denied.to_ascii_lowercase().contains("x-api-key-checked: 1"));
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    assert!(allowed.ends_with("welcome"), "{allowed}");
}

#[test]
fn bad_filter_config_is_reported_with_its_position() {
    let dir = std::env::temp_dir().join(format!("tessera-api-key-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("proxy.yaml");
    std::fs::write(
        &config,
        "routes:\n  - name: p\n    match: { path: \"/\" }\n    filters: [{ api_key: { keys: [] } }]\n    handler: { respond: {} }\n",
    )
    .unwrap();
    let out = check(&config);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":4:34: filter \"api_key\": give at least one key"),
        "{stderr}"
    );
}

#[test]
fn filters_without_keys_share_the_top_level_api_keys() {
    let (port, admin) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("tessera-api-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
listen: [{{ address: "127.0.0.1:{port}" }}]
admin: {{ address: "127.0.0.1:{admin}" }}
api_keys: {{ keys: ["shared-key"] }}
routes:
  - name: a
    match: {{ path: "/a" }}
    filters: [api_key]
    handler: {{ respond: {{ body: "a" }} }}
  - name: b
    match: {{ path: "/b" }}
    filters: [{{ api_key: {{ keys: ["own-key"] }} }}]
    handler: {{ respond: {{ body: "b" }} }}
"#
        ),
    )
    .unwrap();
    let mut child = run(&config, port);
    let shared_on_a = get(port, "/a", "X-Api-Key: shared-key\r\n");
    let own_on_a = get(port, "/a", "X-Api-Key: own-key\r\n");
    let own_on_b = get(port, "/b", "X-Api-Key: own-key\r\n");
    let shared_on_b = get(port, "/b", "X-Api-Key: shared-key\r\n");
    let _ = child.kill();
    let _ = child.wait();

    // A bare `api_key` with no top-level keys is refused where it is written; a section that
    // is wrong is refused in the section.
    std::fs::write(
        &config,
        "routes:\n  - name: p\n    match: { path: \"/\" }\n    filters: [api_key]\n    handler: { respond: {} }\n",
    )
    .unwrap();
    let bare = check(&config);
    std::fs::write(&config, "api_keys: { keys: [] }\n").unwrap();
    let empty = check(&config);
    let _ = std::fs::remove_dir_all(&dir);

    assert!(shared_on_a.starts_with("HTTP/1.1 200"), "{shared_on_a}");
    assert!(own_on_a.starts_with("HTTP/1.1 401"), "{own_on_a}");
    assert!(own_on_b.starts_with("HTTP/1.1 200"), "{own_on_b}");
    assert!(shared_on_b.starts_with("HTTP/1.1 401"), "{shared_on_b}");
    let stderr = String::from_utf8_lossy(&bare.stderr);
    assert!(!bare.status.success());
    assert!(
        stderr.contains(
            ":4:15: filter \"api_key\": give at least one key, here or in a top-level `api_keys:`"
        ),
        "{stderr}"
    );
    let stderr = String::from_utf8_lossy(&empty.stderr);
    assert!(!empty.status.success());
    assert!(
        stderr.contains(":1:") && stderr.contains("give at least one key"),
        "{stderr}"
    );
}
