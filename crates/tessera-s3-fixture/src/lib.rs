#![forbid(unsafe_code)]
//! A real S3 server for tests and benchmarks: s3s-fs (objects are plain files under
//! `root/bucket/key`), served in the caller's process so that it can see every request that
//! reaches it, slow a GET down, or cut a response body short the way a failing connection would.
//!
//! The tests use it as a library; `bench/` runs the `tessera-s3-fixture` binary.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

pub const BUCKET: &str = "images";
pub const ACCESS_KEY: &str = "tessera-test";
pub const SECRET_KEY: &str = "tessera-test-secret";

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    /// `/bucket/key` (path-style).
    pub path: String,
    pub range: Option<String>,
}

#[derive(Default)]
struct Faults {
    /// GETs of these paths fail after this many body bytes.
    cut_after: HashMap<String, u64>,
    /// GETs of these paths wait this long before answering.
    delay: HashMap<String, Duration>,
    /// GETs of these paths send this many body bytes, then nothing, without closing.
    stall_after: HashMap<String, u64>,
    /// GETs of these paths send their body in chunks of this many bytes, one per interval.
    trickle: HashMap<String, (usize, Duration)>,
    /// The next this-many GETs (and HEADs) of these paths answer 503 SlowDown.
    unavailable: HashMap<String, usize>,
    /// Every request waits this long before it is answered: an object store's first-byte
    /// latency, for benchmarks (S3 in the same region: some 10–30 ms).
    latency: Option<Duration>,
}

