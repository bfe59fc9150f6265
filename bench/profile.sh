#!/usr/bin/env bash
# Where `render` spends its time on a viewer's requests: perf samples Tessera while wrk replays
# the recorded OpenSeadragon requests (bench/viewer/IMAGE.urls) against it, warm; the result is a
# flame graph, docs/profiles/render-IMAGE.svg, and the top functions on standard output.
#
#   bench/profile.sh tiled        # or single
#   FOLDED=/tmp/render.folded bench/profile.sh tiled   # also keeps the folded stacks
#
# Needs perf (linux-perf) and inferno (cargo install inferno).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
IMAGE=${1:-tiled}
SECONDS_SAMPLED=${SECONDS_SAMPLED:-15}
need perf linux-perf; need wrk wrk; need inferno-flamegraph "(cargo install inferno)"
need opj_compress libopenjp2-tools; need vips libvips-tools

cargo build --release -p tessera >&2
mkdir -p "$WORK/m" docs/profiles
VIEWER_SIZE=${VIEWER_SIZE:-9600x6400}
w=${VIEWER_SIZE%x*}; h=${VIEWER_SIZE#*x}
if [ "$IMAGE" = tiled ]; then tiled_jp2 "$w" "$h" "$WORK/m/tiled.jp2"; else single_tile_jp2 "$w" "$h" "$WORK/m/single.jp2"; fi

tes=$(port); adm=$(port)
viewer_config "$tes" "$adm" > "$WORK/proxy.yaml"
target/release/tessera run --config "$WORK/proxy.yaml" > "$WORK/tessera.log" 2>&1 & pid=$!; PIDS+=($pid)
wait_port "$tes"
grep -v '^#' "bench/viewer/$IMAGE.urls" | grep -v info.json > "$WORK/paths"
paths_lua "$WORK/paths" "$WORK/replay.lua"
curl -sf -o /dev/null "http://127.0.0.1:$tes/iiif/$IMAGE/info.json"
wrk -t2 -c8 -d$((SECONDS_SAMPLED + 6))s -s "$WORK/replay.lua" "http://127.0.0.1:$tes" -- "/iiif/$IMAGE/" > "$WORK/wrk.out" & load=$!
sleep 3
perf record -F 199 -g --call-graph dwarf,16384 -p "$pid" -o "$WORK/perf.data" -- sleep "$SECONDS_SAMPLED" 2> /dev/null
wait $load
# No debuginfod lookups (they stall perf for minutes); no inlined frames (slow to resolve).
export DEBUGINFOD_URLS=
perf script -i "$WORK/perf.data" --no-inline 2> /dev/null | inferno-collapse-perf > "$WORK/folded"
[ -z "${FOLDED:-}" ] || cp "$WORK/folded" "$FOLDED"
inferno-flamegraph --title "render, OpenSeadragon's requests for $IMAGE.jp2 ($VIEWER_SIZE), warm" < "$WORK/folded" > "docs/profiles/render-$IMAGE.svg"
echo "## render on $IMAGE.jp2: $(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out") requests/s under perf; self time by function (share of samples)"
echo
echo "| share | function |"; echo "|---:|---|"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio --percent-limit 1.5 2> /dev/null \
  | awk '/^ +[0-9.]+%/ { printf "| %s | `%s` |\n", $1, $3 }' | head -25
