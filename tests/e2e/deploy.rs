//! The files under `deploy/` are checked by the tools that read them: the systemd unit by
//! `systemd-analyze verify` (with its `ExecStart` pointed at the binary under test, which is
//! what verify requires to exist), and `tessera run --pid-file`, which the unit uses.

use crate::harness::*;
use std::process::Command;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(format!("{REPO}/deploy/systemd/tessera.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/tessera run"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/tessera", tessera_bin())).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (Debian's systemd package)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_writes_its_pid_file_and_removes_it_on_a_clean_exit() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("tessera.pid");
    let (port, admin) = (free_port(), free_port());
    let config = dir.path().join("proxy.yaml");
    let yaml = format!(
        "listen: [{{ address: \"127.0.0.1:{port}\" }}]\nadmin: {{ address: \"127.0.0.1:{admin}\" }}\n"
    );
    std::fs::write(&config, yaml).unwrap();
    let mut child = Command::new(tessera_bin())
        .args(["run", "--config"])
        .arg(&config)
        .arg("--pid-file")
        .arg(&pid_file)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(20, || std::net::TcpStream::connect((
        "127.0.0.1",
        port
    ))
    .is_ok()));
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(pid.trim(), child.id().to_string());
    let status = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit}");
    assert!(!pid_file.exists(), "the pid file outlived the process");
}
