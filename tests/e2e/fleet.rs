//! A fleet of three Tessera processes on 127.0.0.2–4 in front of one S3 server: each image is
//! copied once for the whole fleet, every node's answer is the single node's, a killed owner
//! costs no request, and a forged hop mark changes nothing.

use crate::harness::*;
use crate::images::jp2_with;
use crate::s3::S3Server;
use std::net::IpAddr;
use std::path::Path;

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

/// One node's config: `render` of S3 images, in the fleet when `fleet` is true.
fn node_yaml(
    s3: &S3Server,
    cache: &Path,
    secret: &Path,
    me: Option<(&Addresses, IpAddr)>,
) -> String {
    let fleet = match me {
        Some((a, ip)) => format!(
            "fleet:\n  node: \"{ip}:{}\"\n  peers: {{ static: [{}] }}\n  secret_file: \"{}\"\n  health: {{ interval: 200ms }}\n",
            a.port,
            a.peers(),
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
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("fleet-secret");
    std::fs::write(&secret, "a fleet secret of more than sixteen bytes\n").unwrap();
    let mut dirs = vec![secrets];
    let mut nodes = Vec::new();
    for &ip in &a.ips {
        let cache = tempfile::tempdir().unwrap();
        let yaml = node_yaml(s3, cache.path(), &secret, Some((&a, ip)));
        nodes.push(Tessera::start_at(&yaml, ip, a.port, a.admin));
        dirs.push(cache);
    }
    // Nodes that started before their peers found them down at first: wait until every node
    // sees every peer up again, as a fleet does a health interval after its last node starts.
    let all = f64::from(n);
    let healthy = |t: &Tessera| t.metric("tessera_upstream_healthy", &[("cluster", "fleet")]);
    assert!(
        eventually(10, || nodes.iter().all(|t| healthy(t) == all)),
        "the nodes do not all see each other"
    );
    (Fleet { nodes, _dirs: dirs }, a)
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
