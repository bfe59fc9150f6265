//! Built-in handlers, registered by [`crate::Builder::with_builtins`] exactly as a plugin's are.
//! They know nothing of images: the image handlers are `tessera-images`'.

pub mod proxy;
pub mod redirect;
pub mod respond;
