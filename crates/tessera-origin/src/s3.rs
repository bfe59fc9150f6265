//! S3, or any S3-compatible server, as an origin (aws-sdk-s3).
//!
//! Credentials come from the standard AWS chain (environment, profile, web identity, instance
//! metadata), so nothing secret goes in `proxy.yaml`. Timeouts and retries are the SDK's own,
//! configured per origin, up to the response's headers; bodies are held to a [`Pace`] (no
//! stall longer than the read timeout, no trickle under the minimum rate). Ranged reads are plain `Range: bytes=a-b` GETs. Listing is
//! ListObjectsV2, page after page (1000 keys each) until the continuation token runs out.

use crate::pace::{Pace, Paced};
use crate::{ObjectMeta, ObjectReader, Origin, OriginError};
use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::Client;
use bytes::Bytes;
use std::ops::Range;
use std::time::Duration;
use tracing::Instrument;

/// How to reach one bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct S3Settings {
    pub bucket: String,
    /// Default: `us-east-1` (S3-compatible servers usually ignore it).
    pub region: Option<String>,
    /// An S3-compatible server's URL, e.g. `http://127.0.0.1:9000`. Default: AWS.
    pub endpoint: Option<String>,
    /// Address buckets as `endpoint/bucket/key` rather than `bucket.endpoint/key`.
    pub path_style: bool,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response, its body included.
    pub read_timeout: Duration,
    /// The lowest average rate of a body, in bytes a second, once `min_rate_after` has passed
    /// since it began; 0: no lower bound.
    pub min_rate: u64,
    pub min_rate_after: Duration,
    /// Longest time for one whole request, retries included. `None`: no limit (a large copy
    /// may legitimately take minutes).
    pub operation_timeout: Option<Duration>,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
}

/// Why an S3 origin could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum S3SetupError {
    #[error("cannot start a runtime to load the AWS config: {0}")]
    Runtime(std::io::Error),
    #[error("loading the AWS config panicked")]
    Panicked,
}

pub struct S3Origin {
    client: Client,
    bucket: String,
    pace: Pace,
}

impl S3Origin {
    /// Build the client. The AWS config loader is async; it runs on a thread of its own so this
    /// works both before the server's runtimes exist and from inside one (a config reload).
    pub fn new(settings: &S3Settings) -> Result<Self, S3SetupError> {
        let s = settings.clone();
        let shared = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(S3SetupError::Runtime)?;
            let mut timeouts = TimeoutConfig::builder()
                .connect_timeout(s.connect_timeout)
                .read_timeout(s.read_timeout);
            if let Some(t) = s.operation_timeout {
                timeouts = timeouts.operation_timeout(t);
            }
            let loader = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(
                    s.region.clone().unwrap_or_else(|| "us-east-1".into()),
                ))
                .timeout_config(timeouts.build())
                // Bodies are held to our own `Pace` (the read timeout and the minimum rate);
                // the SDK's stall check would cut a stall at its own ~5 s and call it a
                // dispatch failure, not a timeout.
                .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
                .retry_config(RetryConfig::standard().with_max_attempts(s.max_attempts.max(1)));
            Ok::<_, S3SetupError>(rt.block_on(loader.load()))
        })
        .join()
        .map_err(|_| S3SetupError::Panicked)??;

        let mut conf = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(url) = &settings.endpoint {
            conf = conf.endpoint_url(url);
        }
        conf = conf.force_path_style(settings.path_style);
        Ok(Self {
            client: Client::from_conf(conf.build()),
            bucket: settings.bucket.clone(),
            pace: Pace {
                idle: settings.read_timeout,
                min_rate: settings.min_rate,
                grace: settings.min_rate_after,
            },
        })
    }
}

/// Map an SDK error: 404 → not found, 403 → denied, timeouts, anything else → unavailable.
fn sdk_error<E>(what: &str, key: &str, e: SdkError<E>) -> OriginError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let timed_out = match &e {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_timeout(),
        _ => false,
    };
    let detail = format!("{what} {key}: {}", DisplayErrorContext(&e));
    if timed_out {
        return OriginError::Timeout(detail);
    }
    match e.raw_response().map(|r| r.status().as_u16()) {
        Some(404) => OriginError::NotFound,
        // 416: a range past the end, worked out from what the object was (it is shorter now).
        Some(412 | 416) => OriginError::Changed,
        Some(403) => OriginError::Denied(detail),
        _ => OriginError::Unavailable(detail),
    }
}

/// The `fetch` span of one request to S3, up to its answer's header (a body is read by the
/// caller, within its own span).
fn fetch_span(op: &'static str, key: &str, range: Option<&Range<u64>>) -> tracing::Span {
    let span = tracing::info_span!(
        target: crate::TRACE_PHASE,
        "fetch",
        otel.kind = "client",
        op,
        key,
        range = tracing::field::Empty,
    );
    if let (Some(r), false) = (range, span.is_disabled()) {
        span.record(
            "range",
            format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
        );
    }
    span
}

#[async_trait]
impl Origin for S3Origin {
    async fn head(&self, key: &str) -> Result<ObjectMeta, OriginError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .instrument(fetch_span("HEAD", key, None))
            .await
            .map_err(|e| sdk_error("HEAD", key, e))?;
        let size = out
            .content_length()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                OriginError::Unavailable(format!("HEAD {key}: no Content-Length in the answer"))
            })?;
        Ok(ObjectMeta {
            size,
            etag: out.e_tag().map(str::to_string),
        })
    }

    async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
        version: Option<&str>,
    ) -> Result<ObjectReader, OriginError> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some(etag) = version {
            req = req.if_match(etag);
        }
        if let Some(r) = &range {
            if r.end <= r.start {
                return Ok(Box::new(tokio::io::empty()));
            }
            req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = req
            .send()
            .instrument(fetch_span("GET", key, range.as_ref()))
            .await
            .map_err(|e| sdk_error("GET", key, e))?;
        Ok(Box::new(Paced::new(out.body.into_async_read(), self.pace)))
    }

    async fn open(&self, key: &str) -> Result<(ObjectMeta, ObjectReader), OriginError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .instrument(fetch_span("GET", key, None))
            .await
            .map_err(|e| sdk_error("GET", key, e))?;
        let size = out
            .content_length()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                OriginError::Unavailable(format!("GET {key}: no Content-Length in the answer"))
            })?;
        let meta = ObjectMeta {
            size,
            etag: out.e_tag().map(str::to_string),
        };
        Ok((
            meta,
            Box::new(Paced::new(out.body.into_async_read(), self.pace)),
        ))
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<(), OriginError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_error("PUT", key, e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, OriginError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| match sdk_error("LIST", prefix, e) {
                    // A 404 here is the bucket, not an object.
                    OriginError::NotFound => {
                        OriginError::Unavailable(format!("LIST: no bucket {:?}", self.bucket))
                    }
                    e => e,
                })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    // "Folder" placeholders made by consoles hold no image.
                    .filter(|k| !k.ends_with('/'))
                    .map(str::to_string),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        // AWS lists in key order already; some S3-compatible servers do not.
        keys.sort();
        Ok(keys)
    }

    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }
}
