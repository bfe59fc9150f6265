//! An OpenJPEG input stream over a byte slice.
//!
//! This is the piece that `jpeg2k` gets wrong: its skip callback returns the *new position*
//! instead of the number of bytes skipped, so OpenJPEG's bookkeeping drifts as soon as it skips
//! forward (which it does between tiles when only some of them are needed) and region decodes
//! of tiled files fail with "Stream too short". The callbacks here follow the contract in
//! OpenJPEG's `cio.c`:
//!
//! * read: copy up to `n` bytes, return how many, or `(OPJ_SIZE_T)-1` when nothing is left
//!   (returning 0 instead would make `opj_stream_read_data` loop forever);
//! * skip: move forward by `n`, return `n`, or -1 when that would pass the end (a partial or
//!   zero result would again make `opj_stream_read_skip` loop);
//! * seek: move to an absolute offset within the data, return `OPJ_TRUE`, else `OPJ_FALSE`.
//!
//! The stream also gets the data length (`opj_stream_set_user_data_length`), which OpenJPEG
//! uses to clamp skips and to know how many bytes are left.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr::NonNull;

use openjpeg_sys as opj;

/// Chunk size of OpenJPEG's internal read buffer (its own default is 1 MiB).
const MAX_CHUNK: usize = 1 << 20;

/// The position within the data; the logic of the three callbacks, in safe Rust.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    /// Copies up to `buf.len()` bytes; `None` at the end of the data.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return None;
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Some(n)
    }

    /// Skips `n` bytes forward: the number skipped, or -1 if `n` is negative or passes the end
    /// (the position then moves to the end).
    pub(crate) fn skip(&mut self, n: i64) -> i64 {
        let remaining = self.data.len() - self.pos;
        match usize::try_from(n) {
            Ok(k) if k <= remaining => {
                self.pos += k;
                n
            }
            Ok(_) => {
                self.pos = self.data.len();
                -1
            }
            Err(_) => -1,
        }
    }

    /// Moves to the absolute offset `pos`; false (position unchanged) if outside the data.
    pub(crate) fn seek(&mut self, pos: i64) -> bool {
        match usize::try_from(pos) {
            Ok(p) if p <= self.data.len() => {
                self.pos = p;
                true
            }
            _ => false,
        }
    }
}

/// An owned `opj_stream_t` reading from `data`; destroyed (and its cursor freed) on drop.
pub(crate) struct MemStream<'a> {
    raw: NonNull<opj::opj_stream_t>,
    _data: PhantomData<&'a [u8]>,
}

impl<'a> MemStream<'a> {
    /// `None` if OpenJPEG could not allocate the stream.
    pub(crate) fn new(data: &'a [u8]) -> Option<Self> {
        let chunk = data.len().clamp(1, MAX_CHUNK);
        // SAFETY: plain allocation call; a null result is handled below.
        let raw = NonNull::new(unsafe { opj::opj_stream_create(chunk, 1) })?;
        let cursor = Box::into_raw(Box::new(Cursor::new(data)));
        // SAFETY: `raw` is a valid input stream just created. The user data is a leaked
        // `Box<Cursor<'a>>` that only the callbacks below dereference and that `free_cursor`
        // releases exactly once, when `opj_stream_destroy` runs in `Drop`. The cursor borrows
        // `data` for 'a, and `MemStream<'a>` cannot outlive 'a, so the slice stays valid for
        // every callback.
        unsafe {
            opj::opj_stream_set_user_data(raw.as_ptr(), cursor.cast(), Some(free_cursor));
            opj::opj_stream_set_user_data_length(raw.as_ptr(), data.len() as u64);
            opj::opj_stream_set_read_function(raw.as_ptr(), Some(read_cb));
            opj::opj_stream_set_skip_function(raw.as_ptr(), Some(skip_cb));
            opj::opj_stream_set_seek_function(raw.as_ptr(), Some(seek_cb));
        }
        Some(MemStream {
            raw,
            _data: PhantomData,
        })
    }

    pub(crate) fn as_ptr(&mut self) -> *mut opj::opj_stream_t {
        self.raw.as_ptr()
    }
}

impl Drop for MemStream<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `opj_stream_create` and is destroyed only here; this also
        // calls `free_cursor` on the boxed cursor.
        unsafe { opj::opj_stream_destroy(self.raw.as_ptr()) }
    }
}

unsafe extern "C" fn read_cb(buf: *mut c_void, n: usize, user: *mut c_void) -> usize {
    if buf.is_null() || user.is_null() {
        return usize::MAX;
    }
    // SAFETY: `user` is the `Cursor` installed by `MemStream::new`, alive until the stream is
    // destroyed, and OpenJPEG calls the callbacks of one stream from one thread at a time.
    // `buf` points to at least `n` writable bytes (OpenJPEG's chunk buffer or its caller's
    // destination), which do not overlap the input slice.
    let (cursor, out) = unsafe {
        (
            &mut *user.cast::<Cursor>(),
            std::slice::from_raw_parts_mut(buf.cast::<u8>(), n),
        )
    };
    cursor.read(out).unwrap_or(usize::MAX)
}

unsafe extern "C" fn skip_cb(n: i64, user: *mut c_void) -> i64 {
    if user.is_null() {
        return -1;
    }
    // SAFETY: as in `read_cb`.
    let cursor = unsafe { &mut *user.cast::<Cursor>() };
    cursor.skip(n)
}

unsafe extern "C" fn seek_cb(pos: i64, user: *mut c_void) -> opj::OPJ_BOOL {
    if user.is_null() {
        return 0;
    }
    // SAFETY: as in `read_cb`.
    let cursor = unsafe { &mut *user.cast::<Cursor>() };
    opj::OPJ_BOOL::from(cursor.seek(pos))
}

unsafe extern "C" fn free_cursor(user: *mut c_void) {
    if !user.is_null() {
        // SAFETY: `user` is the pointer from `Box::into_raw` in `MemStream::new`; OpenJPEG
        // calls this once, from `opj_stream_destroy`.
        drop(unsafe { Box::from_raw(user.cast::<Cursor>()) });
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn read_then_end() {
        let data = [1u8, 2, 3, 4, 5];
        let mut c = Cursor::new(&data);
        let mut buf = [0u8; 3];
        assert_eq!(c.read(&mut buf), Some(3));
        assert_eq!(buf, [1, 2, 3]);
        assert_eq!(c.read(&mut buf), Some(2));
        assert_eq!(&buf[..2], &[4, 5]);
        assert_eq!(c.read(&mut buf), None);
    }

    #[test]
    fn skip_returns_count_not_position() {
        let data = [0u8; 100];
        let mut c = Cursor::new(&data);
        assert_eq!(c.skip(10), 10);
        assert_eq!(c.skip(20), 20, "bytes skipped, not the new position (30)");
        assert_eq!(c.skip(70), 70);
        assert_eq!(c.skip(1), -1);
        assert_eq!(c.skip(-1), -1);
        let mut c = Cursor::new(&data);
        assert_eq!(c.skip(101), -1);
        assert_eq!(
            c.read(&mut [0u8; 1]),
            None,
            "a failed skip leaves the cursor at the end"
        );
    }

    #[test]
    fn seek_is_absolute_and_bounded() {
        let data = [7u8, 8, 9];
        let mut c = Cursor::new(&data);
        assert!(c.seek(2));
        let mut b = [0u8; 4];
        assert_eq!(c.read(&mut b), Some(1));
        assert_eq!(b[0], 9);
        assert!(c.seek(0));
        assert!(c.seek(3));
        assert!(!c.seek(4));
        assert!(!c.seek(-1));
    }
}
