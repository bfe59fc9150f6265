//! `server.traces`: spans exported with OTLP over HTTP reach a receiver the test runs (a plain
//! HTTP server decoding the OTLP protobuf with `opentelemetry-proto`), with one span per phase
//! — route, cache, copy, fetch, decode, upstream — under each request's span, the caller's trace
//! continued and carried on to an HTTP upstream. Real S3 server and real iipsrv.

use crate::harness::{get, tessera_bin, Backend, Tessera};
use crate::iipsrv::start_iipsrv;
use crate::images::jp2;
use crate::s3::S3Server;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// One exported span with its resource's `service.name`.
#[derive(Clone)]
struct Exported {
    service: String,
    span: Span,
}

/// An OTLP/HTTP traces receiver: every POST body is decoded and kept.
struct Receiver {
    port: u16,
    spans: Arc<Mutex<Vec<Exported>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || serve(conn, &kept));
            }
        });
        Self { port, spans }
    }

    fn spans(&self) -> Vec<Exported> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans of the trace `trace_id`, once they include every name of `names`.
    fn trace(&self, trace_id: &[u8], names: &[&str]) -> Vec<Exported> {
        let found = || -> Vec<Exported> {
            self.spans()
                .into_iter()
                .filter(|e| e.span.trace_id == trace_id)
                .collect()
        };
        let complete = |spans: &[Exported]| {
            names
                .iter()
                .all(|n| spans.iter().any(|e| e.span.name == *n))
        };
        crate::harness::eventually(30, || complete(&found()));
        let spans = found();
        assert!(
            complete(&spans),
            "trace {}: wanted {names:?}, got {:?}",
            hex(trace_id),
            spans
                .iter()
                .map(|e| e.span.name.clone())
                .collect::<Vec<_>>()
        );
        spans
    }
}

