//! End-to-end tests: the real `tessera` binary in front of real HTTP backends, a real S3 server
//! (s3s-fs) and the real IIPImage server, all on loopback.

mod harness;
mod iipsrv;
mod images;
mod s3;

mod bombs;
mod browser;
mod cli;
mod clusters;
mod deploy;
mod faults;
mod filters;
mod fleet;
mod hostile;
mod index_cli;
mod interleave;
mod large_decodes;
mod large_views;
mod levels;
mod masters;
mod observability;
mod reload;
mod response_cache;
mod routing;
mod slow_clients;
mod thumbs;
mod tiles;
mod tls;
mod traces;
mod upgrade;
mod upstream;
mod upstream_tls;
mod validator;
mod viewers;
mod views;
