#!/usr/bin/env bash
# Hot cache eviction policy: Tessera's segmented LRU vs plain LRU vs Belady (offline), replayed
# on a synthetic corpus of JP2 masters and a Zipf view trace, with and without a crawler.
# Pure simulation (no disk, no S3). Prints Markdown tables (paste into docs/benchmarks.md).
#
#   bench/cache_policy.sh                          # defaults: 20000 images, 500000 views, seed 1
#   bench/cache_policy.sh --seed 7 --budget-fraction 0.05
#   bench/cache_policy.sh --help                   # every flag
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=(cargo run --release -p cache-sim -- "$@")
echo "Command: ${cmd[*]}"
echo
"${cmd[@]}"
