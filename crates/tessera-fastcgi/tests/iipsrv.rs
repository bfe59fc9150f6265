//! Against the real iipsrv (Debian iipimage-server): these fail, not skip, when it is missing.

mod common;

use common::Iipsrv;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::net::SocketAddr;
use std::time::Duration;
use tessera_fastcgi::{request, FastCgiError, FastCgiRequest, FastCgiResponse, Timeouts};

const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    read: Duration::from_secs(10),
    total: Some(Duration::from_secs(30)),
};
const TILE: &str = "0,0,256,256/256,/0/default.jpg";

async fn get(
    addr: SocketAddr,
    query: &str,
    max_body: usize,
) -> Result<FastCgiResponse, FastCgiError> {
    get_with(addr, query, max_body, HeaderMap::new()).await
}

async fn get_with(
    addr: SocketAddr,
    query: &str,
    max_body: usize,
    mut headers: HeaderMap,
) -> Result<FastCgiResponse, FastCgiError> {
    headers.insert(header::HOST, HeaderValue::from_static("tessera.test"));
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    let req = FastCgiRequest {
        method: "GET",
        script_name: "/fcgi-bin/iipsrv.fcgi",
        query_string: query,
        server_name: "tessera.test",
        server_port: 8080,
        remote_addr: Some("127.0.0.1".parse().unwrap()),
        headers: &headers,
    };
    request(addr, &req, &TIMEOUTS, max_body).await
}

fn header<'a>(resp: &'a FastCgiResponse, name: &str) -> Option<&'a str> {
    let mut values = resp.headers.iter().filter(|(n, _)| n.as_str() == name);
    values.next().map(|(_, v)| v.to_str().unwrap())
}

fn describe(resp: &FastCgiResponse) -> String {
    format!(
        "{} {:?} {} body bytes",
        resp.status,
        resp.headers,
        resp.body.len()
    )
}

#[tokio::test]
async fn info_json() {
    let iip = Iipsrv::start();
    let resp = get(iip.addr, &iip.iiif_query("info.json"), 1 << 20)
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::OK, "{}", describe(&resp));
    let body = std::str::from_utf8(&resp.body).unwrap();
    assert!(body.contains("\"width\""), "{body}");
    assert!(body.contains("600"), "{body}");
    // iipsrv builds @id from HTTP_HOST and REQUEST_URI (it answers 400 without REQUEST_URI).
    let id = format!(
        "\"http://tessera.test/fcgi-bin/iipsrv.fcgi?IIIF={}\"",
        iip.jp2.display()
    );
    assert!(body.contains(&id), "{body}");
}

#[tokio::test]
async fn x_iiif_id_header_sets_the_info_json_id() {
    let iip = Iipsrv::start();
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-iiif-id",
        HeaderValue::from_static("https://img.example/iiif/abc"),
    );
    let resp = get_with(iip.addr, &iip.iiif_query("info.json"), 1 << 20, headers)
        .await
        .unwrap();
    let body = std::str::from_utf8(&resp.body).unwrap();
    assert!(
        body.contains(r#""@id" : "https://img.example/iiif/abc""#),
        "{body}"
    );
}

#[tokio::test]
async fn tile_is_jpeg() {
    let iip = Iipsrv::start();
    let resp = get(iip.addr, &iip.iiif_query(TILE), 1 << 20).await.unwrap();
    assert_eq!(resp.status, StatusCode::OK, "{}", describe(&resp));
    assert_eq!(header(&resp, "content-type"), Some("image/jpeg"));
    assert!(resp.body.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    assert!(resp.body.ends_with(&[0xFF, 0xD9]), "JPEG not complete");
    assert_eq!(header(&resp, "content-length"), None);
}

#[tokio::test]
async fn missing_file() {
    let iip = Iipsrv::start();
    let query = format!(
        "IIIF={}/nope.jp2/info.json",
        iip.jp2.parent().unwrap().display()
    );
    let resp = get(iip.addr, &query, 1 << 20).await.unwrap();
    // iipsrv 1.1: `Status: 404 Not Found`, no Content-Type, and a plain-text body that names the
    // absolute path, so callers should not pass it on.
    assert_eq!(resp.status, StatusCode::NOT_FOUND, "{}", describe(&resp));
    assert_eq!(header(&resp, "content-type"), None);
    let body = String::from_utf8_lossy(&resp.body);
    assert!(
        body.contains("nope.jp2 is neither a file nor part of an image sequence"),
        "{body}"
    );
}

#[tokio::test]
async fn body_over_the_limit_is_too_large() {
    let iip = Iipsrv::start();
    let err = get(iip.addr, &iip.iiif_query(TILE), 100).await.unwrap_err();
    assert!(matches!(err, FastCgiError::TooLarge), "{err:?}");
    // The server is still fine afterwards.
    let resp = get(iip.addr, &iip.iiif_query("info.json"), 1 << 20)
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::OK);
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    // A port bound but never listened on: refused, and no other test's server can take it
    // meanwhile (a port only found free could be, by an iipsrv started in parallel).
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = reserved.local_addr().unwrap();
    let err = get(addr, "IIIF=/x.jp2/info.json", 1024).await.unwrap_err();
    assert!(matches!(err, FastCgiError::Connect(_)), "{err:?}");
    drop(reserved);
}

#[tokio::test]
async fn sequential_requests_each_get_a_connection() {
    let iip = Iipsrv::start();
    for i in 0..10 {
        let query = if i % 2 == 0 {
            iip.iiif_query("info.json")
        } else {
            iip.iiif_query(TILE)
        };
        let resp = get(iip.addr, &query, 1 << 20).await.unwrap();
        assert_eq!(
            resp.status,
            StatusCode::OK,
            "request {i}: {}",
            describe(&resp)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_requests() {
    let iip = Iipsrv::start();
    let addr = iip.addr;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let query = if i % 2 == 0 {
                iip.iiif_query("info.json")
            } else {
                iip.iiif_query(TILE)
            };
            tokio::spawn(async move { get(addr, &query, 1 << 20).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let resp = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(
            resp.status,
            StatusCode::OK,
            "request {i}: {}",
            describe(&resp)
        );
        let expected: &[u8] = if i % 2 == 0 { b"{" } else { &[0xFF, 0xD8] };
        assert!(resp.body.starts_with(expected), "request {i}");
    }
}
