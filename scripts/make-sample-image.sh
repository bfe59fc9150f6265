#!/usr/bin/env bash
# Regenerates examples/images/sample.jp2, the image the embedded default serves: 2048×1536,
# one tile, RPCL progression with tile-parts split by resolution and TLM markers (the layout the
# byte-range path reads partially), 6 decomposition levels, lossy (~40:1) to stay small.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 scripts/make-sample-image.py 2048 1536 "$tmp/sample.ppm"
opj_compress -i "$tmp/sample.ppm" -o examples/images/sample.jp2 -p RPCL -TP R -TLM -n 6 -r 40 >/dev/null
ls -l examples/images/sample.jp2
