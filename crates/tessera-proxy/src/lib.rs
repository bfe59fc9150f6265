#![forbid(unsafe_code)]
//! Tessera's engine: a Pingora service driven by a YAML route table, extended by plugins.
//!
//! The pieces, in the order a request meets them: [`route`] finds the route; [`pipeline`] runs
//! its [`plugin::FilterChain`], the [`response_cache`] and its [`plugin::Handler`], which
//! answers or picks a [`cluster::Cluster`]; [`upstream`] prepares and sends what goes to a
//! cluster (HTTP or FastCGI); [`service`] drives all of that through Pingora's phases.
//! [`config`] is the schema, [`runtime`] a built config, [`Builder`] the registry of factories
//! and the way to run.
//!
//! The engine knows nothing of images: the IIIF handlers, their object stores and the hot cache
//! are a plugin crate (`tessera-images`) registered through the same [`plugin`] API as any
//! other, including the shared [`plugin::resources`] they are built from.

pub mod access_log;
pub mod admin;
mod admin_purge;
mod builder;
pub mod captures;
pub mod cluster;
pub mod config;
pub mod filters;
pub mod fleet;
pub mod handlers;
pub mod ip_text;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod public_url;
pub mod request_id;
pub mod response_cache;
pub mod route;
pub mod runtime;
pub mod safety;
mod schema;
pub mod service;
pub mod state;
mod supervisor;
pub mod template;
pub mod traces;
pub mod upstream;
pub mod upstream_tls;

pub use builder::{Builder, RunError};
pub use state::ConfigSource;

/// Re-exported so plugin crates use the same versions.
pub use async_trait::async_trait;
pub use pingora;
pub use schemars;
pub use serde;
