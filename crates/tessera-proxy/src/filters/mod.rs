//! Built-in filters, registered by [`crate::Builder::with_builtins`] exactly as a plugin's are.

pub mod cors;
pub mod headers;
pub mod ip_filter;
pub mod rate_limit;
