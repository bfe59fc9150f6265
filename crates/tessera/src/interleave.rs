//! `tessera interleave IN OUT`: rewrite a tiled JPEG 2000 master so that a small view of it is
//! one ranged read instead of one per tile (the why is in [`tessera_jp2::interleave`]).
//!
//! The file is indexed by the proxy's own [`IndexStore`] over a directory origin, the code that
//! indexes masters for `byte_range`, so what is rewritten is what the proxy would read; every
//! tile-part's SOT must be where that index says. The pieces are written to a temporary file
//! beside OUT, which is then indexed again and checked (the same tile-parts, by resolution, each
//! reduce one range, each SOT where its new TLM says) before it is renamed to OUT: OUT is never
//! half-written, and may be IN; nothing is left behind when a step fails.

use anyhow::{bail, ensure, Context};
use clap::Args;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tessera_images::imaging::pipeline::MAX_GAP;
use tessera_images::resources::{Declared, IndexStore};
use tessera_jp2::{Header, Interleaved, Jp2Index, Piece, SOT_HEADER_LEN};
use tessera_origin::dir::DirOrigin;
use tessera_origin::Origin;

#[derive(Args)]
pub struct InterleaveArgs {
    /// The JPEG 2000 file (JP2 or J2K) to read. It must have a tile-part per resolution
    /// (`opj_compress -p RPCL -TP R`, Kakadu `Corder=RPCL ORGtparts=R`).
    input: PathBuf,
    /// Where to write the rewritten file (may be the input).
    output: PathBuf,
}