pub struct S3Server {
    pub port: u16,
    root: tempfile::TempDir,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    faults: Arc<Mutex<Faults>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// A response body with faults: an error after `left` bytes, a stall after `stall_after`
/// bytes (the connection stays open, silent), or a trickle of small chunks.
struct FaultBody {
    inner: s3s::Body,
    left: Option<u64>,
    stall_after: Option<u64>,
    trickle: Option<(usize, Duration)>,
    /// Bytes taken from `inner`, not yet sent.
    pending: Bytes,
    sent: u64,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl FaultBody {
    fn new(
        inner: s3s::Body,
        left: Option<u64>,
        stall_after: Option<u64>,
        trickle: Option<(usize, Duration)>,
    ) -> Self {
        Self {
            inner,
            left,
            stall_after,
            trickle,
            pending: Bytes::new(),
            sent: 0,
            timer: None,
        }
    }
}

impl Body for FaultBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.pending.is_empty() {
            if self.left == Some(0) {
                return Poll::Ready(Some(Err("connection cut by the test".into())));
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(mut data) => {
                        if let Some(left) = self.left {
                            let n = (data.len() as u64).min(left);
                            self.left = Some(left - n);
                            data.truncate(n as usize);
                        }
                        self.pending = data;
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.to_string().into()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        let mut most = self.pending.len();
        if let Some(stall) = self.stall_after {
            let room = stall.saturating_sub(self.sent) as usize;
            if room == 0 {
                // Hold the connection open and send nothing more.
                return Poll::Pending;
            }
            most = most.min(room);
        }
        if let Some((chunk, every)) = self.trickle {
            if let Some(timer) = self.timer.as_mut() {
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            self.timer = Some(Box::pin(tokio::time::sleep(every)));
            most = most.min(chunk.max(1));
        }
        let data = self.pending.split_to(most);
        self.sent += data.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl S3Server {
    /// Start on a free loopback port, storing objects in a new temporary directory.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Start on `port` (0: any free one).
    pub fn start_on(port: u16) -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(BUCKET)).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let (seen2, faults2) = (seen.clone(), faults.clone());
        runtime.spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                // As S3 does: without it, small responses wait for delayed ACKs (~40 ms each).
                let _ = socket.set_nodelay(true);
                let (service, seen, faults) = (service.clone(), seen2.clone(), faults2.clone());
                let handler = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let (service, seen, faults) = (service.clone(), seen.clone(), faults.clone());
                    async move {
                        let path = req.uri().path().to_string();
                        let method = req.method().to_string();
                        seen.lock().unwrap().push(SeenRequest {
                            method: method.clone(),
                            path: path.clone(),
                            range: req
                                .headers()
                                .get("range")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string),
                        });
                        let refuse = {
                            let mut f = faults.lock().unwrap();
                            match f.unavailable.get_mut(&path) {
                                Some(left) if *left > 0 => {
                                    *left -= 1;
                                    true
                                }
                                _ => false,
                            }
                        };
                        if refuse {
                            let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>injected by the test</Message><Resource>{path}</Resource></Error>");
                            let resp = http::Response::builder()
                                .status(503)
                                .header("content-type", "application/xml")
                                .body(FaultBody::new(s3s::Body::from(body), None, None, None))
                                .expect("a valid response");
                            return Ok::<_, s3s::HttpError>(resp);
                        }
                        let (latency, (delay, cut, stall, trickle)) = {
                            let f = faults.lock().unwrap();
                            let on_gets = if method == "GET" {
                                (
                                    f.delay.get(&path).copied(),
                                    f.cut_after.get(&path).copied(),
                                    f.stall_after.get(&path).copied(),
                                    f.trickle.get(&path).copied(),
                                )
                            } else {
                                (None, None, None, None)
                            };
                            (f.latency, on_gets)
                        };
                        if let Some(d) = latency {
                            tokio::time::sleep(d).await;
                        }
                        if let Some(d) = delay {
                            tokio::time::sleep(d).await;
                        }
                        let resp = service.call(req.map(s3s::Body::from)).await?;
                        Ok::<_, s3s::HttpError>(
                            resp.map(|b| FaultBody::new(b, cut, stall, trickle)),
                        )
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), handler)
                        .await;
                });
            }
        });
        Self {
            port,
            root,
            seen,
            faults,
            runtime: Some(runtime),
        }
    }

    /// Store a copy of a local file, with its ETag recorded beside it as a PUT would: without
    /// it s3s-fs hashes the whole file on every HEAD and GET, which makes ranged reads of a
    /// large object slow.
    pub fn put_file(&self, key: &str, file: &Path) {
        use md5::Digest;
        let path = self.object_path(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let bytes = std::fs::read(file).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let digest = md5::Md5::digest(&bytes);
        let etag: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let encode = |s: &str| base64_simd::URL_SAFE_NO_PAD.encode_to_string(s);
        // s3s-fs 0.14's layout for an object's internal info (fs.rs, get_internal_info_path).
        let info = self.root.path().join(format!(
            ".bucket-{}.object-{}.internal.json",
            encode(BUCKET),
            encode(key)
        ));
        std::fs::write(info, format!("{{\"e_tag\":\"{etag}\"}}")).unwrap();
    }

    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// Requests seen so far for `key` (any method).
    pub fn requests_for(&self, key: &str) -> Vec<SeenRequest> {
        let path = format!("/{BUCKET}/{key}");
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// GETs seen so far for `key`.
    pub fn gets_for(&self, key: &str) -> Vec<SeenRequest> {
        self.requests_for(key)
            .into_iter()
            .filter(|r| r.method == "GET")
            .collect()
    }

    pub fn all_requests(&self) -> Vec<SeenRequest> {
        self.requests_since(0)
    }

    /// Requests seen after the first `seen` of them (a poller's cursor: it copies only what is
    /// new, however many requests the server has answered).
    pub fn requests_since(&self, seen: usize) -> Vec<SeenRequest> {
        let all = self.seen.lock().unwrap();
        all.get(seen..).unwrap_or_default().to_vec()
    }

    /// Cut GET bodies of `key` after `bytes` (`None` heals it).
    pub fn cut_after(&self, key: &str, bytes: Option<u64>) {
        let path = format!("/{BUCKET}/{key}");
        let mut f = self.faults.lock().unwrap();
        match bytes {
            Some(n) => f.cut_after.insert(path, n),
            None => f.cut_after.remove(&path),
        };
    }

    /// GETs of `key` send `bytes` of the body, then nothing more, holding the connection open.
    pub fn stall_after(&self, key: &str, bytes: u64) {
        let path = format!("/{BUCKET}/{key}");
        self.faults.lock().unwrap().stall_after.insert(path, bytes);
    }

    /// GETs of `key` send their body `chunk` bytes at a time, one chunk per `every`.
    pub fn trickle(&self, key: &str, chunk: usize, every: Duration) {
        let path = format!("/{BUCKET}/{key}");
        self.faults
            .lock()
            .unwrap()
            .trickle
            .insert(path, (chunk, every));
    }

    /// The next `times` GETs and HEADs of `key` answer 503 SlowDown (a storm of them, as S3
    /// sends when a prefix is overloaded).
    pub fn unavailable(&self, key: &str, times: usize) {
        let path = format!("/{BUCKET}/{key}");
        self.faults.lock().unwrap().unavailable.insert(path, times);
    }

    /// Take every fault off `key`: its GETs answer normally again.
    pub fn heal(&self, key: &str) {
        let path = format!("/{BUCKET}/{key}");
        let mut f = self.faults.lock().unwrap();
        f.cut_after.remove(&path);
        f.delay.remove(&path);
        f.stall_after.remove(&path);
        f.trickle.remove(&path);
        f.unavailable.remove(&path);
    }

    /// Hold GETs of `key` this long before answering.
    pub fn delay(&self, key: &str, by: Duration) {
        let path = format!("/{BUCKET}/{key}");
        self.faults.lock().unwrap().delay.insert(path, by);
    }

    /// Hold every request this long before answering it (`None`: answer at once).
    pub fn latency(&self, by: Option<Duration>) {
        self.faults.lock().unwrap().latency = by;
    }

    /// The `origins:` entry for this server, named `name`.
    pub fn origin_yaml(&self, name: &str) -> String {
        format!(
            "  {name}: {{ s3: {{ bucket: {BUCKET}, endpoint: \"http://127.0.0.1:{}\", path_style: true }} }}\n",
            self.port
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
