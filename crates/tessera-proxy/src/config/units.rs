//! Small value types written as strings in `proxy.yaml`: durations (`5s`, `250ms`) and rates
//! (`200/s`). Each deserialises from its string form and describes itself in the JSON Schema.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// A duration written as `250ms`, `5s`, `1m`, `1h 30m` (humantime syntax).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write e.g. 250ms, 5s, 1m"
            ))
        })
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as 250ms, 5s, 1m or 1h 30m.",
            "pattern": "^[0-9]+ ?[a-z]+( ?[0-9]+ ?[a-z]+)*$"
        })
    }
}

/// A request rate written as `N/s`, `N/m` or `N/h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatePerWindow {
    pub limit: u64,
    pub window: Duration,
}

impl RatePerWindow {
    pub fn parse(text: &str) -> Result<Self, String> {
        let err = || format!("invalid rate {text:?}: write N/s, N/m or N/h, e.g. 200/s");
        let (n, unit) = text.split_once('/').ok_or_else(err)?;
        let limit: u64 = n.trim().parse().map_err(|_| err())?;
        let window = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(err()),
        };
        if limit == 0 {
            return Err(format!(
                "invalid rate {text:?}: the limit must be at least 1"
            ));
        }
        Ok(Self { limit, window })
    }
}

impl<'de> Deserialize<'de> for RatePerWindow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for RatePerWindow {
    fn schema_name() -> Cow<'static, str> {
        "Rate".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A rate: N/s, N/m or N/h.",
            "pattern": "^[0-9]+/(s|m|h)$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(
            RatePerWindow::parse("200/s").unwrap(),
            RatePerWindow {
                limit: 200,
                window: Duration::from_secs(1)
            }
        );
        assert_eq!(
            RatePerWindow::parse("5/m").unwrap().window,
            Duration::from_secs(60)
        );
        assert!(RatePerWindow::parse("200").is_err());
        assert!(RatePerWindow::parse("x/s").is_err());
        assert!(RatePerWindow::parse("0/s").is_err());
        assert!(RatePerWindow::parse("3/d").is_err());
    }

    #[test]
    fn parses_durations() {
        let d: Dur = serde_yaml_ng::from_str("250ms").unwrap();
        assert_eq!(d.0, Duration::from_millis(250));
        assert!(serde_yaml_ng::from_str::<Dur>("soon").is_err());
    }
}