pub fn run(args: InterleaveArgs) -> ExitCode {
    match interleave_file(&args.input, &args.output) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tessera interleave: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn interleave_file(input: &Path, output: &Path) -> anyhow::Result<String> {
    let (header, before, prefix) = index_file(input)?;
    let mut file = File::open(input).with_context(|| format!("{}", input.display()))?;
    let metadata = file.metadata()?;
    let len = metadata.len();
    let main = &prefix[before.main_header.start as usize..before.main_header.end as usize];
    let cannot = || format!("{}: cannot interleave", input.display());
    check_sots(&mut file, &before).with_context(cannot)?;
    let rewrite = tessera_jp2::interleave(&header, &before, main, len).with_context(cannot)?;

    let tmp = temporary_beside(output)?;
    let written = write_pieces(&mut file, &rewrite.pieces, &tmp)
        .and_then(|()| {
            // The same permissions as the master it replaces or copies.
            std::fs::set_permissions(&tmp, metadata.permissions())?;
            let (_, after, _) = index_file(&tmp)?;
            check_rewrite(&before, &after)?;
            check_sots(&mut File::open(&tmp)?, &after)?;
            Ok(after)
        })
        .and_then(|after| {
            std::fs::rename(&tmp, output)
                .with_context(|| format!("renaming {} to {}", tmp.display(), output.display()))?;
            Ok(after)
        });
    match written {
        Ok(after) => Ok(summary(output, &before, &after, &rewrite, len)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The SOTs are written afresh from the index: it must describe the file, each tile-part's
/// SOT where the index puts it.
fn check_sots(file: &mut File, index: &Jp2Index) -> anyhow::Result<()> {
    for tp in &index.tile_parts {
        let sot = read_range(file, tp.offset..tp.offset + SOT_HEADER_LEN)?;
        tessera_jp2::check_sot(tp, &sot)?;
    }
    Ok(())
}

/// What was written, and what a view reads at each scale, before → after.
fn summary(
    output: &Path,
    before: &Jp2Index,
    after: &Jp2Index,
    rewrite: &Interleaved,
    old_len: u64,
) -> String {
    let reads = |index: &Jp2Index, reduce: u8| {
        index
            .plan(reduce, MAX_GAP)
            .map_or(0, |plan| plan.ranges.len())
    };
    let scales: Vec<String> = (1..=after.levels)
        .rev()
        .map(|reduce| {
            let (was, now) = (reads(before, reduce), reads(after, reduce));
            format!("1/{}: {was} → {now}", 1u64 << reduce)
        })
        .collect();
    let order = if rewrite.order_unchanged {
        " (already in this order: a fresh TLM only)"
    } else {
        " by resolution"
    };
    format!(
        "{}: {} tiles, {} tile-parts{order}, {old_len} → {} bytes; ranged reads per view, by scale: {}",
        output.display(),
        after.num_tiles(),
        after.tile_parts.len(),
        rewrite.len(),
        scales.join(", ")
    )
}

/// The header and index of the file at `path`, as the proxy builds them, and its bytes up to
/// the first SOT (the main header among them).
fn index_file(path: &Path) -> anyhow::Result<(Header, Jp2Index, Vec<u8>)> {
    let (dir, name) = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) => (dir, name),
        _ => bail!("{}: not a file name", path.display()),
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let origin: Arc<dyn Origin> = Arc::new(DirOrigin::new(dir));
    // Nothing is decoded: no limit on what the image declares.
    let declared = Declared {
        max_pixels: u64::MAX,
        max_components: usize::MAX,
    };
    let store = IndexStore::new(1 << 20, None, 64 << 10, false, declared);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let indexed = runtime
        .block_on(store.get(&origin, name))
        .with_context(|| format!("{}", path.display()))?;
    let index = Arc::unwrap_or_clone(indexed.index);
    let mut file = File::open(path)?;
    // The header ends where the first SOT begins: the parser must see that SOT.
    let prefix = read_range(&mut file, 0..index.main_header.end + SOT_HEADER_LEN)?;
    let header =
        Header::parse(&prefix).with_context(|| format!("{}: the header", path.display()))?;
    Ok((header, index, prefix))
}

fn read_range(file: &mut File, range: std::ops::Range<u64>) -> anyhow::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(range.start))?;
    let mut out = Vec::new();
    file.take(range.end - range.start).read_to_end(&mut out)?;
    ensure!(
        out.len() as u64 == range.end - range.start,
        "the file ends before byte {}",
        range.end
    );
    Ok(out)
}

/// A name in `output`'s directory that no one else writes to.
fn temporary_beside(output: &Path) -> anyhow::Result<PathBuf> {
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: not a file name", output.display()))?;
    Ok(output.with_file_name(format!(".{name}.{}.interleaving", std::process::id())))
}

fn write_pieces(input: &mut File, pieces: &[Piece], to: &Path) -> anyhow::Result<()> {
    let out = File::create(to).with_context(|| format!("{}", to.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, out);
    for piece in pieces {
        match piece {
            Piece::New(bytes) => writer.write_all(bytes)?,
            Piece::Copy(range) => {
                input.seek(SeekFrom::Start(range.start))?;
                let want = range.end - range.start;
                let copied = std::io::copy(&mut input.take(want), &mut writer)?;
                ensure!(copied == want, "the input ended before byte {}", range.end);
            }
        }
    }
    let out = writer.into_inner().map_err(|e| e.into_error())?;
    out.sync_all()
        .with_context(|| format!("{}: sync", to.display()))?;
    Ok(())
}

/// The rewritten file must hold the same tile-parts as the original, ordered by resolution and
/// then tile, with each reduce one range.
fn check_rewrite(before: &Jp2Index, after: &Jp2Index) -> anyhow::Result<()> {
    let listed = |index: &Jp2Index| -> Vec<_> {
        let mut parts: Vec<_> = index
            .tile_parts
            .iter()
            .map(|tp| (tp.part, tp.tile, tp.length))
            .collect();
        parts.sort_unstable();
        parts
    };
    ensure!(
        after.is_interleaved() && listed(after) == listed(before),
        "the rewritten file does not hold the original's tile-parts by resolution"
    );
    for d in 0..=after.levels {
        let ranges = after.plan(d, 0).map(|p| p.ranges.len());
        ensure!(
            ranges == Ok(1),
            "the rewritten file reads reduce {d} in {ranges:?} ranges, not one"
        );
    }
    Ok(())
}
