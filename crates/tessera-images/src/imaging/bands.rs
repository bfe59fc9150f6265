//! Decoding a large area of a JPEG 2000 file in horizontal bands: memory bounded by the bands
//! in flight rather than by the area, and the bands spread over the cores.
//!
//! OpenJPEG decodes into 32-bit samples and holds all of its output until the end: `full/max`
//! of a 61 MP image (its 15 MP level) held 184 MB of samples before a byte was converted, and
//! then the 8-bit copy beside them. Band by band, each band converted to 8 bits as it ends and
//! copied into the output, what is held at once is the output plus one band per core.
//!
//! A band is a region decode of its own, and a region decodes to exactly the pixels of the
//! whole area there (the tests compare them), so the bands join seamlessly. In a file of many
//! tiles a band is whole rows of tiles, so that no tile is decoded by two bands; a file of one
//! tile is cut anywhere (each band decodes only the code-blocks under it).

use super::pipeline::{decode_bitmap, decode_error, Jp2Input, ViewError};
use super::spare_cores::{self, cores};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use tessera_jp2::Jp2Index;
use tessera_openjpeg::DecodeOptions;
use tessera_render::Bitmap;

/// The most pixels (at the decoded resolution) a band of a large area holds: its samples are
/// 12 bytes a pixel while decoded (three 32-bit components), so ~48 MB per core.
pub const BAND_PIXELS: u64 = 4 << 20;

/// The tile grid of the file, as far as bands need it.
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    pub tile_y0: u32,
    pub tile_height: u32,
    /// Tiles in the whole image.
    pub tiles: u64,
}

impl Grid {
    pub fn of(ix: &Jp2Index) -> Self {
        Self {
            tile_y0: ix.tile_y0,
            tile_height: ix.tile_height.max(1),
            tiles: u64::from(ix.tiles_x) * u64::from(ix.tiles_y),
        }
    }
}

/// The size of `area` (x0, y0, x1, y1 on the image's grid) at `reduce`, as OpenJPEG counts it.
pub fn size_at(area: (u32, u32, u32, u32), reduce: u8) -> (u64, u64) {
    let shift = u32::from(reduce).min(63);
    let at = |v: u32| u64::from(v).div_ceil(1u64 << shift);
    (at(area.2) - at(area.0), at(area.3) - at(area.1))
}

/// The whole image `area` of `file` at `reduce`, for keeping (see `levels`): strict, so a file
/// cut short fails here. One request waits for it, so it may as well use the machine: a file of
/// many tiles in one band per core, a file of few tiles with OpenJPEG's threads (which share out
/// the code-blocks of one tile at a time; a tile at a small level has few).
pub fn decode_level(
    file: &std::fs::File,
    reduce: u8,
    area: (u32, u32, u32, u32),
    grid: Grid,
    max_pixels: u64,
) -> Result<Bitmap, ViewError> {
    let cores = cores();
    let (_, y0, _, y1) = area;
    let rows = y1 - y0;
    // Each band at least two rows of the level.
    if cores < 2 || grid.tiles < u64::from(cores) || rows / cores < 2u32 << reduce.min(30) {
        let opts = options(reduce, None, true, cores, max_pixels);
        return decode_bitmap(Jp2Input::File(file), &opts);
    }
    let mut edges: Vec<u32> = (0..cores).map(|k| y0 + rows / cores * k).collect();
    edges.push(y1);
    Bands::new(file, reduce, area, true, max_pixels).decode(&edges, cores)
}

/// `area` of `file` at `reduce`, decoded as a request's region is (not strict: a file cut in its
/// last tile-part decodes as far as it goes): in one piece with the cores spare at the
/// moment ([`spare_cores`]), or in bands of at most [`BAND_PIXELS`] when it is larger than
/// that, on up to one core each.
pub fn decode_area(
    file: &std::fs::File,
    reduce: u8,
    area: (u32, u32, u32, u32),
    grid: Grid,
    max_pixels: u64,
) -> Result<Bitmap, ViewError> {
    let (width, height) = size_at(area, reduce);
    // The limit is the area's, not a band's.
    if width * height > max_pixels {
        return Err(decode_error(tessera_openjpeg::DecodeError::TooLarge {
            width: u32::try_from(width).unwrap_or(u32::MAX),
            height: u32::try_from(height).unwrap_or(u32::MAX),
            max_pixels,
        }));
    }
    if width * height <= BAND_PIXELS || height < 2 {
        let opts = options(
            reduce,
            Some(area),
            false,
            spare_cores::threads(),
            max_pixels,
        );
        return decode_bitmap(Jp2Input::File(file), &opts);
    }
    let edges = band_edges(area, reduce, grid, width);
    Bands::new(file, reduce, area, false, max_pixels).decode(&edges, cores())
}

