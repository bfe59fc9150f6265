//! The tests' S3 server lives in its own crate so that `bench/` can run the same one.

pub use tessera_s3_fixture::*;
