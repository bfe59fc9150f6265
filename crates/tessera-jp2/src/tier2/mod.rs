//! Packet headers of one quality layer (ISO 15444-1 B.10): which code-blocks a packet holds,
//! their missing bit-planes, coding passes and byte lengths; read, and written back with other
//! pass counts. Only what a single-layer codestream without per-pass termination has: every
//! code-block is in the first layer or in none, and its passes are one codeword segment.

pub mod bits;
pub mod tagtree;

use bits::{BitReader, BitWriter};
use tagtree::TagTree;

/// One code-block's part in a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeBlock {
    pub included: bool,
    /// Missing most significant bit-planes.
    pub zero_planes: u32,
    pub passes: u32,
    /// Bytes of its codeword segment in the packet body.
    pub length: u32,
}

/// One sub-band's code-blocks, `width × height` of them, in raster order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Band {
    pub width: usize,
    pub height: usize,
    pub blocks: Vec<CodeBlock>,
}

/// The most passes one codeword segment holds without termination (OpenJPEG's limit too).
const MAX_PASSES: u32 = 109;

/// Read a packet header over sub-bands of these code-block grids. Returns the bands and the
/// header's length in bytes; `None` if it is malformed or outside what this reads.
pub fn read_header(data: &[u8], grids: &[(usize, usize)]) -> Option<(Vec<Band>, usize)> {
    let mut bits = BitReader::new(data);
    let present = bits.bit()?;
    let mut bands = Vec::with_capacity(grids.len());
    for &(width, height) in grids {
        let mut inclusion = TagTree::new(width, height);
        let mut zero_planes = TagTree::new(width, height);
        let mut blocks = Vec::with_capacity(width * height);
        for leaf in 0..width * height {
            let none = CodeBlock {
                included: false,
                zero_planes: 0,
                passes: 0,
                length: 0,
            };
            if !present || !inclusion.decode(&mut bits, leaf, 1)? {
                blocks.push(none);
                continue;
            }
            let mut threshold = 1;
            while !zero_planes.decode(&mut bits, leaf, threshold)? {
                threshold += 1;
                if threshold > 64 {
                    return None;
                }
            }
            let passes = read_passes(&mut bits)?;
            if passes > MAX_PASSES {
                return None;
            }
            let mut length_bits = 3;
            while bits.bit()? {
                length_bits += 1;
                if length_bits > 32 {
                    return None;
                }
            }
            let width_bits = length_bits + passes.ilog2();
            if width_bits > 32 {
                return None;
            }
            blocks.push(CodeBlock {
                included: true,
                zero_planes: threshold - 1,
                passes,
                length: bits.bits(width_bits)?,
            });
        }
        bands.push(Band {
            width,
            height,
            blocks,
        });
    }
    Some((bands, bits.finish()?))
}

/// Write a packet header for these bands (the inverse of [`read_header`]).
pub fn write_header(bands: &[Band]) -> Vec<u8> {
    let mut bits = BitWriter::new();
    let present = bands.iter().any(|b| b.blocks.iter().any(|c| c.included));
    bits.bit(present);
    if !present {
        return bits.finish();
    }
    for band in bands {
        let mut inclusion = TagTree::new(band.width, band.height);
        let mut zero_planes = TagTree::new(band.width, band.height);
        let first_layer: Vec<u32> = band.blocks.iter().map(|c| u32::from(!c.included)).collect();
        let planes: Vec<u32> = band
            .blocks
            .iter()
            .map(|c| if c.included { c.zero_planes } else { u32::MAX })
            .collect();
        inclusion.set_leaves(&first_layer);
        zero_planes.set_leaves(&planes);
        for (leaf, block) in band.blocks.iter().enumerate() {
            inclusion.encode(&mut bits, leaf, 1);
            if !block.included {
                continue;
            }
            zero_planes.encode(&mut bits, leaf, block.zero_planes + 1);
            write_passes(&mut bits, block.passes);
            let needed = 32 - block.length.leading_zeros();
            let extra = needed.saturating_sub(3 + block.passes.ilog2());
            for _ in 0..extra {
                bits.bit(true);
            }
            bits.bit(false);
            bits.bits(block.length, 3 + extra + block.passes.ilog2());
        }
    }
    bits.finish()
}

/// The number of coding passes (B.10.6, Table B.4).
fn read_passes(bits: &mut BitReader<'_>) -> Option<u32> {
    if !bits.bit()? {
        return Some(1);
    }
    if !bits.bit()? {
        return Some(2);
    }
    match bits.bits(2)? {
        3 => {}
        n => return Some(3 + n),
    }
    match bits.bits(5)? {
        31 => Some(37 + bits.bits(7)?),
        n => Some(6 + n),
    }
}

fn write_passes(bits: &mut BitWriter, n: u32) {
    match n {
        1 => bits.bits(0, 1),
        2 => bits.bits(0b10, 2),
        3..=5 => bits.bits(0b1100 | (n - 3), 4),
        6..=36 => bits.bits(0b1_1110_0000 | (n - 6), 9),
        _ => bits.bits(0xFF80 | (n - 37), 16),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn band() -> impl Strategy<Value = Band> {
        (1usize..6, 1usize..6).prop_flat_map(|(width, height)| {
            let block = (any::<bool>(), 0u32..20, 1u32..=MAX_PASSES, 0u32..200_000).prop_map(
                |(included, zero_planes, passes, length)| CodeBlock {
                    included,
                    zero_planes: if included { zero_planes } else { 0 },
                    passes: if included { passes } else { 0 },
                    length: if included { length } else { 0 },
                },
            );
            proptest::collection::vec(block, width * height).prop_map(move |blocks| Band {
                width,
                height,
                blocks,
            })
        })
    }

    proptest! {
        #[test]
        fn headers_read_back_as_written(bands in proptest::collection::vec(band(), 1..4)) {
            let header = write_header(&bands);
            let grids: Vec<_> = bands.iter().map(|b| (b.width, b.height)).collect();
            let (read, length) = read_header(&header, &grids).unwrap();
            prop_assert_eq!(length, header.len());
            let present = bands.iter().any(|b| b.blocks.iter().any(|c| c.included));
            if present {
                prop_assert_eq!(read, bands);
            } else {
                prop_assert!(read.iter().all(|b| b.blocks.iter().all(|c| !c.included)));
            }
        }

        #[test]
        fn pass_counts_read_back(n in 1u32..=164) {
            let mut w = BitWriter::new();
            write_passes(&mut w, n);
            let bytes = w.finish();
            prop_assert_eq!(read_passes(&mut BitReader::new(&bytes)), Some(n));
        }
    }
}
