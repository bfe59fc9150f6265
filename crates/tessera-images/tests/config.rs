//! The image application's sections and handlers, checked the way `tessera check` checks a
//! config: every problem reported at its place in the file, no directory touched.

use tessera_proxy::config::load_str;
use tessera_proxy::runtime::Runtime;
use tessera_proxy::Builder;

fn builder() -> Builder {
    tessera_images::register(Builder::with_builtins())
}

fn errors(yaml: &str) -> Vec<String> {
    let (config, source) = load_str("p.yaml", yaml).expect("parses");
    match Runtime::build(config, &source, builder().registry(), None) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn orchestrate_needs_an_origin_a_hot_cache_and_local_path() {
    let yaml = "clusters:\n  iip: { endpoints: [\"127.0.0.1:1\"], protocol: fastcgi }\nroutes:\n  - name: t\n    match: { path: \"/i/{id}/{iiif*}\" }\n    handler: { orchestrate: { origin: nope, key: \"{id}\", cluster: iip, upstream_path: \"/x?IIIF={iiif}\" } }\n";
    let e = errors(yaml);
    assert!(
        e.iter()
            .any(|l| l.contains("unknown origin \"nope\" (defined: none)")),
        "{e:?}"
    );

    let dir = tempfile_dir();
    let yaml = format!("origins:\n  local: {{ dir: \"{dir}\" }}\nclusters:\n  iip: {{ endpoints: [\"127.0.0.1:1\"], protocol: fastcgi }}\nroutes:\n  - name: t\n    match: {{ path: \"/i/{{id}}/{{iiif*}}\" }}\n    handler: {{ orchestrate: {{ origin: local, key: \"{{id}}\", cluster: iip, upstream_path: \"/x?IIIF={{iiif}}\" }} }}\n");
    let e = errors(&yaml);
    assert!(
        e.iter()
            .any(|l| l.contains("needs a top-level `hot_cache:`")),
        "{e:?}"
    );

    let yaml = format!("{yaml}hot_cache: {{ dir: \"{dir}/cache\", capacity: 1GiB }}\n");
    let e = errors(&yaml);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("upstream_path must use {local_path}"),
        "{e:?}"
    );

    let ok = yaml.replace("IIIF={iiif}", "IIIF={local_path}/{iiif}");
    assert_eq!(errors(&ok), Vec::<String>::new());
    // Checking a config never touches the cache directory.
    assert!(!std::path::Path::new(&format!("{dir}/cache")).exists());
}

#[test]
fn origin_and_hot_cache_problems() {
    let yaml = "origins:\n  a: { dir: \"/no/such/dir\" }\n  b: {}\n  c: { dir: \"/\", s3: { bucket: x } }\nhot_cache: { dir: \"/tmp/x\", capacity: 1GiB, high_watermark: 50%, low_watermark: 60% }\nclusters:\n  f: { endpoints: [\"127.0.0.1:1\"], protocol: fastcgi, health_check: { path: \"/\" } }\n";
    let e = errors(yaml);
    assert_eq!(e.len(), 5, "{e:?}");
    assert!(
        e[1].starts_with("p.yaml:2:8: origin \"a\": cannot read dir \"/no/such/dir\""),
        "{e:?}"
    );
    assert!(
        e[2].starts_with("p.yaml:3:6: origin \"b\": an origin needs exactly one of `s3` or `dir`"),
        "{e:?}"
    );
    assert!(
        e[3].starts_with("p.yaml:4:8: origin \"c\": an origin needs exactly one"),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|l| l.contains("fastcgi cluster cannot have an HTTP health check")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|l| l.contains("low_watermark must not be above")),
        "{e:?}"
    );
}

#[test]
fn a_reload_cannot_add_a_hot_cache() {
    let registry = builder();
    let (config, source) = load_str("p.yaml", "routes: []\n").unwrap();
    let first = Runtime::build(config, &source, registry.registry(), None).unwrap();
    let yaml = format!(
        "hot_cache: {{ dir: \"{}/c\", capacity: 1GiB }}\n",
        tempfile_dir()
    );
    let (config, source) = load_str("p.yaml", &yaml).unwrap();
    let e = Runtime::build(config, &source, registry.registry(), Some(&first))
        .err()
        .expect("refused");
    assert!(
        e.0[0].to_string().contains("cannot be added by a reload"),
        "{e}"
    );
}

#[test]
fn hot_cache_dir_must_be_plain() {
    for dir in ["/var/cache/with space", "/var/cache/100%", "a?b"] {
        let yaml = format!("hot_cache: {{ dir: \"{dir}\", capacity: 1GiB }}\n");
        let e = errors(&yaml);
        assert!(
            e.iter().any(|l| l.contains("must be a path of letters")),
            "{dir}: {e:?}"
        );
    }
}

fn tempfile_dir() -> String {
    let dir = std::env::temp_dir().join(format!("tessera-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.display().to_string()
}

#[test]
fn an_empty_section_is_the_section_left_out() {
    assert_eq!(
        errors("origins:\nhot_cache:\nimage_index: ~\n"),
        Vec::<String>::new()
    );
}

#[test]
fn a_route_using_a_broken_section_says_which() {
    let yaml = "origins:\n  a: { dir: \"/no/such/dir\" }\nroutes:\n  - name: i\n    match: { path: \"/i/{id}/info.json\" }\n    handler: { info: { origin: a, key: \"{id}\" } }\n";
    let e = errors(yaml);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains("origin \"a\": cannot read dir"), "{e:?}");
    assert!(
        e[1].contains("handler \"info\": the top-level `origins:` section has errors"),
        "{e:?}"
    );
}
