//! A real iipsrv on a free port, serving a JP2 made with opj_compress.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const IIPSRV: &str = "/usr/lib/iipimage-server/iipsrv.fcgi";

/// The iipsrv child is killed when this is dropped.
pub struct Iipsrv {
    child: Child,
    pub addr: SocketAddr,
    pub jp2: PathBuf,
    dir: TempDir,
}

impl Iipsrv {
    pub fn start() -> Self {
        assert!(
            Path::new(IIPSRV).exists(),
            "{IIPSRV} is missing: apt-get install iipimage-server"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let jp2 = make_jp2(dir.path());
        let addr = free_addr();
        let child = Command::new(IIPSRV)
            .args(["--bind", &addr.to_string(), "--backlog", "1024"])
            .env("VERBOSITY", "1")
            .env("LOGFILE", dir.path().join("iipsrv.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {IIPSRV}: {e}"));
        let mut server = Iipsrv {
            child,
            addr,
            jp2,
            dir,
        };
        server.wait_until_listening();
        server
    }

    /// The `IIIF=` query for a path under the JP2 (e.g. `info.json`).
    pub fn iiif_query(&self, suffix: &str) -> String {
        format!("IIIF={}/{suffix}", self.jp2.display())
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("iipsrv exited with {status}; log: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "iipsrv did not listen on {} within 10 s",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("iipsrv.log")).unwrap_or_default()
    }
}

impl Drop for Iipsrv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (right now).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// A 600x400 RGB gradient, tiled 256x256, RPCL, 4 resolutions.
fn make_jp2(dir: &Path) -> PathBuf {
    let (w, h) = (600u32, 400u32);
    let mut ppm = format!("P6\n{w} {h}\n255\n").into_bytes();
    for y in 0..h {
        for x in 0..w {
            ppm.extend_from_slice(&[(x * 255 / (w - 1)) as u8, (y * 255 / (h - 1)) as u8, 128]);
        }
    }
    let (input, output) = (dir.join("in.ppm"), dir.join("out.jp2"));
    std::fs::write(&input, ppm).expect("write ppm");
    let result = Command::new("opj_compress")
        .arg("-i")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .args(["-t", "256,256", "-p", "RPCL", "-n", "4"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run opj_compress ({e}): apt-get install libopenjp2-tools")
        });
    assert!(
        result.status.success() && output.exists(),
        "opj_compress failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    output
}
