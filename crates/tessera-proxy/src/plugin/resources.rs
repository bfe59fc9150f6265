//! Resources: what several plugins share, built once per config from a top-level section of
//! `proxy.yaml` (an object store client, a cache on disk, an index of files).
//!
//! A plugin crate registers a resource on the [`crate::Builder`] under the section that
//! configures it, with its config type (serde + JsonSchema, as for filters and handlers) and a
//! build function. When a config is built, every registered resource is built — with `None`
//! when its section is absent — before any route, and kept in a typed registry: a factory asks
//! for it by type with [`BuildContext::resource`](super::BuildContext::resource). On reload the
//! build function sees the running config's instance ([`ResourceContext::previous`]), so it can
//! keep what has not changed (connections, an open directory).
//!
//! ```
//! use std::sync::Arc;
//! use tessera_proxy::plugin::{BuildError, Resource, ResourceContext};
//!
//! /// `greetings: { word: hello }` at the top of proxy.yaml.
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct GreetingsConfig { word: String }
//!
//! struct Greetings { word: String }
//! impl Resource for Greetings {}
//!
//! let builder = tessera_proxy::Builder::with_builtins().resource(
//!     "greetings",
//!     |config: Option<GreetingsConfig>, _ctx: &ResourceContext<'_, Greetings>| {
//!         let word = config.map_or_else(|| "hello".to_string(), |c| c.word);
//!         if word.is_empty() {
//!             return Err(BuildError::new("must not be empty").at("word").into());
//!         }
//!         Ok(Greetings { word })
//!     },
//! );
//! # let _ = builder;
//! ```

use super::parse::{parse_config, BuildError};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

/// A shared resource. Both hooks have defaults that do nothing.
pub trait Resource: Send + Sync + 'static {
    /// Called before a config serves: by `tessera run` for the first config, and for every
    /// reloaded one (so it must be safe to call again on an instance kept from the previous
    /// config). Never called by `tessera check`, so a config can be checked without touching
    /// directories or networks. An error stops the start, or refuses the reload.
    fn open(&self) -> Result<(), String> {
        Ok(())
    }

    /// Called when a config that holds this resource starts serving (the first config, and
    /// each reloaded one), inside the Tokio runtime: start background tasks here. Like `open`,
    /// it must be safe to call again on an instance kept from the previous config.
    fn start(&self) {}
}

/// The problems found building one resource (a section may hold several independent parts,
/// such as one origin each).
#[derive(Clone, Debug, Default)]
pub struct BuildErrors(pub Vec<BuildError>);

impl From<BuildError> for BuildErrors {
    fn from(e: BuildError) -> Self {
        Self(vec![e])
    }
}

/// What a resource's build function may consult.
pub struct ResourceContext<'a, R> {
    pub(crate) previous: Option<&'a R>,
    pub(crate) reload: bool,
    pub(crate) base_dir: Option<&'a Path>,
    pub(crate) built: &'a Resources,
}

impl<R> ResourceContext<'_, R> {
    /// The instance the running config holds, on a reload.
    pub fn previous(&self) -> Option<&R> {
        self.previous
    }

    /// Whether this config replaces a running one (`false` for the first config and for
    /// `tessera check`).
    pub fn is_reload(&self) -> bool {
        self.reload
    }

    /// A relative filesystem path from the config, made relative to the config file's
    /// directory, so that the same file means the same thing whatever directory Tessera is
    /// started from.
    pub fn resolve_path(&self, path: &str) -> String {
        match self.base_dir {
            Some(base) if !path.is_empty() && Path::new(path).is_relative() => {
                base.join(path).to_string_lossy().into_owned()
            }
            _ => path.to_string(),
        }
    }

    /// A resource registered (and so built) before this one.
    pub fn resource<T: Resource>(&self) -> Option<Arc<T>> {
        self.built.get::<T>()
    }
}

/// One built resource, seen as its own type and as a [`Resource`], with its section.
#[derive(Clone)]
struct Built {
    section: String,
    any: Arc<dyn Any + Send + Sync>,
    hooks: Arc<dyn Resource>,
}

/// The resources of one built config, by type. A resource whose section has errors is not
/// there; asking for it gives an error saying which section to fix.
#[derive(Clone, Default)]
pub struct Resources {
    by_type: HashMap<TypeId, Built>,
    /// In the order they were built.
    order: Vec<TypeId>,
    /// Resources whose section has errors, by type: their section's name.
    failed: HashMap<TypeId, String>,
}

