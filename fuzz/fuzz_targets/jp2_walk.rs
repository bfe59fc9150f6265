//! Fuzz the tile-part walk: the SOT markers of a file without TLM are read a window at a time,
//! and each marker's length (Psot) says where the next one is. A file can lie about every
//! length; the walk must end (or refuse) without panicking, looping or growing without bound,
//! and an index built from what it found must plan or refuse cleanly.
//!
//! Run with `cargo +nightly fuzz run jp2_walk` from this directory, with a corpus of real
//! headers (see `jp2_header.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_jp2::{Header, Jp2Index, SotWalker};

/// Windows of the size the index store reads.
const WINDOW: u64 = 16 << 10;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = Header::parse(data) else {
        return;
    };
    let len = data.len() as u64;
    let mut walker = SotWalker::new(&header, len);
    let mut steps = 0;
    while let Some(want) = walker.next_read() {
        steps += 1;
        assert!(steps <= data.len() + 2, "the walk does not end");
        let end = want.start.saturating_add(WINDOW).min(len);
        let Some(bytes) = data.get(want.start as usize..end as usize) else {
            return;
        };
        if walker.feed(want.start, bytes).is_err() {
            return;
        }
    }
    let Ok(index) = Jp2Index::from_tile_parts(&header, walker.tile_parts().to_vec()) else {
        return;
    };
    for reduce in 0..=index.levels {
        let _ = index.plan(reduce, 0);
    }
});