/// Where the bands of `area` begin and end (rows of the image's grid): as many rows as keep a
/// band within [`BAND_PIXELS`] at `reduce`, whole rows of tiles in a file of many tiles.
fn band_edges(area: (u32, u32, u32, u32), reduce: u8, grid: Grid, width: u64) -> Vec<u32> {
    let (_, y0, _, y1) = area;
    let shift = u32::from(reduce).min(31);
    // Rows of the grid per band: the level's rows it may hold, back on the grid.
    let level_rows = (BAND_PIXELS / width.max(1)).max(1);
    let mut step = u32::try_from(level_rows << shift)
        .unwrap_or(u32::MAX)
        .max(1);
    let tiled = grid.tiles > 1;
    if tiled {
        step = (step / grid.tile_height).max(1) * grid.tile_height;
    }
    let mut edges = vec![y0];
    // The first edge after y0: on the tile grid for a tiled file.
    let mut next = match tiled {
        true => {
            let from = y0.saturating_sub(grid.tile_y0);
            grid.tile_y0 + (from / grid.tile_height) * grid.tile_height + step
        }
        false => y0.saturating_add(step),
    };
    while next < y1 {
        edges.push(next);
        next = next.saturating_add(step);
    }
    edges.push(y1);
    edges
}

fn options(
    reduce: u8,
    region: Option<(u32, u32, u32, u32)>,
    strict: bool,
    threads: u32,
    max_pixels: u64,
) -> DecodeOptions {
    DecodeOptions {
        reduce: u32::from(reduce),
        region,
        strict,
        max_pixels,
        threads,
    }
}

/// The bands of one area: the columns are the area's, the rows each band's.
struct Bands<'f> {
    file: &'f std::fs::File,
    reduce: u8,
    columns: (u32, u32),
    /// The area's width at `reduce`.
    width: u64,
    strict: bool,
    max_pixels: u64,
}

impl<'f> Bands<'f> {
    fn new(
        file: &'f std::fs::File,
        reduce: u8,
        area: (u32, u32, u32, u32),
        strict: bool,
        max_pixels: u64,
    ) -> Self {
        Self {
            file,
            reduce,
            columns: (area.0, area.2),
            width: size_at(area, reduce).0,
            strict,
            max_pixels,
        }
    }

    /// Decode the bands between consecutive `edges` on up to `workers` threads, copying each
    /// into the output as it ends.
    fn decode(&self, edges: &[u32], workers: u32) -> Result<Bitmap, ViewError> {
        let count = edges.len() - 1;
        let workers = (workers as usize).clamp(1, count);
        let mut joined = Joined::new(self.width, self.reduce, edges)?;
        let next = AtomicUsize::new(0);
        let (done, finished) = mpsc::sync_channel::<(usize, Result<Bitmap, ViewError>)>(0);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let done = done.clone();
                let next = &next;
                scope.spawn(move || loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= count {
                        return;
                    }
                    if done.send((k, self.band(edges[k], edges[k + 1]))).is_err() {
                        return;
                    }
                });
            }
            drop(done);
            let mut failed = None;
            for (k, band) in finished.iter() {
                if let Err(e) = band.and_then(|band| joined.put(k, band)) {
                    failed = Some(e);
                    break;
                }
            }
            // On a failure the workers finish the band they are on and stop: nothing takes
            // their bands any more.
            next.store(count, Ordering::Relaxed);
            drop(finished);
            failed.map_or(Ok(()), Err)
        })?;
        joined.finish()
    }

    fn band(&self, top: u32, bottom: u32) -> Result<Bitmap, ViewError> {
        let (x0, x1) = self.columns;
        let region = Some((x0, top, x1, bottom));
        let opts = options(self.reduce, region, self.strict, 1, self.max_pixels);
        decode_bitmap(Jp2Input::File(self.file), &opts)
    }
}

/// The output, filled band by band in whatever order they end: each band is copied into place
/// and dropped, so the 8-bit pixels held are the output's and those of one band per worker.
struct Joined {
    width: u32,
    /// Where each band's rows begin in the output, and the row after the last.
    starts: Vec<u64>,
    /// Allocated at the first band, which says how many channels there are.
    out: Option<(u8, Vec<u8>)>,
}

