//! Against a scripted FastCGI server: framing, timeouts and failures iipsrv won't produce on demand.

use http::{HeaderMap, StatusCode};
use std::net::SocketAddr;
use std::time::Duration;
use tessera_fastcgi::{request, FastCgiError, FastCgiRequest, FastCgiResponse, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    read: Duration::from_secs(5),
    total: Some(Duration::from_secs(10)),
};

/// One record for request 1, with `padding` bytes of padding.
fn rec(kind: u8, content: &[u8], padding: u8) -> Vec<u8> {
    let mut out = vec![1, kind, 0, 1];
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[padding, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0, padding.into()));
    out
}

fn stdout(content: &[u8]) -> Vec<u8> {
    rec(6, content, 0)
}

fn end_request(protocol_status: u8) -> Vec<u8> {
    rec(3, &[0, 0, 0, 0, protocol_status, 0, 0, 0], 0)
}

/// What the fake server does after sending its bytes.
enum Then {
    Close,
    Hang,
}

/// Serves one connection: reads the whole request, writes `chunks` (pausing `pause` between
/// them), then closes or hangs.
async fn serve_once(chunks: Vec<Vec<u8>>, pause: Duration, then: Then) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        read_request(&mut conn).await;
        for chunk in chunks {
            conn.write_all(&chunk).await.unwrap();
            tokio::time::sleep(pause).await;
        }
        if let Then::Hang = then {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
    addr
}

/// Reads until the empty STDIN record that ends every request.
async fn read_request(conn: &mut TcpStream) {
    let mut buf = Vec::new();
    while !buf.ends_with(&[1, 5, 0, 1, 0, 0, 0, 0]) {
        assert_ne!(
            conn.read_buf(&mut buf).await.unwrap(),
            0,
            "request cut short"
        );
    }
}

async fn get(addr: SocketAddr, timeouts: &Timeouts) -> Result<FastCgiResponse, FastCgiError> {
    let headers = HeaderMap::new();
    let req = FastCgiRequest {
        method: "GET",
        script_name: "/fcgi",
        query_string: "a=b",
        server_name: "localhost",
        server_port: 80,
        remote_addr: None,
        headers: &headers,
    };
    request(addr, &req, timeouts, 1024).await
}

#[tokio::test]
async fn head_split_across_records_with_padding_and_stderr() {
    let chunks = vec![
        rec(7, b"a warning\n", 6),
        rec(6, b"Status: 404 Not Found\nContent-Type: text/pl", 3),
        [
            rec(6, b"ain\n\nmissing", 0),
            stdout(b" file"),
            stdout(b""),
            end_request(0),
        ]
        .concat(),
    ];
    let addr = serve_once(chunks, Duration::from_millis(10), Then::Close).await;
    let resp = get(addr, &TIMEOUTS).await.unwrap();
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(resp.headers.len(), 1);
    assert_eq!(resp.headers[0].1, "text/plain");
    assert_eq!(resp.body, "missing file");
}

#[tokio::test]
async fn end_request_is_enough_even_if_the_server_keeps_the_connection() {
    let bytes = [stdout(b"X-A: 1\r\n\r\nok"), end_request(0)].concat();
    let addr = serve_once(vec![bytes], Duration::ZERO, Then::Hang).await;
    let resp = get(addr, &TIMEOUTS).await.unwrap();
    assert_eq!((resp.status, &resp.body[..]), (StatusCode::OK, &b"ok"[..]));
}

#[tokio::test]
async fn close_before_end_request_is_a_protocol_error() {
    let addr = serve_once(
        vec![stdout(b"\r\n\r\nhalf a tile")],
        Duration::ZERO,
        Then::Close,
    )
    .await;
    let err = get(addr, &TIMEOUTS).await.unwrap_err();
    assert!(matches!(err, FastCgiError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn close_inside_a_record_is_a_protocol_error() {
    let cut = stdout(b"\r\n\r\nhalf a tile")[..12].to_vec();
    let addr = serve_once(vec![cut], Duration::ZERO, Then::Close).await;
    let err = get(addr, &TIMEOUTS).await.unwrap_err();
    assert!(matches!(err, FastCgiError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn rejected_request_is_a_protocol_error() {
    let addr = serve_once(vec![end_request(2)], Duration::ZERO, Then::Close).await;
    let err = get(addr, &TIMEOUTS).await.unwrap_err();
    assert!(
        matches!(err, FastCgiError::Protocol(ref m) if m.contains("protocolStatus 2")),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_blank_line_is_bad_headers() {
    let bytes = [stdout(b"Content-Type: text/plain\r\n"), end_request(0)].concat();
    let addr = serve_once(vec![bytes], Duration::ZERO, Then::Close).await;
    let err = get(addr, &TIMEOUTS).await.unwrap_err();
    assert!(matches!(err, FastCgiError::BadHeaders(_)), "{err:?}");
}

#[tokio::test]
async fn silent_server_is_a_read_timeout() {
    let addr = serve_once(vec![], Duration::ZERO, Then::Hang).await;
    let timeouts = Timeouts {
        read: Duration::from_millis(200),
        ..TIMEOUTS
    };
    let err = get(addr, &timeouts).await.unwrap_err();
    assert!(matches!(err, FastCgiError::Timeout("read")), "{err:?}");
}

#[tokio::test]
async fn trickling_server_hits_the_total_timeout() {
    let trickle = (0..50).map(|_| stdout(b"x")).collect();
    let addr = serve_once(trickle, Duration::from_millis(50), Then::Hang).await;
    let timeouts = Timeouts {
        read: Duration::from_secs(1),
        total: Some(Duration::from_millis(300)),
        ..TIMEOUTS
    };
    let err = get(addr, &timeouts).await.unwrap_err();
    assert!(matches!(err, FastCgiError::Timeout("total")), "{err:?}");
}
