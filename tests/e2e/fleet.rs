//! A fleet of three Tessera processes on 127.0.0.2–4 in front of one S3 server: each image is
//! copied once for the whole fleet, every node's answer is the single node's, a killed owner
//! costs no request, and a forged hop mark changes nothing.

use crate::harness::*;
use crate::images::jp2_with;
use crate::s3::S3Server;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

const TILE: &str = "0,0,256,256/256,/0/default.jpg";

/// The nodes' addresses: three loopback addresses, one port each for traffic and admin.
struct Addresses {
    ips: Vec<IpAddr>,
    port: u16,
    admin: u16,
}

impl Addresses {
    fn new(n: u8) -> Self {
        Self {
            ips: (2..2 + n).map(|i| IpAddr::from([127, 0, 0, i])).collect(),
            port: free_port(),
            admin: free_port(),
        }
    }

    fn peers(&self) -> String {
        let list: Vec<String> = self
            .ips
            .iter()
            .map(|ip| format!("\"{ip}:{}\"", self.port))
            .collect();
        list.join(", ")
    }
}

/// One node's config: `render` of S3 images, in the fleet when `fleet` gives this node's
/// address and its `peers:` (YAML).
fn node_yaml(
    s3: &S3Server,
    cache: &Path,
    secret: &Path,
    fleet: Option<(String, String)>,
) -> String {
    let fleet = match fleet {
        Some((node, peers)) => format!(
            "fleet:\n  node: \"{node}\"\n  peers: {peers}\n  secret_file: \"{}\"\n  health: {{ interval: 200ms }}\n",
            secret.display()
        ),
        None => String::new(),
    };
    format!(
        r#"origins:
{}hot_cache: {{ dir: "{}", capacity: 1GiB }}
debug_headers: true
{fleet}routes:
  - name: allow-list
    match: {{ path: "/private/{{image}}/{{iiif*}}" }}
    filters: [{{ ip_filter: {{ allow: ["10.0.0.0/8"] }} }}]
    fleet: {{ key: "{{image}}" }}
    handler: {{ render: {{ origin: masters, key: "{{image}}" }} }}
  - name: tiles
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    fleet: {{ key: "{{image}}" }}
    cache: {{}}
    handler: {{ render: {{ origin: masters, key: "{{image}}" }} }}
"#,
        s3.origin_yaml("masters"),
        cache.display()
    )
}

/// A fleet of `n` nodes, each with its own hot cache.
struct Fleet {
    nodes: Vec<Tessera>,
    _dirs: Vec<tempfile::TempDir>,
}

fn start_fleet(s3: &S3Server, n: u8) -> (Fleet, Addresses) {
    let a = Addresses::new(n);
    let peers = format!("{{ static: [{}] }}", a.peers());
    let fleet = start_nodes(s3, &a, &a.ips, &peers);
    fleet.wait_until_all_see(a.ips.len());
    (fleet, a)
}

/// Nodes at `ips` (some of `a`'s, or more), each with `peers:` as given.
fn start_nodes(s3: &S3Server, a: &Addresses, ips: &[IpAddr], peers: &str) -> Fleet {
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("fleet-secret");
    std::fs::write(&secret, "a fleet secret of more than sixteen bytes\n").unwrap();
    let mut dirs = vec![secrets];
    let mut nodes = Vec::new();
    for &ip in ips {
        let cache = tempfile::tempdir().unwrap();
        let me = (format!("{ip}:{}", a.port), peers.to_string());
        let yaml = node_yaml(s3, cache.path(), &secret, Some(me));
        nodes.push(Tessera::start_at(&yaml, ip, a.port, a.admin));
        dirs.push(cache);
    }
    Fleet { nodes, _dirs: dirs }
}

impl Fleet {
    /// Nodes that started before their peers found them down at first: wait until every node
    /// sees `n` nodes up, as a fleet does a health interval after its last node starts.
    fn wait_until_all_see(&self, n: usize) {
        let all = n as f64;
        let healthy = |t: &Tessera| t.metric("tessera_fleet_nodes", &[("state", "healthy")]);
        assert!(
            eventually(10, || self.nodes.iter().all(|t| healthy(t) == all)),
            "the nodes do not all see {n} nodes: {}\n{}",
            self.nodes[0]
                .metrics()
                .lines()
                .filter(|l| l.contains("fleet"))
                .collect::<Vec<_>>()
                .join("\n"),
            self.nodes[0].log()
        );
    }
}

