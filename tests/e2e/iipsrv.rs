//! The real image server for the tests: Debian's `iipsrv.fcgi` (FastCGI, one connection at a
//! time), and nginx in front of it for clusters that speak HTTP.

use crate::harness::free_port;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const IIPSRV: &str = "/usr/lib/iipimage-server/iipsrv.fcgi";

/// A running process, killed when dropped.
pub struct Process {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not start listening on port {port}");
}

/// Start one iipsrv process on a free port.
pub fn start_iipsrv() -> Process {
    assert!(
        Path::new(IIPSRV).exists(),
        "{IIPSRV} is missing: install Debian's iipimage-server (scripts/deps.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(IIPSRV)
        .args(["--bind", &format!("127.0.0.1:{port}"), "--backlog", "1024"])
        .env("LOGFILE", dir.path().join("iipsrv.log"))
        .env("VERBOSITY", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start iipsrv");
    wait_for_port(port, "iipsrv");
    Process {
        port,
        child,
        _dir: dir,
    }
}

/// Start nginx serving `/fcgi-bin/iipsrv.fcgi` from the iipsrv at `fcgi_port`.
pub fn start_nginx_front(fcgi_port: u16) -> Process {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  fastcgi_temp_path {d}/fastcgi;
  proxy_temp_path {d}/proxy;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location /fcgi-bin/iipsrv.fcgi {{
      fastcgi_pass 127.0.0.1:{fcgi_port};
      fastcgi_param QUERY_STRING $query_string;
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param REQUEST_URI $request_uri;
      fastcgi_param SERVER_NAME $server_name;
      fastcgi_param SERVER_PORT $server_port;
      fastcgi_param HTTP_HOST $http_host;
    }}
  }}
}}
"#
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx (install Debian's nginx-light; scripts/deps.sh does)");
    wait_for_port(port, "nginx");
    Process {
        port,
        child,
        _dir: dir,
    }
}

/// Ask iipsrv directly (FastCGI, no Tessera) for `IIIF={file}/{iiif}`: the reference answer.
pub fn direct(fcgi_port: u16, file: &Path, iiif: &str) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let headers = http::HeaderMap::new();
    let query = format!("IIIF={}/{iiif}", file.display());
    let req = tessera_fastcgi::FastCgiRequest {
        method: "GET",
        script_name: "/fcgi-bin/iipsrv.fcgi",
        query_string: &query,
        server_name: "localhost",
        server_port: 80,
        remote_addr: None,
        headers: &headers,
    };
    let timeouts = tessera_fastcgi::Timeouts {
        connect: Duration::from_secs(2),
        read: Duration::from_secs(30),
        total: None,
    };
    let addr = format!("127.0.0.1:{fcgi_port}").parse().unwrap();
    let resp = rt
        .block_on(tessera_fastcgi::request(addr, &req, &timeouts, 64 << 20))
        .expect("iipsrv answers directly");
    (resp.status.as_u16(), resp.body.to_vec())
}
