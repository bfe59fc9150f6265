//! `server.traces:`: where spans go, when an operator wants traces (off without it).

use super::Dur;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// OpenTelemetry traces, exported with OTLP over HTTP (protobuf) to a collector.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    /// The collector's OTLP/HTTP traces URL, used as written:
    /// `http://otel-collector:4318/v1/traces`.
    pub endpoint: String,
    /// `service.name` of every span.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// The share of requests traced, from 0 to 1, decided when a request starts; a request
    /// whose `traceparent` says its caller traces it is traced.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// How long one export may take; spans of a batch that could not be sent are dropped.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// Headers sent with every export (an API key a hosted collector asks for).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_service_name() -> String {
    "tessera".into()
}

fn default_sample_ratio() -> f64 {
    1.0
}

fn default_timeout() -> Dur {
    Dur::secs(10)
}

impl TracesConfig {
    /// What is wrong, each with the key it is about.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut found = Vec::new();
        match self.endpoint.parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            _ => found.push((
                "endpoint",
                format!(
                    "{:?} is not an http:// or https:// URL (e.g. http://otel-collector:4318/v1/traces)",
                    self.endpoint
                ),
            )),
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            found.push((
                "sample_ratio",
                format!("{} is not between 0 and 1", self.sample_ratio),
            ));
        }
        if self.timeout.0.is_zero() {
            found.push(("timeout", "must be more than 0".into()));
        }
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                found.push(("headers", format!("{name:?} is not a valid header")));
            }
        }
        found
    }
}
