//! Factories build filters and handlers from their YAML configuration; the [`Registry`] holds
//! them by name.
//!
//! A factory is a config type (serde + JsonSchema) and a build function, Vector-style: the
//! config type is both what the YAML is parsed into and what `tessera schema` describes.

use super::{Filter, Handler};
use crate::cluster::Cluster;
use crate::config::{ConfigPath, PathSeg};
use crate::storage::HotCacheSlot;
use crate::template::Template;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::Arc;
use tessera_origin::Origin;

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

/// What a factory may consult while building: the route's captures and the clusters.
pub struct BuildContext<'a> {
    /// The route being built.
    pub route: &'a str,
    /// Names the route's path pattern captures.
    pub captures: &'a BTreeSet<String>,
    pub(crate) clusters: &'a BTreeMap<String, Arc<Cluster>>,
    pub(crate) origins: &'a BTreeMap<String, Arc<dyn Origin>>,
    /// Every route's name, for handlers that hand requests to another route.
    pub(crate) route_names: &'a BTreeSet<String>,
    pub(crate) hot_cache: Option<&'a Arc<HotCacheSlot>>,
    pub(crate) image_index: &'a Arc<crate::imaging::IndexStore>,
}

fn known(names: impl Iterator<Item = impl AsRef<str>>) -> String {
    let names: Vec<String> = names.map(|n| n.as_ref().to_string()).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

impl BuildContext<'_> {
    /// The origin called `name`.
    pub fn origin(&self, name: &str) -> Result<Arc<dyn Origin>, BuildError> {
        self.origins.get(name).cloned().ok_or_else(|| {
            BuildError::new(format!(
                "unknown origin {name:?} (defined: {})",
                known(self.origins.keys())
            ))
        })
    }

    /// Check that a route called `name` exists (other than this one).
    pub fn route(&self, name: &str) -> Result<String, BuildError> {
        if name == self.route {
            return Err(BuildError::new("a route cannot hand requests to itself"));
        }
        if self.route_names.contains(name) {
            Ok(name.to_string())
        } else {
            Err(BuildError::new(format!(
                "unknown route {name:?} (defined: {})",
                known(self.route_names.iter())
            )))
        }
    }

    /// The process's store of JP2 header indexes (`image_index:`).
    pub fn image_index(&self) -> Arc<crate::imaging::IndexStore> {
        self.image_index.clone()
    }

    /// The process's hot cache; an error if `hot_cache:` is not configured.
    pub fn hot_cache(&self) -> Result<Arc<HotCacheSlot>, BuildError> {
        self.hot_cache
            .cloned()
            .ok_or_else(|| BuildError::new("this handler needs a top-level `hot_cache:` section"))
    }

    /// Parse a template and check that it only uses this route's captures.
    pub fn template(&self, text: &str) -> Result<Template, BuildError> {
        let t = Template::parse(text).map_err(BuildError::new)?;
        t.check(self.captures).map_err(BuildError::new)?;
        Ok(t)
    }

    /// The cluster called `name`, checking that a consistent-hash key can be built from this
    /// route's captures.
    pub fn cluster(&self, name: &str) -> Result<Arc<Cluster>, BuildError> {
        let cluster = self.clusters.get(name).ok_or_else(|| {
            BuildError::new(format!(
                "unknown cluster {name:?} (defined: {})",
                known(self.clusters.keys())
            ))
        })?;
        if let Some(key) = cluster.hash_key() {
            key.check(self.captures).map_err(|e| {
                BuildError::new(format!(
                    "cluster {name:?} hashes on a key this route cannot build: {e}"
                ))
            })?;
        }
        Ok(cluster.clone())
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

/// Builds filters of one kind.
pub trait FilterFactory: Send + Sync {
    fn build(&self, config: Value, ctx: &BuildContext<'_>) -> Result<Arc<dyn Filter>, BuildError>;
    /// The JSON Schema of this filter's configuration.
    fn schema(&self, gen: &mut SchemaGenerator) -> Schema;
}

/// Builds handlers of one kind.
pub trait HandlerFactory: Send + Sync {
    fn build(&self, config: Value, ctx: &BuildContext<'_>) -> Result<Arc<dyn Handler>, BuildError>;
    fn schema(&self, gen: &mut SchemaGenerator) -> Schema;
}

/// A factory from a config type `C` and a build function.
pub(crate) struct FnFactory<C, F> {
    build: F,
    _config: PhantomData<fn() -> C>,
}

impl<C, F> FnFactory<C, F> {
    pub(crate) fn new(build: F) -> Self {
        Self {
            build,
            _config: PhantomData,
        }
    }
}

impl<C, F, T> FilterFactory for FnFactory<C, F>
where
    C: DeserializeOwned + JsonSchema,
    F: Fn(C, &BuildContext<'_>) -> Result<T, BuildError> + Send + Sync,
    T: Filter,
{
    fn build(&self, config: Value, ctx: &BuildContext<'_>) -> Result<Arc<dyn Filter>, BuildError> {
        let config = parse_config::<C>(config)?;
        Ok(Arc::new((self.build)(config, ctx)?))
    }
    fn schema(&self, gen: &mut SchemaGenerator) -> Schema {
        gen.subschema_for::<C>()
    }
}

/// Handler factories use a separate wrapper type so one config type can serve both kinds.
pub(crate) struct FnHandlerFactory<C, F>(pub(crate) FnFactory<C, F>);

impl<C, F, T> HandlerFactory for FnHandlerFactory<C, F>
where
    C: DeserializeOwned + JsonSchema,
    F: Fn(C, &BuildContext<'_>) -> Result<T, BuildError> + Send + Sync,
    T: Handler,
{
    fn build(&self, config: Value, ctx: &BuildContext<'_>) -> Result<Arc<dyn Handler>, BuildError> {
        let config = parse_config::<C>(config)?;
        Ok(Arc::new((self.0.build)(config, ctx)?))
    }
    fn schema(&self, gen: &mut SchemaGenerator) -> Schema {
        gen.subschema_for::<C>()
    }
}

/// The filter and handler factories known to one Tessera binary.
#[derive(Clone, Default)]
pub struct Registry {
    pub(crate) filters: BTreeMap<String, Arc<dyn FilterFactory>>,
    pub(crate) handlers: BTreeMap<String, Arc<dyn HandlerFactory>>,
}

impl Registry {
    pub fn filter_names(&self) -> Vec<&str> {
        self.filters.keys().map(String::as_str).collect()
    }
    pub fn handler_names(&self) -> Vec<&str> {
        self.handlers.keys().map(String::as_str).collect()
    }
}
