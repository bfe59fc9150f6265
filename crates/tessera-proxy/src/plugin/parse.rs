//! A plugin's YAML, parsed into its config type, and the error it reports when that (or its
//! build) fails: a message and where in the plugin's config it belongs.

use crate::config::{ConfigPath, PathSeg};
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

/// A problem in one plugin's configuration, at `path` relative to that configuration.
#[derive(Clone, Debug)]
pub struct BuildError {
    pub path: ConfigPath,
    pub message: String,
}

impl BuildError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            path: ConfigPath::root(),
            message: message.into(),
        }
    }

    /// The same error, attributed to the field `key` of the configuration.
    pub fn at(mut self, key: &str) -> Self {
        self.path.0.insert(0, PathSeg::Key(key.to_string()));
        self
    }
}

/// Parse a plugin configuration. The bare-name form (`cors`) parses as an empty map, so a config
/// type whose fields all have defaults works both ways.
pub fn parse_config<C: DeserializeOwned>(config: Value) -> Result<C, BuildError> {
    let value = if config.is_null() {
        Value::Mapping(Default::default())
    } else {
        config
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = ConfigPath::root();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => path = path.index(*index),
                serde_path_to_error::Segment::Map { key } => path = path.key(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => path = path.key(variant.clone()),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = e.into_inner().to_string();
        BuildError { path, message }
    })
}
