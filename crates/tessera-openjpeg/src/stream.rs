//! An OpenJPEG input stream over bytes in memory or a file read in place.
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
//!
//! A file is read with positioned reads (`pread`), not memory-mapped: a file someone truncates
//! or rewrites while it is decoded then reads short and fails the decode, where a mapping would
//! kill the process with SIGBUS. The page cache serves both alike.

use std::ffi::c_void;
use std::fs::File;
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;

use openjpeg_sys as opj;

/// Chunk size of OpenJPEG's internal read buffer. A read smaller than it, after a seek, fills
/// the whole buffer first, and a region decode seeks to each tile-part it needs: with
/// OpenJPEG's default of 1 MiB, a 256-px tile of a local file cost 0.4–1.2 ms of kernel time
/// per decode copying buffers it mostly did not use (0.1–0.3 ms at 64 KiB, same decode).
/// Reads at least this long go straight into OpenJPEG's destination.
const MAX_CHUNK: u64 = 64 << 10;

/// Where a stream's bytes come from.
pub(crate) trait Source {
    /// The length the stream sees, fixed when it is opened.
    fn len(&self) -> u64;
    /// Fills `buf` from offset `pos` as far as the data goes: the number of bytes read, 0 at
    /// the end. An I/O error counts as the end, which fails the decode as data cut short.
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> usize;
}

impl Source for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> usize {
        let rest = usize::try_from(pos)
            .ok()
            .and_then(|p| self.get(p..))
            .unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        n
    }
}

/// A file and its length when it was opened.
pub(crate) struct FileSource<'a> {
    file: &'a File,
    len: u64,
}

impl<'a> FileSource<'a> {
    pub(crate) fn new(file: &'a File) -> std::io::Result<Self> {
        Ok(FileSource {
            file,
            len: file.metadata()?.len(),
        })
    }
}

impl Source for FileSource<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> usize {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], pos + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(target: "tessera_openjpeg", "read failed: {e}");
                    break;
                }
            }
        }
        done
    }
}

/// The position within the data; the logic of the three callbacks, in safe Rust.
pub(crate) struct Cursor<'a> {
    source: &'a dyn Source,
    len: u64,
    pos: u64,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(source: &'a dyn Source) -> Self {
        Cursor {
            source,
            len: source.len(),
            pos: 0,
        }
    }

    /// Copies up to `buf.len()` bytes; `None` at the end of the data (or where a file that
    /// shrank since it was opened now ends).
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        let rest = self.len.saturating_sub(self.pos);
        let n = usize::try_from(rest).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return None;
        }
        let got = self.source.read_at(self.pos, &mut buf[..n]);
        if got == 0 {
            return None;
        }
        self.pos += got as u64;
        Some(got)
    }

    /// Skips `n` bytes forward: the number skipped, or -1 if `n` is negative or passes the end
    /// (the position then moves to the end).
    pub(crate) fn skip(&mut self, n: i64) -> i64 {
        let remaining = self.len - self.pos;
        match u64::try_from(n) {
            Ok(k) if k <= remaining => {
                self.pos += k;
                n
            }
            Ok(_) => {
                self.pos = self.len;
                -1
            }
            Err(_) => -1,
        }
    }

    /// Moves to the absolute offset `pos`; false (position unchanged) if outside the data.
    pub(crate) fn seek(&mut self, pos: i64) -> bool {
        match u64::try_from(pos) {
            Ok(p) if p <= self.len => {
                self.pos = p;
                true
            }
            _ => false,
        }
    }
}

/// An owned `opj_stream_t` reading from a [`Source`]; destroyed (and its cursor freed) on drop.
pub(crate) struct Stream<'a> {
    raw: NonNull<opj::opj_stream_t>,
    _source: PhantomData<&'a dyn Source>,
}

