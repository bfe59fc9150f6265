#!/usr/bin/env bash
# The decode of a small view alone (full/!200,200 of a 75 MP master, as byte_range assembles
# it), outside the server: one thread and two, exact and without 1–3 bit-planes, right after
# one another and after a pause like a server's between requests (PAUSE_MS), for the masters
# byte_range reads partially: one tile (classic), 1024² tiles interleaved by `tessera
# interleave` (classic, and HTJ2K by the README's recipe). What a request's decode costs the
# decoder, apart from what the machine does meanwhile (bench/views.sh measures the request).
#
#   bench/small_view_decode.sh                    # defaults below
#   REPEATS=40 PAUSE_MS=50 bench/small_view_decode.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

REPEATS=${REPEATS:-30}
PAUSE_MS=${PAUSE_MS:-20}
IMAGE=${IMAGE:-10000x7500}
W=${IMAGE%x*} H=${IMAGE#*x}

need opj_compress libopenjp2-tools; need grk_compress grokj2k-tools; need vips libvips-tools
cargo build --release -p tessera -p tessera-images --example small_view_decode >&2
TESSERA=$PWD/target/release/tessera
DECODE=$PWD/target/release/examples/small_view_decode

single_tile_jp2 "$W" "$H" "$WORK/single.jp2" -TP R -TLM
tiled_jp2 "$W" "$H" "$WORK/tiled.jp2" -TP R -TLM
"$TESSERA" interleave "$WORK/tiled.jp2" "$WORK/tiled.jp2" >&2
sample_picture "$W" "$H" "$WORK/src.tif"
grk_compress -i "$WORK/src.tif" -o "$WORK/htj2k-tiled.jp2" -M 64 -p RPCL -u R -X -n 7 -t 1024,1024 >/dev/null
rm "$WORK/src.tif"
"$TESSERA" interleave "$WORK/htj2k-tiled.jp2" "$WORK/htj2k-tiled.jp2" >&2

for master in single tiled htj2k-tiled; do
  for pause in 0 "$PAUSE_MS"; do
    echo "### $master.jp2 ($IMAGE), pause $pause ms"; echo
    "$DECODE" "$WORK/$master.jp2" 200 "$REPEATS" "$pause" | sed "s#$WORK/##"
    echo
  done
done
echo "$(nproc) cores; tessera $("$TESSERA" --version | cut -d' ' -f2)"
