//! How a filter or handler is written in YAML: a bare name (`cors`) or a map with exactly one
//! key, the name, whose value is that plugin's own configuration (`{ rate_limit: { per_ip: 200/s } }`).

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};
use serde_yaml_ng::Value;
use std::borrow::Cow;

/// A filter or handler reference, its configuration still unparsed: the factory registered under
/// `name` parses it and so decides what it accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSpec {
    pub name: String,
    /// `Null` for the bare-name form.
    pub config: Value,
}

impl<'de> Deserialize<'de> for PluginSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let expected = "expected a name (e.g. `cors`) or a map with exactly one key, the name (e.g. `{ proxy: { cluster: web } }`)";
        match value {
            Value::String(name) => Ok(Self {
                name,
                config: Value::Null,
            }),
            Value::Mapping(map) if map.len() == 1 => {
                let (k, v) = map.into_iter().next().expect("one entry");
                match k {
                    Value::String(name) => Ok(Self { name, config: v }),
                    _ => Err(serde::de::Error::custom(expected)),
                }
            }
            _ => Err(serde::de::Error::custom(expected)),
        }
    }
}

/// Placeholder in the generated schema; `tessera schema` replaces its definition with the
/// registered filters' schemas.
pub struct FilterSpecSchema;
/// Placeholder in the generated schema for the registered handlers.
pub struct HandlerSpecSchema;

impl JsonSchema for FilterSpecSchema {
    fn schema_name() -> Cow<'static, str> {
        "FilterSpec".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "description": "A filter: a name or a one-key map {name: config}." })
    }
}

impl JsonSchema for HandlerSpecSchema {
    fn schema_name() -> Cow<'static, str> {
        "HandlerSpec".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "description": "A handler: a one-key map {name: config}." })
    }
}
