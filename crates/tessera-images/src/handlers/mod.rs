//! The IIIF handlers, each a config struct (the schema) and a `build`, registered by
//! [`crate::register`] exactly as a third-party plugin's handlers are.

pub mod byte_range;
pub mod info;
pub mod orchestrate;
pub mod render;
pub mod thumbs;
pub mod viewer;