/// Where a node sent a request: `local`, or the owner's address.
fn destination(r: &Response) -> String {
    let dest = r.header("x-proxy-destination").unwrap_or("").to_string();
    match dest.split("endpoint=").nth(1) {
        Some(endpoint) => endpoint.to_string(),
        None => "local".into(),
    }
}

#[test]
fn a_cold_image_is_copied_once_for_the_whole_fleet() {
    let s3 = S3Server::start();
    let file = jp2_with(1200, 900, &["-t", "256,256", "-n", "4"]);
    s3.put_file("img", &file);
    s3.put_file("ref", &file);
    let (fleet, _) = start_fleet(&s3, 3);

    let paths: Vec<String> = (0..4)
        .map(|i| format!("/iiif/img/{},0,256,256/256,/0/default.jpg", i * 256))
        .collect();
    let answers: Vec<(usize, Response)> = std::thread::scope(|scope| {
        let (nodes, paths) = (&fleet.nodes, &paths);
        let handles: Vec<_> = (0..300)
            .map(|i| {
                let (node, tile) = (&nodes[i % 3], i % paths.len());
                scope.spawn(move || (tile, node.get(&paths[tile])))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        s3.gets_for("img")
            .iter()
            .filter(|g| g.range.is_none())
            .count(),
        1,
        "one whole-object GET for 300 requests over 3 nodes"
    );

    // Every answer is the one a single node gives.
    let cache = tempfile::tempdir().unwrap();
    let no_secret = cache.path().join("unused");
    let single = Tessera::start(&node_yaml(&s3, cache.path(), &no_secret, None));
    let reference: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| single.get(&p.replace("/img/", "/ref/")).body)
        .collect();
    for (tile, r) in &answers {
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.body == reference[*tile],
            "tile {tile} differs from the single node's"
        );
    }
    let count = |outcome: &str| -> f64 {
        fleet
            .nodes
            .iter()
            .map(|n| n.metric("tessera_fleet_requests_total", &[("outcome", outcome)]))
            .sum()
    };
    assert_eq!(count("owner") + count("forwarded"), 300.0);
    assert_eq!(count("received"), count("forwarded"));
    assert_eq!(
        count("forwarded"),
        200.0,
        "the two other nodes forward theirs"
    );
}

#[test]
fn a_killed_owner_costs_no_request_and_its_images_move() {
    let s3 = S3Server::start();
    s3.put_file("img", &jp2_with(600, 400, &["-t", "256,256", "-n", "3"]));
    let (mut fleet, a) = start_fleet(&s3, 3);
    let owner = fleet
        .nodes
        .iter()
        .map(|n| destination(&n.get(&format!("/iiif/img/{TILE}"))))
        .find(|d| d != "local")
        .expect("two nodes forward");
    let owner_index = a
        .ips
        .iter()
        .position(|ip| owner == format!("{ip}:{}", a.port))
        .unwrap();

    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut nodes = std::mem::take(&mut fleet.nodes);
    let mut doomed = nodes.remove(owner_index);
    let failures = std::thread::scope(|scope| {
        let askers: Vec<_> = nodes
            .iter()
            .map(|node| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut failed = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let r = node.get(&format!("/iiif/img/{TILE}"));
                        if r.status != 200 {
                            failed.push(r.status);
                        }
                    }
                    failed
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(300));
        doomed.kill();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        askers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<u16>>()
    });
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    // Until the ring dropped the owner, the survivors served its image themselves.
    let fallbacks: f64 = nodes
        .iter()
        .map(|n| n.metric("tessera_fleet_requests_total", &[("outcome", "fallback")]))
        .sum();
    assert!(fallbacks >= 1.0, "no request fell back");
    // The ring has dropped the owner: the survivors agree on a new one among themselves.
    let now: Vec<String> = nodes
        .iter()
        .map(|n| destination(&n.get(&format!("/iiif/img/{TILE}"))))
        .collect();
    assert!(
        now.iter().all(|d| d != &owner),
        "{now:?} still names {owner}"
    );
    assert_eq!(now.iter().filter(|d| *d == "local").count(), 1, "{now:?}");
}

