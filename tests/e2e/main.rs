//! End-to-end tests: the real `tessera` binary in front of real HTTP backends, all on loopback.

mod harness;

mod cli;
mod clusters;
mod filters;
mod observability;
mod reload;
mod routing;
mod tls;
