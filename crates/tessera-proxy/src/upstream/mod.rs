//! What goes to a cluster, for HTTP and FastCGI clusters alike: one preparation of the
//! upstream request ([`prepare`]: path rewrite, Host, forwarded headers, the filters' upstream
//! phase), one mapping of failures to answers ([`Failure`]: 502 or 504, counted and logged
//! naming route, cluster and endpoint), and the FastCGI exchange itself ([`fastcgi`]); HTTP
//! exchanges are Pingora's.

mod failure;
pub mod fastcgi;
mod metrics;
mod prepare;

pub use failure::Failure;
pub(crate) use metrics::count_failed_attempt;
pub use prepare::prepare;
