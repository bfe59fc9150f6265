//! Built-in handlers, registered by [`crate::Builder::with_builtins`] exactly as a plugin's are.

pub mod byte_range;
pub mod info;
pub mod orchestrate;
pub mod proxy;
pub mod redirect;
pub mod render;
pub mod respond;
pub mod thumbs;