#[test]
fn a_forged_hop_mark_bypasses_neither_the_owner_nor_a_filter() {
    let s3 = S3Server::start();
    s3.put_file("img", &jp2_with(600, 400, &["-t", "256,256", "-n", "3"]));
    let (fleet, a) = start_fleet(&s3, 3);
    let path = format!("/iiif/img/{TILE}");
    let (node, owner) = fleet
        .nodes
        .iter()
        .map(|n| (n, destination(&n.get(&path))))
        .find(|(_, d)| d != "local")
        .unwrap();
    let forged = "v1 0 10.1.2.3 1 68747470733a2f2f6576696c2e6578616d706c65 00ff";
    let r = get(&path)
        .header("x-tessera-hop", forged)
        .send_to(node.ip, a.port);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        destination(&r),
        owner,
        "a forged mark is not served where it lands"
    );
    assert_eq!(node.metric("tessera_fleet_forged_marks_total", &[]), 1.0);
    // The mark claims an allowed client address: the filter still sees the real one.
    let private = get(&format!("/private/img/{TILE}"))
        .header("x-tessera-hop", forged)
        .send_to(node.ip, a.port);
    assert_eq!(private.status, 403, "{}", private.text());
}

/// A purge asked of any node reaches the node that kept the answer: the owner.
#[test]
fn a_purge_reaches_every_node() {
    let s3 = S3Server::start();
    s3.put_file("img", &jp2_with(600, 400, &["-t", "256,256", "-n", "3"]));
    let (fleet, a) = start_fleet(&s3, 3);
    let path = format!("/iiif/img/{TILE}");
    let (asked, owner) = fleet
        .nodes
        .iter()
        .map(|n| (n, destination(&n.get(&path))))
        .find(|(_, d)| d != "local")
        .unwrap();
    let kept = |n: &Tessera| n.metric("tessera_cache_stores_total", &[("result", "stored")]);
    let owner_node = fleet
        .nodes
        .iter()
        .find(|n| owner == format!("{}:{}", n.ip, a.port))
        .unwrap();
    assert_eq!(kept(owner_node), 1.0, "the owner keeps the answer");
    let r = request("POST", &format!("/cache/purge?url=http://localhost{path}"))
        .send_to(asked.ip, a.admin);
    assert_eq!(r.status, 200, "{}", r.text());
    let answer: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(answer["purged"], 0, "{answer}");
    assert_eq!(answer["peers"][&owner]["purged"], 1, "{answer}");
    assert_eq!(answer["peers"].as_object().unwrap().len(), 2, "{answer}");
    assert_eq!(owner_node.metric("tessera_cache_purged_total", &[]), 1.0);
}