impl Joined {
    fn new(width: u64, reduce: u8, edges: &[u32]) -> Result<Self, ViewError> {
        let starts = edges
            .iter()
            .map(|&y| size_at((0, edges[0], 0, y), reduce).1)
            .collect();
        let width =
            u32::try_from(width).map_err(|_| ViewError::Limit("the area is too wide".into()))?;
        Ok(Self {
            width,
            starts,
            out: None,
        })
    }

    fn put(&mut self, k: usize, band: Bitmap) -> Result<(), ViewError> {
        let (top, bottom) = (self.starts[k], self.starts[k + 1]);
        let row = self.width as usize * usize::from(band.channels);
        if band.width != self.width || u64::from(band.height) != bottom - top {
            return Err(ViewError::Corrupt(format!(
                "band {k} decoded to {}×{}, not {}×{}",
                band.width,
                band.height,
                self.width,
                bottom - top
            )));
        }
        let rows = *self.starts.last().unwrap_or(&0);
        let (channels, pixels) = self
            .out
            .get_or_insert_with(|| (band.channels, vec![0; rows as usize * row]));
        if *channels != band.channels {
            return Err(ViewError::Corrupt("the bands of an area differ".into()));
        }
        pixels[top as usize * row..bottom as usize * row].copy_from_slice(&band.pixels);
        Ok(())
    }

    fn finish(self) -> Result<Bitmap, ViewError> {
        let height = u32::try_from(*self.starts.last().unwrap_or(&0))
            .map_err(|_| ViewError::Limit("the area is too tall".into()))?;
        // Every band arrived (a failed or lost one ended the decode before this).
        let (channels, pixels) = self.out.ok_or(ViewError::DecoderFailed)?;
        Bitmap::new(self.width, height, channels, pixels)
            .map_err(|e| ViewError::Corrupt(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(tile_y0: u32, tile_height: u32, tiles: u64) -> Grid {
        Grid {
            tile_y0,
            tile_height,
            tiles,
        }
    }

    /// Edges cover the area in order; each band holds at most BAND_PIXELS at its level, or is
    /// one row of tiles; inner edges of a tiled file fall on the tile grid.
    fn check(area: (u32, u32, u32, u32), reduce: u8, g: Grid) {
        let (width, _) = size_at(area, reduce);
        let edges = band_edges(area, reduce, g, width);
        assert_eq!((edges[0], *edges.last().unwrap()), (area.1, area.3));
        for band in edges.windows(2) {
            assert!(band[0] < band[1], "{edges:?}");
            let (_, rows) = size_at((area.0, band[0], area.2, band[1]), reduce);
            let one_tile_row = g.tiles > 1 && band[1] - band[0] <= g.tile_height;
            assert!(rows * width <= BAND_PIXELS || one_tile_row, "{edges:?}");
        }
        if g.tiles > 1 {
            for &e in &edges[1..edges.len() - 1] {
                assert_eq!((e - g.tile_y0) % g.tile_height, 0, "{edges:?}");
            }
        }
    }

    #[test]
    fn bands_cover_the_area_within_their_size() {
        for reduce in 0..4 {
            for (area, g) in [
                ((0, 0, 9600, 6400), grid(0, 1024, 70)),
                ((0, 0, 9600, 6400), grid(0, 6400, 1)),
                ((100, 333, 5000, 6001), grid(0, 512, 200)),
                ((0, 17, 40_000, 30_000), grid(7, 256, 20_000)),
                ((3, 5, 4603, 3707), grid(5, 3702, 1)),
            ] {
                check(area, reduce, g);
            }
        }
    }

    #[test]
    fn a_tiled_file_is_cut_between_rows_of_tiles() {
        // full/max of a 9600×6400 image in 1024² tiles: its level 1 is 4800 wide, so a band
        // (at most 4 MP) holds one row of tiles (512 rows of the level).
        let edges = band_edges((0, 0, 9600, 6400), 1, grid(0, 1024, 70), 4800);
        assert_eq!(edges, [0, 1024, 2048, 3072, 4096, 5120, 6144, 6400]);
    }

    #[test]
    fn rows_of_a_band_add_up_to_the_area() {
        let edges = [3, 1000, 2001, 3707];
        let joined = Joined::new(2301, 1, &edges).unwrap();
        let (_, rows) = size_at((0, 3, 4601, 3707), 1);
        assert_eq!(*joined.starts.last().unwrap(), rows);
    }
}
