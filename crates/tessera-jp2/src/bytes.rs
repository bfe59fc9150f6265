//! Bounds-checked big-endian reads. Two flavours, because there are two kinds of "too short":
//! reading the file prefix, where running out means "fetch more" ([`ParseError::NeedMore`]), and
//! reading inside a marker segment whose length is already known, where it means "malformed".

use crate::error::{Jp2Error, ParseError};

/// `N` bytes at `pos` of the file prefix `buf`, or how long the prefix must be to have them.
pub(crate) fn array_at<const N: usize>(buf: &[u8], pos: u64) -> Result<[u8; N], ParseError> {
    let end = pos
        .checked_add(N as u64)
        .ok_or(Jp2Error::TooLarge("offset overflows"))?;
    let s = slice_at(buf, pos, end)?;
    Ok(s.try_into().map_err(|_| Jp2Error::TooLarge("offset"))?)
}

/// Bytes `start..end` of the file prefix `buf`.
pub(crate) fn slice_at(buf: &[u8], start: u64, end: u64) -> Result<&[u8], ParseError> {
    if end > buf.len() as u64 {
        return Err(ParseError::NeedMore { total_needed: end });
    }
    // end <= buf.len(), so both fit in usize.
    buf.get(start as usize..end as usize)
        .ok_or(ParseError::Invalid(Jp2Error::TooLarge(
            "range starts after it ends",
        )))
}

pub(crate) fn u16_at(buf: &[u8], pos: u64) -> Result<u16, ParseError> {
    array_at(buf, pos).map(u16::from_be_bytes)
}

pub(crate) fn u32_at(buf: &[u8], pos: u64) -> Result<u32, ParseError> {
    array_at(buf, pos).map(u32::from_be_bytes)
}

pub(crate) fn u64_at(buf: &[u8], pos: u64) -> Result<u64, ParseError> {
    array_at(buf, pos).map(u64::from_be_bytes)
}

/// A reader over a slice of known length (a box or marker segment body); `None` when short.
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        let (a, rest) = self.rest.split_first_chunk::<2>()?;
        self.rest = rest;
        Some(u16::from_be_bytes(*a))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let (a, rest) = self.rest.split_first_chunk::<4>()?;
        self.rest = rest;
        Some(u32::from_be_bytes(*a))
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (a, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(a)
    }

    pub(crate) fn rest(self) -> &'a [u8] {
        self.rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_reads_ask_for_more() {
        let b = [0u8, 1, 2, 3];
        assert_eq!(u16_at(&b, 2).unwrap(), 0x0203);
        assert_eq!(u32_at(&b, 2), Err(ParseError::NeedMore { total_needed: 6 }));
        assert!(matches!(
            u64_at(&b, u64::MAX - 3),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn cursor_stops_at_the_end() {
        let mut c = Cursor::new(&[1, 2, 3]);
        assert_eq!(c.u16(), Some(0x0102));
        assert_eq!(c.u16(), None);
        assert_eq!(c.take(2), None);
        assert_eq!(c.u8(), Some(3));
        assert_eq!(c.remaining(), 0);
    }
}
