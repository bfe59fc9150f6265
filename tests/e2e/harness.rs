//! What the end-to-end tests run against: the real `tessera` binary in its own process, real
//! HTTP backends on loopback sockets, and a plain HTTP/1.1 client that can also send requests
//! a library client would refuse to (oversized or malformed).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A free loopback port (bound then released), never one handed out before in this process: the kernel can give
/// the same port to two tests that ask at once (seen as "already used by another listener").
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

pub fn tessera_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tessera")
}

// ---------------------------------------------------------------------------------------------
// Client

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, Vec<String>>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(String::as_str)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The backend echo's JSON body.
    pub fn echo(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not an echo body ({e}): {}", self.text()))
    }
}

/// Send raw bytes and read the whole answer (the request should say `Connection: close`).
pub fn send_raw(port: u16, raw: &[u8]) -> Response {
    send_raw_to(std::net::Ipv4Addr::LOCALHOST.into(), port, raw)
}

/// [`send_raw`] to another loopback address (`127.0.0.2`, …).
pub fn send_raw_to(ip: std::net::IpAddr, port: u16, raw: &[u8]) -> Response {
    let mut s = TcpStream::connect((ip, port)).expect("connect to tessera");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Response {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response header in {:?}",
                String::from_utf8_lossy(buf)
            )
        });
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            headers
                .entry(k.trim().to_ascii_lowercase())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    let mut body = buf[end + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.iter().any(|x| x.contains("chunked")))
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]).into_owned();
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// A request builder for the tests.
pub struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

pub fn get(path: &str) -> Req {
    Req {
        method: "GET".into(),
        path: path.into(),
        headers: vec![],
        body: vec![],
    }
}

pub fn request(method: &str, path: &str) -> Req {
    Req {
        method: method.into(),
        path: path.into(),
        headers: vec![],
        body: vec![],
    }
}

impl Req {
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn body(mut self, body: &[u8]) -> Self {
        self.headers
            .push(("Content-Length".into(), body.len().to_string()));
        self.body = body.to_vec();
        self
    }
    pub fn send(self, port: u16) -> Response {
        self.send_to(std::net::Ipv4Addr::LOCALHOST.into(), port)
    }

    /// [`Req::send`] to another loopback address.
    pub fn send_to(self, ip: std::net::IpAddr, port: u16) -> Response {
        let has_host = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"));
        let mut raw = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        if !has_host {
            raw.push_str("Host: localhost\r\n");
        }
        for (k, v) in &self.headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("Connection: close\r\n\r\n");
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(&self.body);
        send_raw_to(ip, port, &bytes)
    }
}

// ---------------------------------------------------------------------------------------------
// Backends

/// A real HTTP/1.1 server on a loopback port. It answers every request with a JSON echo of what
/// it received (its name, method, path, headers), except:
/// `/slow/{ms}` waits before answering; `/status/{code}` answers with that status;
/// `/fail-after/{n}/{code}` answers 200 to the backend's first n requests, then `code`.
pub struct Backend {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Backend {
    pub fn start(name: &str) -> Self {
        Self::start_on(name, 0)
    }

    /// A backend that answers one request per connection and closes the connection when a
    /// second request arrives on it, without answering: what a client sees when a server's
    /// keep-alive timeout fires just as it reuses the connection.
    pub fn start_closing(name: &str) -> Self {
        Self::launch(name, 0, true)
    }

    /// Start on `port` (0 for any), retrying while the port is still being released.
    pub fn start_on(name: &str, port: u16) -> Self {
        Self::launch(name, port, false)
    }