impl<'a> Stream<'a> {
    /// `None` if OpenJPEG could not allocate the stream.
    pub(crate) fn new(source: &'a dyn Source) -> Option<Self> {
        let len = source.len();
        let chunk = len.clamp(1, MAX_CHUNK) as usize;
        // SAFETY: plain allocation call; a null result is handled below.
        let raw = NonNull::new(unsafe { opj::opj_stream_create(chunk, 1) })?;
        let cursor = Box::into_raw(Box::new(Cursor::new(source)));
        // SAFETY: `raw` is a valid input stream just created. The user data is a leaked
        // `Box<Cursor<'a>>` that only the callbacks below dereference and that `free_cursor`
        // releases exactly once, when `opj_stream_destroy` runs in `Drop`. The cursor borrows
        // `source` for 'a, and `Stream<'a>` cannot outlive 'a, so the source stays valid for
        // every callback.
        unsafe {
            opj::opj_stream_set_user_data(raw.as_ptr(), cursor.cast(), Some(free_cursor));
            opj::opj_stream_set_user_data_length(raw.as_ptr(), len);
            opj::opj_stream_set_read_function(raw.as_ptr(), Some(read_cb));
            opj::opj_stream_set_skip_function(raw.as_ptr(), Some(skip_cb));
            opj::opj_stream_set_seek_function(raw.as_ptr(), Some(seek_cb));
        }
        Some(Stream {
            raw,
            _source: PhantomData,
        })
    }

    pub(crate) fn as_ptr(&mut self) -> *mut opj::opj_stream_t {
        self.raw.as_ptr()
    }
}

impl Drop for Stream<'_> {
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
    // SAFETY: `user` is the `Cursor` installed by `Stream::new`, alive until the stream is
    // destroyed, and OpenJPEG calls the callbacks of one stream from one thread at a time.
    // `buf` points to at least `n` writable bytes (OpenJPEG's chunk buffer or its caller's
    // destination), which do not overlap the source.
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
        // SAFETY: `user` is the pointer from `Box::into_raw` in `Stream::new`; OpenJPEG
        // calls this once, from `opj_stream_destroy`.
        drop(unsafe { Box::from_raw(user.cast::<Cursor>()) });
    }
}

#[cfg(test)]
mod tests {
    use super::{Cursor, FileSource};

    #[test]
    fn read_then_end() {
        let data = [1u8, 2, 3, 4, 5];
        let bytes = &data[..];
        let mut c = Cursor::new(&bytes);
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
        let bytes = &data[..];
        let mut c = Cursor::new(&bytes);
        assert_eq!(c.skip(10), 10);
        assert_eq!(c.skip(20), 20, "bytes skipped, not the new position (30)");
        assert_eq!(c.skip(70), 70);
        assert_eq!(c.skip(1), -1);
        assert_eq!(c.skip(-1), -1);
        let bytes = &data[..];
        let mut c = Cursor::new(&bytes);
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
        let bytes = &data[..];
        let mut c = Cursor::new(&bytes);
        assert!(c.seek(2));
        let mut b = [0u8; 4];
        assert_eq!(c.read(&mut b), Some(1));
        assert_eq!(b[0], 9);
        assert!(c.seek(0));
        assert!(c.seek(3));
        assert!(!c.seek(4));
        assert!(!c.seek(-1));
    }

    #[test]
    fn a_file_reads_as_its_bytes_and_a_shrunk_file_ends_early() {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &[1u8, 2, 3, 4, 5, 6]).unwrap();
        let source = FileSource::new(&file).unwrap();
        let mut c = Cursor::new(&source);
        assert_eq!(c.skip(2), 2);
        let mut buf = [0u8; 3];
        assert_eq!(c.read(&mut buf), Some(3));
        assert_eq!(buf, [3, 4, 5]);
        file.set_len(5).unwrap();
        assert_eq!(
            c.read(&mut buf),
            None,
            "the file now ends where the cursor is"
        );
        assert!(c.seek(6), "the length seen is the one at opening");
    }
}
