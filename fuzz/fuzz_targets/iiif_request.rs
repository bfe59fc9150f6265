//! Fuzz IIIF request parsing and everything done with a parsed request.
//!
//! The `region/size/rotation/quality.format` of every image request is client text. Parsing it,
//! resolving it against an image of any size (the size the fuzzer also picks), and writing its
//! canonical form must never panic or overflow, whatever numbers and characters it holds.
//!
//! Run with `cargo +nightly fuzz run iiif_request` from this directory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_iiif::{ImageLimits, ImageRequest, Version};

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let width = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let height = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    let version = if data[8] & 1 == 0 { Version::V2 } else { Version::V3 };
    let Ok(text) = std::str::from_utf8(&data[9..]) else {
        return;
    };
    let Ok(request) = ImageRequest::parse(version, text) else {
        return;
    };
    let limits = ImageLimits {
        max_area: Some(16_000_000),
        ..ImageLimits::new(width.max(1), height.max(1))
    };
    if let Ok(resolved) = request.resolve(version, &limits) {
        let _ = resolved.canonical(version, &limits);
    }
});
