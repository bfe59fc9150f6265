//! `tessera serve DIR`: a folder of images (JPEG 2000, JPEG, PNG, TIFF) as a IIIF image
//! service with a viewer, in one command. An image's identifier is its file name. It writes
//! the config a user would write for this — the same routes as the embedded default, under
//! `/iiif/3/` and `/iiif/2/`, with the gallery at `/` — and runs it as `tessera run` would, so
//! nothing here is a second way of serving.
//!
//! The files are read in place, with positioned reads: nothing is copied, and a file edited
//! while it is decoded fails that one request, never the server.

use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The folder of images (JPEG 2000, JPEG, PNG, TIFF) to serve.
    pub dir: PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
}

/// The config for `args`: the folder must exist; paths are written absolute.
pub fn config(args: &ServeArgs) -> anyhow::Result<String> {
    let dir = std::fs::canonicalize(&args.dir)
        .map_err(|e| anyhow::anyhow!("cannot serve {}: {e}", args.dir.display()))?;
    if !dir.is_dir() {
        anyhow::bail!("cannot serve {}: not a folder", args.dir.display());
    }
    let quoted = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap_or_default();
    let title = serde_json::to_string(&format!("Tessera: {}", dir.display())).unwrap_or_default();
    let mut yaml = format!(
        r#"# Written by `tessera serve`.
listen: [{{ address: {listen} }}]
origins:
  folder: {{ dir: {dir} }}
response_cache: {{ memory: 128MiB }}
routes:
  - name: home
    match: {{ path: "/", methods: [GET, HEAD] }}
    handler:
      viewer:
        show: gallery
        origin: folder
        iiif: /iiif/3
        title: {title}
        suffixes: [.jp2, .j2k, .jpg, .jpeg, .png, .tif, .tiff]
        strip_suffix: false
  - name: view
    match: {{ path: "/view/{{image}}", methods: [GET, HEAD] }}
    handler: {{ viewer: {{ show: image, iiif: /iiif/3 }} }}
  - name: viewer-files
    match: {{ path: "/viewer/{{file*}}", methods: [GET, HEAD] }}
    handler: {{ viewer: {{ show: assets }} }}
"#,
        listen = serde_json::to_string(&args.listen).unwrap_or_default(),
        dir = quoted(&dir),
    );
    for version in [3, 2] {
        yaml.push_str(&format!(
            r#"  - name: info-v{version}
    match: {{ path: "/iiif/{version}/{{image}}/info.json", methods: [GET, HEAD] }}
    filters: [cors]
    cache: {{}}
    handler: {{ info: {{ origin: folder, key: "{{image}}", version: {version}, extra_formats: [png, webp] }} }}
  - name: base-v{version}
    match: {{ path: "/iiif/{version}/{{image}}", methods: [GET, HEAD] }}
    filters: [cors]
    handler: {{ info: {{ origin: folder, key: "{{image}}", version: {version} }} }}
  - name: small-full-v{version}
    match: {{ path: "/iiif/{version}/{{image}}/full/{{size}}/{{rotation}}/{{quality}}.{{format}}", methods: [GET, HEAD] }}
    filters: [cors]
    cache: {{}}
    handler:
      byte_range:
        origin: folder
        key: "{{image}}"
        version: {version}
        request: "full/{{size}}/{{rotation}}/{{quality}}.{{format}}"
        max_pixels: 1000000
        otherwise: render-v{version}
  - name: render-v{version}
    match: {{ path: "/iiif/{version}/{{image}}/{{iiif*}}", methods: [GET, HEAD] }}
    filters: [cors]
    cache: {{}}
    handler: {{ render: {{ origin: folder, key: "{{image}}", version: {version} }} }}
"#
        ));
    }
    Ok(yaml)
}
