//! The bits of a packet header: most significant first, and after a byte 0xFF the next byte
//! carries only seven (its top bit is a stuffed 0), so that no two bytes of a header read as a
//! marker (ISO 15444-1 B.10.1). As OpenJPEG's `opj_bio` reads and writes them.

/// Reads header bits from a byte slice.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// The byte being read and how many of its bits are left.
    byte: u8,
    left: u8,
    /// The byte before `byte` (whether `byte` had a stuffed bit).
    previous_ff: bool,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            byte: 0,
            left: 0,
            previous_ff: false,
        }
    }

    /// One bit; `None` past the end of the data.
    pub fn bit(&mut self) -> Option<bool> {
        if self.left == 0 {
            self.previous_ff = self.pos > 0 && self.data[self.pos - 1] == 0xFF;
            self.byte = *self.data.get(self.pos)?;
            self.pos += 1;
            self.left = if self.previous_ff { 7 } else { 8 };
        }
        self.left -= 1;
        Some((self.byte >> self.left) & 1 == 1)
    }

    /// `n` bits (n ≤ 32), most significant first.
    pub fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Some(v)
    }

    /// The header's end: the rest of the current byte, and one more if it was 0xFF. Returns
    /// how many bytes the header took.
    pub fn finish(mut self) -> Option<usize> {
        if self.pos > 0 && self.data[self.pos - 1] == 0xFF {
            self.data.get(self.pos)?;
            self.pos += 1;
        }
        self.left = 0;
        Some(self.pos)
    }
}

/// Writes header bits.
#[derive(Default)]
pub struct BitWriter {
    out: Vec<u8>,
    byte: u8,
    /// Bits already in `byte`, and how many it holds (7 after a 0xFF).
    used: u8,
    room: u8,
}

impl BitWriter {
    pub fn new() -> Self {
        Self {
            out: Vec::new(),
            byte: 0,
            used: 0,
            room: 8,
        }
    }

    pub fn bit(&mut self, bit: bool) {
        self.byte = (self.byte << 1) | u8::from(bit);
        self.used += 1;
        if self.used == self.room {
            self.push_byte();
        }
    }

    pub fn bits(&mut self, value: u32, n: u32) {
        for i in (0..n).rev() {
            self.bit((value >> i) & 1 == 1);
        }
    }

    fn push_byte(&mut self) {
        self.out.push(self.byte);
        self.room = if self.byte == 0xFF { 7 } else { 8 };
        self.byte = 0;
        self.used = 0;
    }

    /// The header's bytes: the last one padded with zeros, and a 0 byte after a final 0xFF.
    pub fn finish(mut self) -> Vec<u8> {
        if self.used > 0 {
            self.byte <<= self.room - self.used;
            self.push_byte();
        }
        if self.out.last() == Some(&0xFF) {
            self.out.push(0);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bits_read_back_as_written(values in proptest::collection::vec((any::<u32>(), 1u32..=32), 0..60)) {
            let mut w = BitWriter::new();
            for &(v, n) in &values {
                w.bits(v & ((1u64 << n) - 1) as u32, n);
            }
            let bytes = w.finish();
            // No 0xFF is followed by a byte with its top bit set: no marker in a header.
            for pair in bytes.windows(2) {
                prop_assert!(!(pair[0] == 0xFF && pair[1] >= 0x80));
            }
            let mut r = BitReader::new(&bytes);
            for &(v, n) in &values {
                prop_assert_eq!(r.bits(n), Some(v & ((1u64 << n) - 1) as u32));
            }
            prop_assert_eq!(r.finish(), Some(bytes.len()));
        }
    }
}
