//! Factories build filters and handlers from their YAML configuration; the [`Registry`] holds
//! them by name.
//!
//! A factory is a config type (serde + JsonSchema) and a build function, Vector-style: the
//! config type is both what the YAML is parsed into and what `tessera schema` describes.

pub use super::parse::{parse_config, BuildError};
use super::resources::{Resource, Resources};
use super::{Filter, Handler};
use crate::cluster::Cluster;
use crate::template::Template;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::Arc;

/// What a factory may consult while building: the route's captures, the clusters, the other
/// routes' names and the config's shared [resources](super::resources).
pub struct BuildContext<'a> {
    /// The route being built.
    pub route: &'a str,
    /// Names the route's path pattern captures.
    pub captures: &'a BTreeSet<String>,
    pub(crate) clusters: &'a BTreeMap<String, Arc<Cluster>>,
    /// Every route's name, for handlers that hand requests to another route.
    pub(crate) route_names: &'a BTreeSet<String>,
    pub(crate) resources: &'a Resources,
}

/// The names defined, for messages: `a, b, c`, or `none`.
pub fn known(names: impl Iterator<Item = impl AsRef<str>>) -> String {
    let names: Vec<String> = names.map(|n| n.as_ref().to_string()).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

impl BuildContext<'_> {
    /// The shared resource of type `R` (registered with [`crate::Builder::resource`]).
    pub fn resource<R: Resource>(&self) -> Result<Arc<R>, BuildError> {
        if let Some(section) = self.resources.failed::<R>() {
            return Err(BuildError::new(format!(
                "the top-level `{section}:` section has errors (each on its own line)"
            )));
        }
        self.resources.get::<R>().ok_or_else(|| {
            BuildError::new(format!(
                "this binary registers no resource of type {}",
                std::any::type_name::<R>()
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
    /// By top-level section, built in registration order.
    pub(crate) resources: Vec<(String, Arc<dyn super::resources::ResourceFactory>)>,
}

impl Registry {
    pub fn filter_names(&self) -> Vec<&str> {
        self.filters.keys().map(String::as_str).collect()
    }
    pub fn handler_names(&self) -> Vec<&str> {
        self.handlers.keys().map(String::as_str).collect()
    }
    /// The top-level sections registered resources read, in build order.
    pub fn resource_sections(&self) -> Vec<&str> {
        self.resources.iter().map(|(s, _)| s.as_str()).collect()
    }
}