/// One connection: HTTP/1.1 requests with a Content-Length body, each answered 200.
fn serve(conn: std::net::TcpStream, kept: &Mutex<Vec<Exported>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert!(line.starts_with("POST /v1/traces "), "{line}");
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    kept.lock().unwrap().push(Exported {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if conn.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn named<'a>(spans: &'a [Exported], name: &str) -> &'a Span {
    &spans.iter().find(|e| e.span.name == name).unwrap().span
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[test]
fn every_phase_of_a_request_is_a_span_under_the_request_and_the_callers_trace_goes_on() {
    let receiver = Receiver::start();
    let s3 = S3Server::start();
    s3.put_file("sample", &jp2(1200, 900, true));
    let iip = start_iipsrv();
    let web = Backend::start("web");
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&format!(
        r#"server:
  traces: {{ endpoint: "http://127.0.0.1:{receiver}/v1/traces", service_name: tessera-e2e }}
origins:
{origin}hot_cache: {{ dir: "{cache}", capacity: 1GiB }}
clusters:
  iip: {{ endpoints: ["127.0.0.1:{iip}"], protocol: fastcgi }}
  web: {{ endpoints: ["{web}"] }}
routes:
  - name: tiles
    match: {{ path: "/tiles/{{image}}/{{iiif*}}" }}
    cache: {{}}
    handler:
      orchestrate: {{ origin: masters, key: "{{image}}", cluster: iip, upstream_path: "/fcgi-bin/iipsrv.fcgi?IIIF={{local_path}}/{{iiif}}" }}
  - name: render
    match: {{ path: "/render/{{image}}/{{iiif*}}" }}
    handler: {{ render: {{ origin: masters, key: "{{image}}" }} }}
  - name: web
    match: {{ path: "/web/{{rest*}}" }}
    handler: {{ proxy: {{ cluster: web }} }}
"#,
        receiver = receiver.port,
        origin = s3.origin_yaml("masters"),
        cache = cache.path().display(),
        iip = iip.port,
        web = web.addr(),
    ));

    // A tile through the orchestrated path, from a caller that traces it.
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let r = get("/tiles/sample/0,0,256,256/256,/0/default.jpg")
        .header("traceparent", &traceparent)
        .send(t.port);
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = receiver.trace(
        &unhex(CALLER_TRACE),
        &["request", "route", "cache", "copy", "fetch", "upstream"],
    );
    let request = named(&spans, "request");
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    assert_eq!(attribute(request, "http.route").as_deref(), Some("tiles"));
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("200")
    );
    for phase in ["route", "cache", "copy", "upstream"] {
        assert_eq!(
            named(&spans, phase).parent_span_id,
            request.span_id,
            "{phase}"
        );
    }
    // The origin's requests (its HEAD and GET) are part of the copy.
    let fetches: Vec<&Span> = spans
        .iter()
        .map(|e| &e.span)
        .filter(|s| s.name == "fetch")
        .collect();
    assert!(fetches
        .iter()
        .all(|f| f.parent_span_id == named(&spans, "copy").span_id));
    assert!(fetches
        .iter()
        .any(|f| attribute(f, "op").as_deref() == Some("GET")));
    assert_eq!(
        attribute(named(&spans, "upstream"), "cluster").as_deref(),
        Some("iip")
    );
    assert!(spans.iter().all(|e| e.service == "tessera-e2e"));

    // A request decoded in process, with no caller's trace: a trace of its own.
    let r = get("/render/sample/full/300,/0/default.jpg").send(t.port);
    assert_eq!(r.status, 200, "{}", r.text());
    let decode = || {
        receiver
            .spans()
            .into_iter()
            .find(|e| e.span.name == "decode")
    };
    assert!(
        crate::harness::eventually(30, || decode().is_some()),
        "no decode span"
    );
    let decode = decode().unwrap().span;
    let spans = receiver.trace(&decode.trace_id, &["request", "decode"]);
    let request = named(&spans, "request");
    assert!(request.parent_span_id.is_empty(), "a trace of its own");
    assert_eq!(decode.parent_span_id, request.span_id);
    assert_eq!(attribute(request, "http.route").as_deref(), Some("render"));

    // An HTTP upstream gets this request's context, not the one the client sent.
    let r = get("/web/echo")
        .header("traceparent", &traceparent)
        .send(t.port);
    assert_eq!(r.status, 200);
    let sent = r.echo()["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .to_string();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts[1], CALLER_TRACE, "{sent}");
    assert_ne!(parts[2], CALLER_SPAN, "{sent}");
    let exported = || {
        receiver.spans().iter().any(|e| {
            e.span.name == "upstream"
                && hex(&e.span.span_id) == parts[2]
                && hex(&e.span.trace_id) == CALLER_TRACE
        })
    };
    assert!(
        crate::harness::eventually(30, exported),
        "the upstream span {} was exported",
        parts[2]
    );

    // The log is as it was: no span of a trace in it.
    let log = t.log();
    assert!(
        !log.contains("tessera::phase") && !log.contains("\"spans\""),
        "{log}"
    );
}

#[test]
fn a_bad_traces_section_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(
        &path,
        "server:\n  traces:\n    endpoint: \"otel-collector:4318\"\n    sample_ratio: 2\n",
    )
    .unwrap();
    let out = std::process::Command::new(tessera_bin())
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("proxy.yaml:3:15:") && said.contains("not an http:// or https:// URL"),
        "{said}"
    );
    assert!(
        said.contains("proxy.yaml:4:19:") && said.contains("not between 0 and 1"),
        "{said}"
    );
}

/// A collector that is not there loses spans, never requests.
#[test]
fn requests_are_served_when_the_collector_is_down() {
    let port = crate::harness::free_port();
    let t = Tessera::start(&format!(
        "server:\n  traces: {{ endpoint: \"http://127.0.0.1:{port}/v1/traces\", timeout: 1s }}\nroutes:\n  - name: hello\n    match: {{ path: \"/hello\" }}\n    handler: {{ respond: {{ body: \"hello\" }} }}\n"
    ));
    for _ in 0..50 {
        assert_eq!(t.get("/hello").status, 200);
    }
    // The batch goes after at most 5 s, fails, and the log says so.
    assert!(t.wait_log("HTTP export failed"), "{}", t.log());
    assert_eq!(t.get("/hello").status, 200);
}
