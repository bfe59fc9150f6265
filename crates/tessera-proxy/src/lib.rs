//! Tessera's proxy: a Pingora service driven by a YAML route table.
//!
//! The pieces, in the order a request meets them: [`route`] finds the route; the route's
//! [`plugin::Filter`]s run; its [`plugin::Handler`] answers or picks a [`cluster::Cluster`];
//! [`service`] drives all of that through Pingora's phases. [`config`] is the schema,
//! [`runtime`] a built config, [`Builder`] the registry of factories and the way to run.

pub mod admin;
mod admin_purge;
mod builder;
pub mod cluster;
pub mod config;
mod fastcgi_upstream;
pub mod filters;
pub mod handlers;
pub mod imaging;
pub mod metrics;
pub mod plugin;
pub mod response_cache;
pub mod route;
pub mod runtime;
pub mod safety;
mod schema;
pub mod service;
pub mod state;
pub mod storage;
mod supervisor;
pub mod template;
pub mod thumbs;

pub use builder::{Builder, RunError};
pub use state::ConfigSource;

/// Re-exported so plugin crates use the same versions.
pub use async_trait::async_trait;
pub use pingora;
pub use schemars;
pub use serde;
