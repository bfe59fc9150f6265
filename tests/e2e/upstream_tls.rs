//! HTTPS to upstreams: nginx with a certificate from a CA the test makes, asking for a client
//! certificate. Tessera verifies the server against the CA and the endpoint's name (or `sni`),
//! shows its own certificate, and refuses at load time files that are not what they should be.

use crate::harness::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A CA, a server certificate for 127.0.0.1 to 127.0.0.5 and `upstream.test` and a client
/// certificate signed by it, and a stranger CA, in `dir`; X.509 v3 all (webpki reads no other).
pub fn make_pki(dir: &Path) {
    let script = r#"
set -e
q() { "$@" >/dev/null 2>&1; }
q openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem
q openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=stranger -keyout stranger.key -out stranger.pem
q openssl req -newkey rsa:2048 -nodes -subj /CN=upstream.test -keyout server.key -out server.csr
printf 'subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.4,IP:127.0.0.5,DNS:upstream.test\n' > server.ext
q openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile server.ext -out server.pem
q openssl req -newkey rsa:2048 -nodes -subj /CN=tessera-client -keyout client.key -out client.csr
printf 'extendedKeyUsage=clientAuth\n' > client.ext
q openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile client.ext -out client.pem
printf 'not a certificate\n' > garbage.pem
"#;
    let ok = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .status()
        .expect("sh and openssl run")
        .success();
    assert!(ok, "making the test certificates failed");
}

/// nginx on HTTPS: 200 with the client certificate's subject, 403 without a verified one.
struct Nginx {
    port: u16,
    child: Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(dir: &Path) -> Nginx {
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        r#"daemon off; master_process off; worker_processes 1;
error_log {d}/error.log warn; pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {d}/server.pem;
    ssl_certificate_key {d}/server.key;
    ssl_client_certificate {d}/ca.pem;
    ssl_verify_client optional;
    location / {{
      if ($ssl_client_verify != SUCCESS) {{ return 403 "no client certificate\n"; }}
      return 200 "hello $ssl_client_s_dn\n";
    }}
  }}
}}
"#
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx (scripts/deps.sh installs nginx-light)");
    assert!(
        eventually(10, || std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok()),
        "nginx did not start"
    );
    Nginx { port, child }
}

#[test]
fn upstreams_over_tls_are_verified_and_shown_a_client_certificate() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let nginx = start_nginx(pki.path());
    let (d, port) = (pki.path().display(), nginx.port);
    let cluster = |name: &str, endpoint: &str, tls: &str| {
        format!("  {name}: {{ endpoints: [\"{endpoint}:{port}\"], tls: {{ {tls} }} }}\n")
    };
    let mine = format!("ca: {d}/ca.pem, cert: {d}/client.pem, key: {d}/client.key");
    let mut yaml = String::from("clusters:\n");
    yaml += &cluster("verified", "127.0.0.1", &mine);
    yaml += &cluster("no-client-cert", "127.0.0.1", &format!("ca: {d}/ca.pem"));
    yaml += &cluster("stranger-ca", "127.0.0.1", &format!("ca: {d}/stranger.pem"));
    yaml += &cluster("wrong-name", "localhost", &mine);
    yaml += &cluster("sni", "localhost", &format!("{mine}, sni: upstream.test"));
    yaml += "routes:\n";
    for name in [
        "verified",
        "no-client-cert",
        "stranger-ca",
        "wrong-name",
        "sni",
    ] {
        yaml += &format!(
            "  - {{ name: {name}, match: {{ path: \"/{name}/{{rest*}}\" }}, handler: {{ proxy: {{ cluster: {name} }} }} }}\n"
        );
    }
    let t = Tessera::start(&yaml);

    // First, while no connection to the endpoint is pooled: kept-alive connections are pooled
    // by address, name and client certificate, not by CA, so a cluster with another CA for
    // the same endpoint would reuse one.
    for refused in ["/stranger-ca/x", "/wrong-name/x"] {
        let r = t.get(refused);
        assert_eq!(r.status, 502, "{refused}: {}", r.text());
    }
    assert!(
        t.wait_log("invalid peer certificate: UnknownIssuer"),
        "{}",
        t.log()
    );
    assert!(t.wait_log("certificate not valid for name"), "{}", t.log());
    let r = t.get("/verified/x");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), t.log());
    assert!(r.text().contains("CN=tessera-client"), "{}", r.text());
    let r = t.get("/sni/x");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = t.get("/no-client-cert/x");
    assert_eq!(r.status, 403, "{}", r.text());
}

#[test]
fn tls_files_that_are_wrong_are_refused_at_their_key() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let d = pki.path().display();
    for (tls, says) in [
        (format!("ca: {d}/missing.pem"), "tls.ca"),
        (format!("ca: {d}/garbage.pem"), "holds no PEM certificate"),
        (format!("cert: {d}/client.pem"), "tls.key"),
        (
            format!("cert: {d}/client.pem, key: {d}/garbage.pem"),
            "tls.key",
        ),
    ] {
        let config = pki.path().join("proxy.yaml");
        std::fs::write(
            &config,
            format!("clusters:\n  web:\n    endpoints: [\"127.0.0.1:1\"]\n    tls: {{ {tls} }}\n"),
        )
        .unwrap();
        let out = Command::new(tessera_bin())
            .arg("check")
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{tls}: accepted");
        assert!(stderr.contains(says), "{tls}: {stderr}");
        assert!(
            stderr.contains("proxy.yaml:3:"),
            "{tls}: not placed: {stderr}"
        );
    }
}