    fn launch(name: &str, port: u16, close_after_response: bool) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("bind backend: {e}"),
            }
        };
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, h, s) = (name.to_string(), hits.clone(), stop.clone());
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (n, h, s) = (n.clone(), h.clone(), s.clone());
                thread::spawn(move || serve_connection(conn, &n, &h, &s, close_after_response));
            }
        });
        Self {
            port,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stop listening; the port refuses connections afterwards.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_connection(
    conn: TcpStream,
    name: &str,
    hits: &AtomicUsize,
    stop: &AtomicBool,
    close_after_response: bool,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    let mut served = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || stop.load(Ordering::SeqCst) {
            return;
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = serde_json::Map::new();
        let mut content_length = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                if k == "content-length" {
                    content_length = v.parse().unwrap_or(0);
                }
                if k == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
                headers.insert(k, serde_json::Value::String(v));
            }
        }
        if close_after_response && served > 0 {
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
        served += 1;
        let mut body = vec![0u8; content_length];
        let _ = reader.read_exact(&mut body);
        hits.fetch_add(1, Ordering::SeqCst);

        let mut status = 200u16;
        if let Some(ms) = target.strip_prefix("/slow/") {
            thread::sleep(Duration::from_millis(ms.parse().unwrap_or(1000)));
        }
        if let Some(code) = target.strip_prefix("/status/") {
            status = code.parse().unwrap_or(500);
        }
        // `/fail-after/{n}/{code}`: 200 for the backend's first n requests, then `code`.
        if let Some((n, code)) = target
            .strip_prefix("/fail-after/")
            .and_then(|rest| rest.split_once('/'))
        {
            if hits.load(Ordering::SeqCst) > n.parse().unwrap_or(0) {
                status = code.parse().unwrap_or(500);
            }
        }
        let echo = serde_json::json!({
            "backend": name, "method": method, "path": target, "headers": headers,
            "body": String::from_utf8_lossy(&body),
        });
        let payload = echo.to_string();
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Backend: {name}\r\n\r\n{payload}",
            payload.len()
        );
        if conn.write_all(resp.as_bytes()).is_err() || close {
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tessera

/// A running `tessera run` process. Its config file can be rewritten and reloaded.
pub struct Tessera {
    pub port: u16,
    pub admin: u16,
    /// Holds the config file; removed when the test ends.
    _dir: tempfile::TempDir,
    pub config_path: PathBuf,
    child: Child,
    /// The address it listens on (with `port` and `admin`).
    pub ip: std::net::IpAddr,
    /// Started under a wrapper, in a process group of its own.
    wrapped: bool,
    log: Arc<Mutex<String>>,
}

/// Put the ports into a config template: `{PORT}` and `{ADMIN}` become Tessera's own.
fn fill(template: &str, port: u16, admin: u16) -> String {
    template
        .replace("{PORT}", &port.to_string())
        .replace("{ADMIN}", &admin.to_string())
}

impl Tessera {
    /// Start Tessera with `yaml` and wait until `/readyz` says ready. `{PORT}` and `{ADMIN}` in
    /// the text are replaced with free ports; a `listen:` and `admin:` block are added when the
    /// text has none.
    pub fn start(yaml: &str) -> Self {
        Self::start_under(yaml, &[])
    }

    /// [`Tessera::start`], the process started by `wrapper` (e.g. `strace -f -o FILE`).
    pub fn start_under(yaml: &str, wrapper: &[String]) -> Self {
        let localhost = std::net::Ipv4Addr::LOCALHOST.into();
        Self::launch(yaml, wrapper, localhost, free_port(), free_port())
    }

    /// [`Tessera::start`] listening on `ip` (another loopback address), on the ports given.
    pub fn start_at(yaml: &str, ip: std::net::IpAddr, port: u16, admin: u16) -> Self {
        Self::launch(yaml, &[], ip, port, admin)
    }

    fn launch(yaml: &str, wrapper: &[String], ip: std::net::IpAddr, port: u16, admin: u16) -> Self {
        let mut text = String::new();
        if !yaml.contains("listen:") {
            text.push_str(&format!("listen: [{{ address: \"{ip}:{{PORT}}\" }}]\n"));
        }
        if !yaml.contains("admin:") {
            text.push_str(&format!("admin: {{ address: \"{ip}:{{ADMIN}}\" }}\n"));
        }
        text.push_str(yaml);
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("proxy.yaml");
        std::fs::write(&config_path, fill(&text, port, admin)).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                // A group of its own, so that stopping it stops Tessera too: a killed
                // `strace -f` detaches from its tracee and leaves it running.
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                c.args(args).arg(tessera_bin());
                c
            }
            None => Command::new(tessera_bin()),
        };
        let mut child = command
            .args(["run", "--config"])
            .arg(&config_path)
            .env("TESSERA_LOG", "info")
            // The standard AWS credential chain finds these; the test S3 server checks them.
            .env("AWS_ACCESS_KEY_ID", crate::s3::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", crate::s3::SECRET_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tessera");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let mut t = Self {
            port,
            admin,
            _dir: dir,
            config_path,
            child,
            ip,
            wrapped: !wrapper.is_empty(),
            log,
        };
        t.wait_ready();
        t
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("tessera exited with {status}:\n{}", self.log());
            }
            if TcpStream::connect((self.ip, self.admin)).is_ok()
                && get("/readyz").send_to(self.ip, self.admin).status == 200
            {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("tessera did not become ready:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log contains `needle`.
    pub fn wait_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn get(&self, path: &str) -> Response {
        get(path).send_to(self.ip, self.port)
    }

    pub fn metrics(&self) -> String {
        get("/metrics").send_to(self.ip, self.admin).text()
    }

    /// Sum of the values of every series of `name` whose labels include all of `labels`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics(), name, labels)
    }

    /// Replace the config file (same port substitution as `start`), without signalling.
    pub fn write_config(&self, yaml: &str) {
        let mut text = format!(
            "listen: [{{ address: \"{ip}:{}\" }}]\nadmin: {{ address: \"{ip}:{}\" }}\n",
            self.port,
            self.admin,
            ip = self.ip
        );
        text.push_str(&fill(yaml, self.port, self.admin));
        std::fs::write(&self.config_path, text).unwrap();
    }

    /// Replace the config file and send SIGHUP.
    pub fn reload_with(&self, yaml: &str) {
        self.write_config(yaml);
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Tessera {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Stop the process (as `kill -9` would: no clean-up runs), and under a wrapper the
    /// wrapper's whole process group.
    pub fn kill(&mut self) {
        if self.wrapped {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tessera {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
        {
            total += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    total
}

/// A `clusters:` block: each entry is (name, backends, extra options such as
/// `load_balancing: random`). Append the `routes:` as a plain string, without `format!` escapes.
pub fn clusters(list: &[(&str, &[&Backend], &str)]) -> String {
    let mut out = String::from("clusters:\n");
    for (name, backends, opts) in list {
        let endpoints: Vec<String> = backends
            .iter()
            .map(|b| format!("\"{}\"", b.addr()))
            .collect();
        let extra = if opts.is_empty() {
            String::new()
        } else {
            format!(", {opts}")
        };
        out.push_str(&format!(
            "  {name}: {{ endpoints: [{}]{extra} }}\n",
            endpoints.join(", ")
        ));
    }
    out
}

/// A route table with one route, `r`, that sends every request to the cluster `web`.
pub const PROXY_ALL: &str = r#"
routes:
  - name: r
    match: { path: "/{rest*}" }
    handler: { proxy: { cluster: web } }
"#;

/// Poll `f` until it returns true or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The repository's proxy.yaml (the embedded default), with the test's ports, its sample
/// images found from anywhere, and its hot cache in `cache`.
pub fn embedded_default(cache: &std::path::Path) -> String {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    std::fs::read_to_string(format!("{repo}/proxy.yaml"))
        .unwrap()
        .replace("127.0.0.1:8080", "127.0.0.1:{PORT}")
        .replace("127.0.0.1:9090", "127.0.0.1:{ADMIN}")
        .replace(
            "dir: examples/images",
            &format!("dir: {repo}/examples/images"),
        )
        .replace(
            "dir: target/tessera-default-cache",
            &format!("dir: {}", cache.display()),
        )
}
