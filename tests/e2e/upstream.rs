//! One upstream request, whatever the cluster speaks: the `proxy` handler's path rewrite and
//! `host:` reach a FastCGI cluster (the real iipsrv) as they reach an HTTP one.

use crate::harness::{clusters, Backend, Tessera};
use crate::iipsrv::start_iipsrv;

fn sample() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/images/sample.jp2"
    );
    std::fs::canonicalize(path)
        .expect("the sample image")
        .display()
        .to_string()
}

#[test]
fn host_is_rewritten_for_fastcgi_clusters_as_for_http_ones() {
    let iip = start_iipsrv();
    let web = Backend::start("web");
    let image = sample();
    let yaml = clusters(&[("web", &[&web], "")])
        + &format!(
            r#"  iip: {{ endpoints: ["127.0.0.1:{port}"], protocol: fastcgi }}
routes:
  - name: fcgi
    match: {{ path: "/fcgi/info.json" }}
    handler: {{ proxy: {{ cluster: iip, path: "/fcgi-bin/iipsrv.fcgi?IIIF={image}/info.json", host: "images.example.org" }} }}
  - name: http
    match: {{ path: "/http/info.json" }}
    handler: {{ proxy: {{ cluster: web, path: "/x", host: "images.example.org" }} }}
"#,
            port = iip.port
        );
    let t = Tessera::start(&yaml);

    let r = t.get("/http/info.json");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echo()["headers"]["host"], "images.example.org");

    // iipsrv names the image after the host it was asked on.
    let r = t.get("/fcgi/info.json");
    assert_eq!(r.status, 200, "{}", r.text());
    let info: serde_json::Value = serde_json::from_str(&r.text()).expect("info.json");
    let id = info["@id"].as_str().unwrap_or_default();
    assert!(id.contains("images.example.org"), "{id}");
    assert!(!id.contains("127.0.0.1"), "{id}");
}
