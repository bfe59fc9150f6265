use super::*;
use crate::config::{Dur, FleetHealthConfig, PeersConfig, Timeouts};

fn config(node: &str, peers: &[&str], secret_env: &str) -> FleetConfig {
    FleetConfig {
        node: Some(node.into()),
        peers: PeersConfig {
            fixed: peers.iter().map(|p| p.to_string()).collect(),
            dns: None,
        },
        secret_file: None,
        secret_env: Some(secret_env.into()),
        health: FleetHealthConfig {
            port: Some(9090),
            ..FleetHealthConfig::default()
        },
        timeouts: Timeouts {
            connect: Dur::millis(500),
            ..Timeouts::default()
        },
        tls: None,
    }
}

fn fleet(node: &str, peers: &[&str]) -> Fleet {
    std::env::set_var("TESSERA_TEST_FLEET_SECRET", "sixteen bytes or more");
    Fleet::build(
        &config(node, peers, "TESSERA_TEST_FLEET_SECRET"),
        None,
        None,
    )
    .unwrap_or_else(|(at, e)| panic!("{at:?}: {e}"))
}

fn owners(f: &Fleet, keys: usize) -> Vec<String> {
    (0..keys)
        .map(|i| {
            let key = format!("customer/space/image-{i}");
            f.ring()
                .select(key.as_bytes(), &[])
                .unwrap()
                .addr
                .to_string()
        })
        .collect()
}

#[test]
fn a_fourth_node_takes_its_share_and_nothing_else_moves() {
    let three = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"];
    let before = owners(&fleet(three[0], &three), 10_000);
    let four = fleet(three[0], &[three[0], three[1], three[2], "10.0.0.4:8080"]);
    let after = owners(&four, 10_000);
    let moved: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    assert!(moved.len() <= 3_000, "{} of 10000 keys moved", moved.len());
    assert!(
        moved.len() >= 1_500,
        "the new node took only {} keys",
        moved.len()
    );
    assert!(
        moved.iter().all(|&i| after[i] == "10.0.0.4:8080"),
        "a key moved between the old nodes"
    );
}

#[test]
fn every_node_agrees_on_the_owner_and_knows_itself() {
    let peers = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"];
    let nodes: Vec<Fleet> = peers.iter().map(|n| fleet(n, &peers)).collect();
    for i in 0..1000 {
        let key = format!("image-{i}");
        let elsewhere: Vec<Option<String>> = nodes
            .iter()
            .map(|f| {
                f.owner_elsewhere(key.as_bytes())
                    .map(|b| b.addr.to_string())
            })
            .collect();
        assert_eq!(
            elsewhere.iter().filter(|o| o.is_none()).count(),
            1,
            "exactly one node owns {key}: {elsewhere:?}"
        );
        let owner = elsewhere.iter().flatten().next().unwrap();
        assert!(elsewhere.iter().flatten().all(|o| o == owner));
    }
}

#[test]
fn a_node_alone_owns_everything() {
    let f = fleet("10.0.0.1:8080", &[]);
    assert!((0..100).all(|i| f.owner_elsewhere(format!("k{i}").as_bytes()).is_none()));
}

#[test]
fn bad_settings_are_placed_at_their_key() {
    let err = |c: FleetConfig| {
        let (at, e) = Fleet::build(&c, None, None).err().expect("refused");
        (at, e)
    };
    std::env::set_var("TESSERA_TEST_SHORT_SECRET", "short");
    let (at, e) = err(config("10.0.0.1:8080", &[], "TESSERA_TEST_SHORT_SECRET"));
    assert_eq!(at, ConfigPath::root().key("fleet").key("secret_env"));
    assert!(e.contains("at least 16 bytes"), "{e}");
    let (at, e) = err(config("10.0.0.1:8080", &[], "TESSERA_TEST_NO_SUCH_VAR"));
    assert_eq!(at, ConfigPath::root().key("fleet").key("secret_env"));
    assert!(e.contains("TESSERA_TEST_NO_SUCH_VAR"), "{e}");
    let (at, _) = err(config(
        "node-without-port",
        &[],
        "TESSERA_TEST_FLEET_SECRET",
    ));
    assert_eq!(at, ConfigPath::root().key("fleet").key("node"));
}

#[test]
fn environment_variables_are_expanded() {
    std::env::set_var("TESSERA_TEST_POD_IP", "10.1.2.3");
    assert_eq!(
        expand_env("${TESSERA_TEST_POD_IP}:8080").unwrap(),
        "10.1.2.3:8080"
    );
    assert_eq!(expand_env("plain:1").unwrap(), "plain:1");
    assert!(expand_env("${TESSERA_TEST_UNSET_VARIABLE}:1").is_err());
    assert!(expand_env("${unclosed").is_err());
}

#[test]
fn the_node_defaults_to_the_pod_ip_and_the_first_listener_port() {
    std::env::set_var("TESSERA_TEST_FLEET_SECRET", "sixteen bytes or more");
    std::env::set_var("POD_IP", "10.9.8.7");
    let mut c = config("unused:1", &[], "TESSERA_TEST_FLEET_SECRET");
    c.node = None;
    let f = Fleet::build(&c, None, Some(8080)).unwrap_or_else(|(at, e)| panic!("{at:?}: {e}"));
    assert!(f.is_this_node(&Backend::new("10.9.8.7:8080").unwrap()));
}
