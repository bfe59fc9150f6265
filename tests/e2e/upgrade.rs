//! A zero-downtime upgrade: a new process started with `--upgrade` takes the listening sockets
//! over from the running one when it gets SIGQUIT, under a steady load: no connection refused,
//! no request failed, and the old process finishes its requests and exits.

use crate::harness::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// One request on a new connection: `Err` with what went wrong, never a panic.
fn ask(port: u16) -> Result<(), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(b"GET /hi HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    if text.starts_with("HTTP/1.1 200") && text.ends_with("hi") {
        Ok(())
    } else {
        Err(format!("answer: {text:?}"))
    }
}

/// A Tessera answering `/hi` that hands its sockets over on `sock` when it gets SIGQUIT, and
/// serves what it accepted for `grace` after.
fn start_handing_over(sock: &Path, grace: &str) -> Tessera {
    Tessera::start(&format!(
        r#"
server: {{ upgrade_sock: "{}", shutdown_grace: {grace} }}
routes:
  - name: hi
    match: {{ path: "/hi" }}
    handler: {{ respond: {{ body: "hi" }} }}
"#,
        sock.display()
    ))
}

/// A new process with `old`'s config, waiting on `sock` for its sockets.
fn start_successor(old: &Tessera, sock: &Path) -> Child {
    let new = Command::new(tessera_bin())
        .args(["run", "--upgrade", "--config"])
        .arg(&old.config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(10, || sock.exists()),
        "the new process is not waiting"
    );
    new
}

/// SIGQUIT: hand the sockets over.
fn hand_over(old: &Tessera) {
    let quit = Command::new("kill")
        .args(["-QUIT", &old.pid().to_string()])
        .status()
        .unwrap();
    assert!(quit.success());
}

#[test]
fn a_new_process_takes_the_sockets_over_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("upgrade.sock");
    let mut old = start_handing_over(&sock, "2s");
    let (stop, served) = (AtomicBool::new(false), AtomicUsize::new(0));
    let failures = std::thread::scope(|scope| {
        let load: Vec<_> = (0..4)
            .map(|_| {
                let (stop, served, port) = (&stop, &served, old.port);
                scope.spawn(move || {
                    let mut failed = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        match ask(port) {
                            Ok(()) => {
                                served.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => failed.push(e),
                        }
                    }
                    failed
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut new = start_successor(&old, &sock);
        let before = served.load(Ordering::SeqCst);
        hand_over(&old);
        assert!(
            eventually(15, || old.exited()),
            "the old process did not exit"
        );
        // Served by the new process alone now.
        let handed_over = served.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::SeqCst);
        let failures: Vec<String> = load.into_iter().flat_map(|h| h.join().unwrap()).collect();
        assert!(
            before > 0 && served.load(Ordering::SeqCst) > handed_over,
            "no load ran"
        );
        assert!(
            matches!(new.try_wait(), Ok(None)),
            "the new process is not running"
        );
        let _ = new.kill();
        let _ = new.wait();
        failures
    });
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

/// A connection the old process accepted before the handover whose request comes only after
/// the old process stopped accepting (a browser's preconnected socket, a client slow to send
/// or starved of CPU) is still answered, by the process that accepted it.
#[test]
fn a_connection_accepted_before_the_handover_is_answered_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("upgrade.sock");
    let mut old = start_handing_over(&sock, "5s");
    let mut early = TcpStream::connect(("127.0.0.1", old.port)).unwrap();
    early.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut new = start_successor(&old, &sock);
    hand_over(&old);
    assert!(
        eventually(15, || old.log().contains("shutdown started")),
        "the old process did not start its shutdown: {}",
        old.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    early
        .write_all(b"GET /hi HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let read = early.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let _ = new.kill();
    let _ = new.wait();
    assert!(
        read.is_ok() && text.starts_with("HTTP/1.1 200") && text.ends_with("hi"),
        "{read:?}: {text:?}"
    );
    assert!(
        eventually(15, || old.exited()),
        "the old process did not exit"
    );
}
