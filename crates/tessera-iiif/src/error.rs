//! The one error type of the crate.
//!
//! Every failure here is the client's: a request that does not follow the syntax, or asks for
//! something the spec says to refuse (a region outside the image, a size beyond the limits, an
//! upscale without `^` in 3.0). Both specs answer those with 400 Bad Request, so there is one
//! error type and no variants to map: the message is what matters, because it is what the client
//! reads. It always starts with the parameter at fault (`"size: ..."`), then says why.

use std::fmt::Display;

/// A request that must be answered with HTTP 400 Bad Request.
///
/// `message` names the parameter and the reason, e.g.
/// `"size: ^ is required to upscale in IIIF 3.0 (width 5000 > region width 4000)"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IiifError {
    pub message: String,
}

impl IiifError {
    /// An error about one parameter: the message becomes `"{parameter}: {reason}"`.
    pub fn new(parameter: &str, reason: impl Display) -> Self {
        IiifError {
            message: format!("{parameter}: {reason}"),
        }
    }

    /// The HTTP status to answer with. Always 400: every error of this crate is a bad request.
    pub fn status(&self) -> u16 {
        400
    }
}

/// Shorthand for the crate's results.
pub type Result<T> = std::result::Result<T, IiifError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_the_parameter() {
        let e = IiifError::new("size", "must not be zero");
        assert_eq!(e.message, "size: must not be zero");
        assert_eq!(e.to_string(), "size: must not be zero");
        assert_eq!(e.status(), 400);
    }
}
