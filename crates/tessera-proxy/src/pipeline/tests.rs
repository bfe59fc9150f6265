//! The pipeline on its own: a runtime built from YAML, requests as headers, no network.

use super::{run, Exchange, Outcome};
use crate::config::load_str;
use crate::plugin::{
    BuildContext, BuildError, Filter, Flow, Handler, HandlerAction, HttpError, LocalResponse,
    RequestContext, StreamedResponse,
};
use crate::runtime::Runtime;
use crate::Builder;
use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use pingora::http::RequestHeader;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Nothing {}

/// Answers 200 with the route's name, counting its calls.
struct Counting(Arc<AtomicUsize>);

#[async_trait]
impl Handler for Counting {
    async fn handle(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let body = Bytes::from(req.route.to_string());
        Ok(HandlerAction::Respond(
            LocalResponse::new(StatusCode::OK)
                .with_body("text/plain", body)
                .with_header(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("max-age=60"),
                ),
        ))
    }
}

/// Hands every request to the route named in its config.
struct HandTo(String);

#[async_trait]
impl Handler for HandTo {
    async fn handle(&self, _req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        Ok(HandlerAction::Route(self.0.clone()))
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct HandToConfig {
    route: String,
}

/// Streams a body of a known length.
struct Streaming;

#[async_trait]
impl Handler for Streaming {
    async fn handle(&self, _req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        Ok(HandlerAction::Stream(StreamedResponse {
            head: LocalResponse::new(StatusCode::OK),
            length: 5,
            body: Box::new(std::io::Cursor::new(b"hello".to_vec())),
        }))
    }
}

/// Fails with 503.
struct Failing;

#[async_trait]
impl Handler for Failing {
    async fn handle(&self, _req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        Err(HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "not now"))
    }
}

/// Answers 403 before the handler when the request has `x-stop`.
struct Stop;

#[async_trait]
impl Filter for Stop {
    async fn request(&self, req: &mut RequestContext<'_>) -> Result<Flow, HttpError> {
        if req.header_str("x-stop").is_some() {
            return Ok(Flow::Respond(LocalResponse::text(
                StatusCode::FORBIDDEN,
                "stopped",
            )));
        }
        Ok(Flow::Continue)
    }
}

struct Test {
    runtime: Runtime,
    calls: Arc<AtomicUsize>,
}

fn test(routes: &str) -> Test {
    test_with("", routes)
}

/// [`test`] with more top-level keys (`top`, whole lines).
fn test_with(top: &str, routes: &str) -> Test {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let builder = Builder::with_builtins()
        .handler("count", move |_: Nothing, _: &BuildContext<'_>| {
            Ok(Counting(counted.clone()))
        })
        .handler("hand_to", |c: HandToConfig, ctx: &BuildContext<'_>| {
            Ok::<_, BuildError>(HandTo(ctx.route(&c.route)?))
        })
        .handler("stream", |_: Nothing, _: &BuildContext<'_>| Ok(Streaming))
        .handler("fail", |_: Nothing, _: &BuildContext<'_>| Ok(Failing))
        .filter("stop", |_: Nothing, _: &BuildContext<'_>| Ok(Stop));
    let yaml = format!(
        "{top}limits: {{ max_request_header_bytes: 1024 }}\nclusters:\n  web: {{ endpoints: [\"127.0.0.1:1\"] }}\nroutes:\n{routes}"
    );
    let (config, source) = load_str("p.yaml", &yaml).expect("parses");
    let runtime = Runtime::build(config, &source, builder.registry(), None).expect("builds");
    Test { runtime, calls }
}

fn get(path: &str) -> RequestHeader {
    let mut header = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    header.insert_header("host", "example.org").unwrap();
    header
}

impl Test {
    async fn send(&self, header: RequestHeader) -> (Outcome, Exchange) {
        self.send_from(None, header).await
    }

    async fn send_from(
        &self,
        client: Option<&str>,
        mut header: RequestHeader,
    ) -> (Outcome, Exchange) {
        let mut ex = Exchange::new(client.map(|ip| ip.parse().unwrap()), false);
        let outcome = run(&self.runtime, &mut header, &mut ex).await;
        (outcome, ex)
    }

    async fn answer(&self, header: RequestHeader) -> (LocalResponse, Exchange) {
        match self.send(header).await {
            (Outcome::Answer(r), ex) => (r, ex),
            _ => panic!("expected an answer made here"),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

const COUNTED: &str =
    "  - name: counted\n    match: { path: \"/c/{rest*}\" }\n    handler: count\n";

#[tokio::test]
async fn the_first_matching_route_answers() {
    let t = test(COUNTED);
    let (r, ex) = t.answer(get("/c/x")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"counted");
    assert_eq!(ex.route_name(), "counted");
    assert_eq!(ex.captures.get("rest"), Some("x"));
}

#[tokio::test]
async fn no_route_is_404_and_a_large_header_431() {
    let t = test(COUNTED);
    let (r, ex) = t.answer(get("/elsewhere")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(ex.route_name(), crate::route::NO_ROUTE);

    let mut big = get("/c/x");
    big.insert_header("x-big", "a".repeat(2000)).unwrap();
    assert_eq!(
        t.answer(big).await.0.status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(t.calls(), 0);
}

#[tokio::test]
async fn a_filter_answers_before_the_handler() {
    let t = test(
        "  - name: r\n    match: { path: \"/{rest*}\" }\n    filters: [stop]\n    handler: count\n",
    );
    let mut stopped = get("/a");
    stopped.insert_header("x-stop", "1").unwrap();
    let (r, _) = t.answer(stopped).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(t.calls(), 0);
    assert_eq!(t.answer(get("/a")).await.0.status, StatusCode::OK);
    assert_eq!(t.calls(), 1);
}

#[tokio::test]
async fn a_proxying_handler_goes_upstream_with_its_rewrite() {
    let t = test("  - name: p\n    match: { path: \"/i/{id}\" }\n    handler: { proxy: { cluster: web, path: \"/x?IIIF={id}\" } }\n");
    match t.send(get("/i/abc")).await {
        (Outcome::Upstream(target), _) => {
            assert_eq!(target.cluster.name(), "web");
            assert_eq!(target.path_and_query.as_deref(), Some("/x?IIIF=abc"));
        }
        _ => panic!("expected to go upstream"),
    }
}

#[tokio::test]
async fn hand_offs_reach_the_named_route_and_loops_end() {
    // `counted` matches any path, so it comes last: the first matching route wins.
    let routes = "  - name: first\n    match: { path: \"/h/{rest*}\" }\n    handler: { hand_to: { route: counted } }\n".to_string()
        + "  - name: ping\n    match: { path: \"/loop\" }\n    handler: { hand_to: { route: pong } }\n"
        + "  - name: pong\n    match: { path: \"/loop\" }\n    handler: { hand_to: { route: ping } }\n"
        + "  - name: narrow\n    match: { path: \"/n\" }\n    handler: { hand_to: { route: only_x } }\n"
        + "  - name: only_x\n    match: { path: \"/x\" }\n    handler: count\n"
        + COUNTED.replace("/c/{rest*}", "/{rest*}").as_str();
    let t = test(&routes);
    let (r, ex) = t.answer(get("/h/y")).await;
    assert_eq!(&r.body[..], b"counted");
    assert_eq!(ex.route_name(), "counted");
    assert_eq!(
        ex.captures.get("rest"),
        Some("h/y"),
        "the next route's captures"
    );

    let (r, _) = t.answer(get("/loop")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let (r, _) = t.answer(get("/n")).await;
    assert_eq!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the next route must match"
    );
    assert_eq!(t.calls(), 1);
}

#[tokio::test]
async fn errors_are_answers_and_streams_pass_through() {
    let t = test("  - name: f\n    match: { path: \"/f\" }\n    handler: fail\n  - name: s\n    match: { path: \"/s\" }\n    handler: stream\n");
    let (r, _) = t.answer(get("/f")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(&r.body[..], b"not now\n");
    match t.send(get("/s")).await {
        (Outcome::Stream(s), _) => assert_eq!(s.length, 5),
        _ => panic!("expected a stream"),
    }
}

#[tokio::test]
async fn a_cached_route_answers_the_second_request_from_memory() {
    let t = test(&(COUNTED.to_string() + "    cache: {}\n"));
    let (first, ex) = t.answer(get("/c/x")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(ex.cache.status(), Some("miss"));
    let (second, ex) = t.answer(get("/c/x")).await;
    assert_eq!(ex.cache.status(), Some("hit"));
    assert_eq!(second.body, first.body);
    assert_eq!(t.calls(), 1, "the handler ran once");

    let mut head = get("/c/y");
    head.set_method(http::Method::POST);
    let (_, ex) = t.answer(head).await;
    assert_eq!(ex.cache.status(), Some("bypass"));
    assert_eq!(t.calls(), 2);
}

#[tokio::test]
async fn a_host_that_is_not_a_host_is_400() {
    let t = test(COUNTED);
    for host in [
        "evil.example/x?y=1#",
        "a b",
        "x:port",
        "[::1",
        "[nonsense]:80",
        "",
        "x@y",
    ] {
        let mut header = get("/c/x");
        header.insert_header("host", host).unwrap();
        let (r, _) = t.answer(header).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{host:?}");
    }
    for host in [
        "example.org",
        "example.org:8080",
        "127.0.0.1:1",
        "[::1]:8080",
        "[2001:db8::1]",
        "my_host",
    ] {
        let mut header = get("/c/x");
        header.insert_header("host", host).unwrap();
        assert_eq!(t.answer(header).await.0.status, StatusCode::OK, "{host:?}");
    }
    let mut no_host = RequestHeader::build("GET", b"/c/x", None).unwrap();
    no_host.set_version(http::Version::HTTP_11);
    assert_eq!(t.answer(no_host).await.0.status, StatusCode::BAD_REQUEST);
    let mut old = RequestHeader::build("GET", b"/c/x", None).unwrap();
    old.set_version(http::Version::HTTP_10);
    assert_eq!(t.answer(old).await.0.status, StatusCode::OK);
    assert_eq!(t.calls(), 7);
}

#[tokio::test]
async fn a_repeated_content_length_becomes_one_and_differing_ones_are_400() {
    let t = test(
        "  - name: p\n    match: { path: \"/p\" }\n    handler: { proxy: { cluster: web } }\n",
    );
    let mut header = get("/p");
    header.set_method(http::Method::POST);
    header.insert_header("content-length", "5, 5").unwrap();
    let mut ex = Exchange::new(None, false);
    let outcome = run(&t.runtime, &mut header, &mut ex).await;
    assert!(matches!(outcome, Outcome::Upstream(_)));
    assert_eq!(header.headers["content-length"], "5");

    for bad in ["5, 6", "x", "-1", ""] {
        let mut header = get("/p");
        header.set_method(http::Method::POST);
        header.insert_header("content-length", bad).unwrap();
        let (r, _) = t.answer(header).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
}

fn preflight(path: &str) -> RequestHeader {
    let mut header = get(path);
    header.set_method(http::Method::OPTIONS);
    header
        .insert_header("origin", "https://viewer.example")
        .unwrap();
    header
        .insert_header("access-control-request-method", "GET")
        .unwrap();
    header
}

#[tokio::test]
async fn a_route_with_cors_answers_preflights_whatever_its_methods() {
    let routes = "  - name: with-cors\n    match: { path: \"/a/{rest*}\", methods: [GET, HEAD] }\n    filters: [cors]\n    handler: count\n  - name: without\n    match: { path: \"/b/{rest*}\", methods: [GET, HEAD] }\n    handler: count\n";
    let t = test(routes);
    let (r, ex) = t.answer(preflight("/a/x")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(ex.route_name(), "with-cors");
    let allow = r
        .headers
        .iter()
        .find(|(k, _)| k == http::header::ACCESS_CONTROL_ALLOW_ORIGIN);
    assert_eq!(allow.map(|(_, v)| v.as_bytes()), Some(&b"*"[..]));
    assert_eq!(t.calls(), 0, "the handler never sees a preflight");
    // Without cors, or without Access-Control-Request-Method, the methods still hold.
    let (r, _) = t.answer(preflight("/b/x")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let mut plain = get("/a/x");
    plain.set_method(http::Method::OPTIONS);
    let (r, _) = t.answer(plain).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_public_base_comes_from_config_a_trusted_proxy_or_the_request() {
    let routes = COUNTED.to_string()
        + "    cache: {}\n  - name: fixed\n    match: { path: \"/f/{rest*}\" }\n    public_url: \"https://route.example/prefix/\"\n    handler: count\n";
    let t = test_with("trusted_proxies: [\"10.0.0.0/8\"]\n", &routes);
    let forwarded = || {
        let mut h = get("/c/x");
        h.insert_header("x-forwarded-proto", "https").unwrap();
        h.insert_header("x-forwarded-host", "iiif.example.org")
            .unwrap();
        h
    };
    let (_, ex) = t.send_from(Some("10.1.2.3"), forwarded()).await;
    assert_eq!(&*ex.public_base, "https://iiif.example.org");
    // A client that is not a trusted proxy gets its own request's base, and not the answer
    // kept for the other base.
    let (_, ex) = t.send_from(Some("192.0.2.1"), forwarded()).await;
    assert_eq!(&*ex.public_base, "http://example.org");
    assert_eq!(ex.cache.status(), Some("miss"));
    assert_eq!(t.calls(), 2);
    let (_, ex) = t.send_from(Some("10.1.2.3"), get("/f/x")).await;
    assert_eq!(&*ex.public_base, "https://route.example/prefix");

    let fixed = test_with("public_url: \"https://iiif.example.org\"\n", COUNTED);
    let (_, ex) = fixed.send(get("/c/x")).await;
    assert_eq!(&*ex.public_base, "https://iiif.example.org");
}

#[tokio::test]
async fn bad_public_urls_and_proxies_are_refused_at_their_lines() {
    let yaml = "public_url: \"iiif.example.org\"\ntrusted_proxies: [\"10.0.0.0/8\", \"nonsense\"]\nroutes:\n  - name: r\n    match: { path: \"/\" }\n    public_url: \"https://x.example/?q\"\n    handler: { respond: { body: \"\" } }\n";
    let (config, source) = load_str("p.yaml", yaml).expect("parses");
    let Err(errors) = Runtime::build(config, &source, Builder::with_builtins().registry(), None)
    else {
        panic!("built")
    };
    let text: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
    assert_eq!(text.len(), 3, "{text:?}");
    assert!(
        text[0].starts_with("p.yaml:1:") && text[0].contains("http://"),
        "{text:?}"
    );
    assert!(
        text[1].starts_with("p.yaml:2:") && text[1].contains("nonsense"),
        "{text:?}"
    );
    assert!(
        text[2].starts_with("p.yaml:6:") && text[2].contains("query"),
        "{text:?}"
    );
}
