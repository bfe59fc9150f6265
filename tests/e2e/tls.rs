//! HTTPS with HTTP/1.1 and HTTP/2 (ALPN), and cleartext HTTP/2, checked with curl.

use crate::harness::*;
use std::process::Command;

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tls_listener_speaks_http1_and_h2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let web = Backend::start("web");
    let tls_port = free_port();
    let t = Tessera::start(&format!(
        r#"
listen:
  - address: "127.0.0.1:{{PORT}}"
    h2c: true
  - address: "127.0.0.1:{tls_port}"
    tls: {{ cert: "{}", key: "{}" }}
clusters:
  web: {{ endpoints: ["{}"] }}
routes:
  - name: hello
    match: {{ path: "/hello" }}
    handler: {{ respond: {{ body: "hello" }} }}
  - name: proxied
    match: {{ host: ["localhost"], path: "/proxied/{{rest*}}" }}
    handler: {{ proxy: {{ cluster: web }} }}
"#,
        cert.display(),
        key.display(),
        web.addr()
    ));
    let url = format!("https://localhost:{tls_port}/hello");
    let out = curl(&["-k", "--http1.1", "-w", " %{http_version}", &url]);
    assert_eq!(out, "hello 1.1");
    let out = curl(&["-k", "--http2", "-w", " %{http_version}", &url]);
    assert_eq!(out, "hello 2");
    let out = curl(&[
        "--http2-prior-knowledge",
        "-w",
        " %{http_version}",
        &format!("http://127.0.0.1:{}/hello", t.port),
    ]);
    assert_eq!(out, "hello 2");
    let out = curl(&[
        "--http1.1",
        "-w",
        " %{http_version}",
        &format!("http://127.0.0.1:{}/hello", t.port),
    ]);
    assert_eq!(out, "hello 1.1");

    // HTTP/2 from the client, HTTP/1.1 to the upstream; the host match uses :authority.
    let out = curl(&[
        "-k",
        "--http2",
        &format!("https://localhost:{tls_port}/proxied/a?b=c"),
    ]);
    let echo: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(echo["path"], "/proxied/a?b=c");
    assert_eq!(
        echo["headers"]["host"].as_str().unwrap().split(':').next(),
        Some("localhost")
    );
}
