#!/usr/bin/env bash
# Where `render` spends its time on a viewer's requests: perf samples Tessera while wrk replays
# the recorded OpenSeadragon requests (bench/viewer/IMAGE.urls) against it, warm; the result is a
# flame graph, docs/profiles/render-IMAGE.svg, and the top functions on standard output.
# `small-view` instead samples `byte_range` answering full/!200,200 of a tiled master (1024²
# tiles, interleaved by `tessera interleave`, one bit-plane skipped) read from the test S3
# server, again and again: docs/profiles/byte_range-tiled.svg.
#
#   bench/profile.sh tiled        # or single, or small-view
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

cargo build --release -p tessera -p tessera-s3-fixture >&2
mkdir -p "$WORK/m" docs/profiles
VIEWER_SIZE=${VIEWER_SIZE:-9600x6400}
w=${VIEWER_SIZE%x*}; h=${VIEWER_SIZE#*x}
tes=$(port); adm=$(port)
case $IMAGE in
  tiled) tiled_jp2 "$w" "$h" "$WORK/m/tiled.jp2" ;;
  single) single_tile_jp2 "$w" "$h" "$WORK/m/single.jp2" ;;
  small-view)
    tiled_jp2 "$w" "$h" "$WORK/tiled.jp2" -TP R -TLM
    target/release/tessera interleave "$WORK/tiled.jp2" "$WORK/tiled.jp2" >&2
    s3=$(port)
    start_s3_fixture "$s3"
    s3_put "$s3" tiled "$WORK/tiled.jp2"
    ;;
  *) echo "bench/profile.sh: tiled, single or small-view, not $IMAGE" >&2; exit 2 ;;
esac

if [ "$IMAGE" = small-view ]; then
  cat > "$WORK/proxy.yaml" <<YAML
listen: [{ address: "127.0.0.1:$tes" }]
admin: { address: "127.0.0.1:$adm" }
access_log: false
origins:
  masters: { s3: { bucket: images, endpoint: "http://127.0.0.1:$s3", path_style: true } }
routes:
  - name: small
    match: { path: "/small/{image}/{iiif*}" }
    handler: { byte_range: { origin: masters, key: "{image}", skip_last_bit_planes: 1 } }
YAML
else
  viewer_config "$tes" "$adm" > "$WORK/proxy.yaml"
fi
target/release/tessera run --config "$WORK/proxy.yaml" > "$WORK/tessera.log" 2>&1 & pid=$!; PIDS+=($pid)
wait_port "$tes"
if [ "$IMAGE" = small-view ]; then
  view="http://127.0.0.1:$tes/small/tiled/full/!200,200/0/default.jpg"
  curl -sf -o /dev/null "$view"   # the index
  wrk -t1 -c1 -d$((SECONDS_SAMPLED + 6))s "$view" > "$WORK/wrk.out" & load=$!
  title="byte_range, full/!200,200 of an interleaved tiled.jp2 ($VIEWER_SIZE, 1024² tiles) from S3, one plane skipped"
  svg=docs/profiles/byte_range-tiled.svg
else
  grep -v '^#' "bench/viewer/$IMAGE.urls" | grep -v info.json > "$WORK/paths"
  paths_lua "$WORK/paths" "$WORK/replay.lua"
  curl -sf -o /dev/null "http://127.0.0.1:$tes/iiif/$IMAGE/info.json"
  wrk -t2 -c8 -d$((SECONDS_SAMPLED + 6))s -s "$WORK/replay.lua" "http://127.0.0.1:$tes" -- "/iiif/$IMAGE/" > "$WORK/wrk.out" & load=$!
  title="render, OpenSeadragon's requests for $IMAGE.jp2 ($VIEWER_SIZE), warm"
  svg=docs/profiles/render-$IMAGE.svg
fi
sleep 3
perf record -F 199 -g --call-graph dwarf,16384 -p "$pid" -o "$WORK/perf.data" -- sleep "$SECONDS_SAMPLED" 2> /dev/null
wait $load
# No debuginfod lookups (they stall perf for minutes); no inlined frames (slow to resolve).
export DEBUGINFOD_URLS=
perf script -i "$WORK/perf.data" --no-inline 2> /dev/null | inferno-collapse-perf > "$WORK/folded"
[ -z "${FOLDED:-}" ] || cp "$WORK/folded" "$FOLDED"
inferno-flamegraph --title "$title" < "$WORK/folded" > "$svg"
echo "## $title: $(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out") requests/s under perf; self time by function (share of samples)"
echo
echo "| share | function |"; echo "|---:|---|"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio --percent-limit 1.5 2> /dev/null \
  | awk '/^ +[0-9.]+%/ { printf "| %s | `%s` |\n", $1, $3 }' | head -25
