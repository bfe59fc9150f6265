//! Small value types written as strings in `proxy.yaml`: durations (`5s`, `250ms`), rates
//! (`200/s`), sizes (`50GiB`) and shares (`90%`). Each deserialises from its string form and describes itself in the JSON Schema.

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

/// A size in bytes, written as a number or with a unit: `500MB`, `50GiB`, `64KiB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<Self, String> {
        let err = || format!("invalid size {text:?}: write e.g. 1048576, 500MB, 64MiB or 50GiB");
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let n: f64 = number.parse().map_err(|_| err())?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            _ => return Err(err()),
        };
        let bytes = n * mult as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(err());
        }
        Ok(Self(bytes as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_yaml_ng::Value::deserialize(d)? {
            serde_yaml_ng::Value::Number(n) => n
                .as_u64()
                .map(ByteSize)
                .ok_or_else(|| serde::de::Error::custom("a size must be a whole number of bytes")),
            serde_yaml_ng::Value::String(s) => Self::parse(&s).map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(
                "expected a size such as 500MB or 50GiB",
            )),
        }
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "integer"],
            "description": "A size in bytes: a number, or with a unit (KB, MB, GB, TB, KiB, MiB, GiB, TiB).",
        })
    }
}

/// A share between 0 and 1, written `90%` or `0.9`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Share(pub f64);

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let err =
            |t: &str| serde::de::Error::custom(format!("invalid share {t}: write e.g. 90% or 0.9"));
        let value = match serde_yaml_ng::Value::deserialize(d)? {
            serde_yaml_ng::Value::Number(n) => n.as_f64().ok_or_else(|| err(&n.to_string()))?,
            serde_yaml_ng::Value::String(s) => match s.trim().strip_suffix('%') {
                Some(p) => p.trim().parse::<f64>().map_err(|_| err(&s))? / 100.0,
                None => s.trim().parse::<f64>().map_err(|_| err(&s))?,
            },
            other => return Err(err(&format!("{other:?}"))),
        };
        if !(0.0..=1.0).contains(&value) {
            return Err(serde::de::Error::custom(format!(
                "a share must be between 0% and 100%, not {value}"
            )));
        }
        Ok(Share(value))
    }
}

impl JsonSchema for Share {
    fn schema_name() -> Cow<'static, str> {
        "Share".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "number"],
            "description": "A share: a percentage such as 90%, or a number between 0 and 1.",
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

    #[test]
    fn parses_sizes_and_shares() {
        assert_eq!(ByteSize::parse("50GiB").unwrap().0, 50 << 30);
        assert_eq!(ByteSize::parse("500MB").unwrap().0, 500_000_000);
        assert_eq!(ByteSize::parse("1.5KiB").unwrap().0, 1536);
        assert!(ByteSize::parse("12 parsecs").is_err());
        let n: ByteSize = serde_yaml_ng::from_str("1024").unwrap();
        assert_eq!(n.0, 1024);
        let s: Share = serde_yaml_ng::from_str("\"90%\"").unwrap();
        assert!((s.0 - 0.9).abs() < 1e-9);
        let s: Share = serde_yaml_ng::from_str("0.8").unwrap();
        assert!((s.0 - 0.8).abs() < 1e-9);
        assert!(serde_yaml_ng::from_str::<Share>("150%").is_err());
    }
}