/// A DNS server (dnsmasq) answering from a hosts file it reads again on SIGHUP.
struct Dns {
    child: Child,
    hosts: PathBuf,
    name: String,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Dns {
    fn start(name: &str, ips: &[IpAddr]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        // Written before dnsmasq starts: a SIGHUP before it handles them would end it.
        std::fs::write(&hosts, hosts_lines(name, ips)).unwrap();
        let port = free_port();
        let child = Command::new("dnsmasq")
            .args(["--keep-in-foreground", "--no-resolv", "--no-hosts"])
            .args([
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--pid-file=",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg("--user=root")
            .spawn()
            .expect("dnsmasq runs (scripts/deps.sh installs dnsmasq-base)");
        // Ready when it answers over TCP too (it opens both sockets at once).
        assert!(
            eventually(5, || std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "dnsmasq did not start"
        );
        Dns {
            child,
            hosts,
            name: name.to_string(),
            port,
            _dir: dir,
        }
    }

    /// The name resolves to `ips` from now on.
    fn set(&mut self, ips: &[IpAddr]) {
        let lines: String = ips
            .iter()
            .map(|ip| format!("{ip} {}\n", self.name))
            .collect();
        std::fs::write(&self.hosts, lines).unwrap();
        let _ = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status();
    }
}

fn hosts_lines(name: &str, ips: &[IpAddr]) -> String {
    ips.iter().map(|ip| format!("{ip} {name}\n")).collect()
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peers from a name a DNS server answers: a fourth address added to it joins every node's
/// ring at the next refresh, and only the images the fourth node now owns are copied again.
#[test]
fn a_node_added_to_the_dns_name_joins_and_takes_only_its_images() {
    let s3 = S3Server::start();
    let file = jp2_with(300, 200, &["-n", "2"]);
    let images: Vec<String> = (0..24).map(|i| format!("img-{i}")).collect();
    for image in &images {
        s3.put_file(image, &file);
    }
    let a = Addresses::new(4);
    let mut dns = Dns::start("peers.fleet.test", &a.ips[..3]);
    let peers = format!(
        "{{ dns: {{ name: peers.fleet.test, port: {}, refresh: 300ms, server: \"127.0.0.1:{}\" }} }}",
        a.port, dns.port
    );
    let mut fleet = start_nodes(&s3, &a, &a.ips[..3], &peers);
    fleet.wait_until_all_see(3);
    let tile = |node: &Tessera, image: &str| {
        let r = node.get(&format!("/iiif/{image}/full/64,/0/default.jpg"));
        assert_eq!(r.status, 200, "{image}: {}", r.text());
        destination(&r)
    };
    for image in &images {
        tile(&fleet.nodes[0], image);
    }
    let copies = |image: &str| {
        s3.gets_for(image)
            .iter()
            .filter(|g| g.range.is_none())
            .count()
    };
    assert!(images.iter().all(|i| copies(i) == 1));

    let fourth = start_nodes(&s3, &a, &a.ips[3..], &peers);
    dns.set(&a.ips);
    fleet.nodes.extend(fourth.nodes);
    fleet._dirs.extend(fourth._dirs);
    fleet.wait_until_all_see(4);
    assert!(fleet.nodes[0].wait_log("the fleet's ring changed"));

    let newcomer = format!("{}:{}", a.ips[3], a.port);
    let moved: Vec<&String> = images
        .iter()
        .filter(|image| tile(&fleet.nodes[0], image) == newcomer)
        .collect();
    assert!(!moved.is_empty(), "the fourth node owns none of 24 images");
    assert!(moved.len() < images.len());
    for image in &images {
        let expected = if moved.contains(&image) { 2 } else { 1 };
        assert_eq!(copies(image), expected, "{image}");
    }
}

/// Peers speak HTTPS to each other when `fleet.tls` is set: here each node's peer address is a
/// TLS-only listener, so an answer through the owner came over TLS.
#[test]
fn peers_speak_tls_to_each_other() {
    let s3 = S3Server::start();
    s3.put_file("img", &jp2_with(600, 400, &["-t", "256,256", "-n", "3"]));
    let pki = tempfile::tempdir().unwrap();
    crate::upstream_tls::make_pki(pki.path());
    let d = pki.path().display();
    let a = Addresses::new(2);
    let tls_port = free_port();
    let list: Vec<String> = a
        .ips
        .iter()
        .map(|ip| format!("\"{ip}:{tls_port}\""))
        .collect();
    let peers = format!(
        "{{ static: [{}] }}\n  tls: {{ ca: {d}/ca.pem }}",
        list.join(", ")
    );
    let secret = pki.path().join("secret");
    std::fs::write(&secret, "a fleet secret of more than sixteen bytes").unwrap();
    let caches: Vec<tempfile::TempDir> =
        a.ips.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes: Vec<Tessera> = a
        .ips
        .iter()
        .zip(&caches)
        .map(|(ip, cache)| {
            let listen = format!(
                "listen:\n  - address: \"{ip}:{{PORT}}\"\n  - address: \"{ip}:{tls_port}\"\n    tls: {{ cert: {d}/server.pem, key: {d}/server.key }}\n"
            );
            let me = (format!("{ip}:{tls_port}"), peers.clone());
            let yaml = listen + &node_yaml(&s3, cache.path(), &secret, Some(me));
            Tessera::start_at(&yaml, *ip, a.port, a.admin)
        })
        .collect();
    let fleet = Fleet {
        nodes,
        _dirs: caches,
    };
    fleet.wait_until_all_see(2);
    let answers: Vec<Response> = fleet
        .nodes
        .iter()
        .map(|n| n.get(&format!("/iiif/img/{TILE}")))
        .collect();
    assert!(answers.iter().all(|r| r.status == 200));
    assert_eq!(
        answers.iter().filter(|r| destination(r) != "local").count(),
        1,
        "one node forwards, over TLS"
    );
    assert!(answers[0].body == answers[1].body);
}
