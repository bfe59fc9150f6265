//! Fuzz the JP2 header parser and what is built from its output.
//!
//! `Header::parse` reads bytes straight from the object store (the first 16 KiB of any object a
//! route can name), so it must never panic, loop or allocate without bound whatever it is given.
//! The index and the partial-read plans are derived from the parsed header with arithmetic on
//! offsets and lengths the file chose: they get the same treatment.
//!
//! Run with `cargo +nightly fuzz run jp2_header` from this directory. A good seed corpus is the
//! first few KiB of real files, e.g.
//! `mkdir -p corpus/jp2_header && head -c 4096 ../examples/images/sample.jp2 > corpus/jp2_header/sample`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_jp2::{Header, Jp2Index};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = Header::parse(data) else {
        return;
    };
    let Ok(index) = Jp2Index::from_header(&header) else {
        return;
    };
    // Every reduce level, the deepest (`levels`) included; each must plan or refuse cleanly.
    for reduce in 0..=index.levels {
        let _ = index.plan(reduce, 0);
    }
});