impl Resources {
    /// The resource of type `R`, if one is registered.
    pub fn get<R: Resource>(&self) -> Option<Arc<R>> {
        let built = self.by_type.get(&TypeId::of::<R>())?;
        built.any.clone().downcast::<R>().ok()
    }

    pub(crate) fn insert<R: Resource>(&mut self, section: &str, resource: Arc<R>) {
        let id = TypeId::of::<R>();
        if !self.by_type.contains_key(&id) {
            self.order.push(id);
        }
        let built = Built {
            section: section.to_string(),
            any: resource.clone(),
            hooks: resource,
        };
        self.by_type.insert(id, built);
    }

    /// The section of the resource of type `R`, if building it failed.
    pub(crate) fn failed<R: Resource>(&self) -> Option<&str> {
        self.failed.get(&TypeId::of::<R>()).map(String::as_str)
    }

    pub(crate) fn get_any(&self, id: TypeId) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.by_type.get(&id).map(|b| &b.any)
    }

    /// Every resource's section and hooks, in build order.
    pub(crate) fn each(&self) -> impl Iterator<Item = (&str, &Arc<dyn Resource>)> {
        self.order
            .iter()
            .filter_map(|id| self.by_type.get(id))
            .map(|b| (b.section.as_str(), &b.hooks))
    }
}

/// Where a resource is built: the section's config, the running config's resources and the
/// config file's directory.
pub(crate) struct ResourceEnv<'a> {
    pub previous: Option<&'a Resources>,
    pub reload: bool,
    pub base_dir: Option<&'a Path>,
}

/// Builds the resource of one top-level section.
pub(crate) trait ResourceFactory: Send + Sync {
    /// Parse `config` (`None`: the section is absent), build, and add to `built`.
    fn build_into(
        &self,
        section: &str,
        config: Option<Value>,
        env: &ResourceEnv<'_>,
        built: &mut Resources,
    ) -> Result<(), BuildErrors>;
    /// The JSON Schema of the section.
    fn schema(&self, gen: &mut SchemaGenerator) -> Schema;
}

pub(crate) struct FnResourceFactory<C, R, F> {
    build: F,
    _types: PhantomData<fn() -> (C, R)>,
}

impl<C, R, F> FnResourceFactory<C, R, F> {
    pub(crate) fn new(build: F) -> Self {
        Self {
            build,
            _types: PhantomData,
        }
    }
}

impl<C, R, F> FnResourceFactory<C, R, F>
where
    C: DeserializeOwned + JsonSchema,
    R: Resource,
    F: Fn(Option<C>, &ResourceContext<'_, R>) -> Result<R, BuildErrors> + Send + Sync,
{
    /// Parse the section and call the build function.
    fn make(
        &self,
        config: Option<Value>,
        env: &ResourceEnv<'_>,
        built: &Resources,
    ) -> Result<R, BuildErrors> {
        // `section:` with nothing after it is the section left out.
        let config = config.filter(|v| !v.is_null());
        let config = config.map(parse_config::<C>).transpose()?;
        let previous = env
            .previous
            .and_then(|p| p.get_any(TypeId::of::<R>()))
            .and_then(|any| any.downcast_ref::<R>());
        let ctx = ResourceContext {
            previous,
            reload: env.reload,
            base_dir: env.base_dir,
            built,
        };
        (self.build)(config, &ctx)
    }
}

impl<C, R, F> ResourceFactory for FnResourceFactory<C, R, F>
where
    C: DeserializeOwned + JsonSchema,
    R: Resource,
    F: Fn(Option<C>, &ResourceContext<'_, R>) -> Result<R, BuildErrors> + Send + Sync,
{
    fn build_into(
        &self,
        section: &str,
        config: Option<Value>,
        env: &ResourceEnv<'_>,
        built: &mut Resources,
    ) -> Result<(), BuildErrors> {
        match self.make(config, env, built) {
            Ok(resource) => {
                built.insert(section, Arc::new(resource));
                Ok(())
            }
            Err(errors) => {
                built.failed.insert(TypeId::of::<R>(), section.to_string());
                Err(errors)
            }
        }
    }

    fn schema(&self, gen: &mut SchemaGenerator) -> Schema {
        gen.subschema_for::<Option<C>>()
    }
}
