#!/usr/bin/env bash
# What a viewer waits for: the requests OpenSeadragon makes for the first screen of a 61 MP
# image and two zoom steps (bench/viewer/*.urls, recorded by bench/viewer_record.sh), replayed
# with a browser's 6 connections, against Tessera's `render` and against nginx → a pool of iipsrv
# processes as large as Tessera's threads (the cores), on a tiled and a single-tile JP2, the same
# files, in one run. Then tiles per second per core for each (wrk over the same requests).
#
#   bench/viewer.sh
#   ROUNDS=3 DURATION=10s BASELINE=/path/to/an/older/tessera bench/viewer.sh
#   IMAGES=tiled bench/viewer.sh             # one of the two masters
#   TILES_ONLY=1 bench/viewer.sh             # only the tiles per second
#
# Cold: a fresh process, its first sight of the image (no header index; the file is in the OS's
# page cache for both servers, as it is on a busy node). Warm: the same steps again from the same
# process. No response cache: every request decodes. Medians of ROUNDS (tiles per second too,
# the servers taking turns in each round).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-8}
CLIENTS=6
IMAGES=${IMAGES:-tiled single}
CORES=$(nproc)
need wrk wrk; need nginx nginx-light; need curl curl; need opj_compress libopenjp2-tools
need vips libvips-tools
[ -x /usr/lib/iipimage-server/iipsrv.fcgi ] || { echo "missing iipsrv: apt-get install -y iipimage-server" >&2; exit 1; }

cargo build --release -p tessera >&2
TESSERA=$PWD/target/release/tessera
mkdir -p "$WORK/m" "$WORK/t"
viewer_masters "$WORK/m"

# The requests of step $2 (1, 2 or 4: the zoom) of recording $1.
step() { awk -v s="# step: zoom $2" '/^# step:/ { on = ($0 == s); next } /^#/ { next } on' "$1"; }
# Wall time (ms) of asking, with CLIENTS connections, every request of step $3 of recording $2
# under URL prefix $1; fails on any answer but 200.
replay() {
  local start end
  step "$2" "$3" | sed "s|^\\(.*\\)\$|url = \"$1\\1\"\\noutput = \"/dev/null\"|" > "$WORK/curl.cfg"
  start=$(date +%s%N)
  curl -s --no-progress-meter --parallel --parallel-max $CLIENTS -K "$WORK/curl.cfg" -w "%{http_code} %{url}\n" > "$WORK/codes"
  end=$(date +%s%N)
  if grep -v '^200 ' "$WORK/codes" >&2; then echo "non-200 answers" >&2; kill 0; fi
  echo $(( (end - start) / 1000000 ))
}
# "cold z1 | cold z2 | cold z4 | warm z1 | warm z2 | warm z4" for a server started by `$1 start`
# (which sets PREFIX, the URL the image's requests go under) and stopped by `$1 stop`.
steps_row() {
  local server=$1 image=$2 urls=bench/viewer/$image.urls r z
  for r in $(seq "$ROUNDS"); do
    "$server" start "$image"
    for z in 1 2 4; do replay "$PREFIX" "$urls" $z > "$WORK/cold.$z.$r"; done
    for z in 1 2 4; do replay "$PREFIX" "$urls" $z > "$WORK/warm.$z.$r"; done
    "$server" stop
  done
  local cells=()
  for kind in cold warm; do for z in 1 2 4; do
    cells+=("$(cat "$WORK"/$kind.$z.* | median)")
  done; done
  local IFS='|'; echo "${cells[*]}" | sed 's/|/ | /g'
}
# "tiles/s CPU-ms-per-tile", warm, over every tile request of the recording (not info.json);
# the CPU is that of the server's processes (SERVER_PIDS), so that per core is measured even
# when the machine's other tenants take some of its cores.
tiles_per_second() {
  local server=$1 image=$2 urls=bench/viewer/$image.urls t0 t1
  "$server" start "$image"
  grep -v '^#' "$urls" | grep -v 'info.json' > "$WORK/paths"
  paths_lua "$WORK/paths" "$WORK/replay.lua"
  # One pass first, so that both are warm.
  replay "$PREFIX" "$urls" 1 > /dev/null
  t0=$(cpu_ticks "${SERVER_PIDS[@]}")
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$WORK/replay.lua" "$ORIGIN" -- "$PATH_PREFIX" > "$WORK/wrk.out"
  t1=$(cpu_ticks "${SERVER_PIDS[@]}")
  "$server" stop
  awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '
    /requests in/ { n = $1 } /Requests\/sec/ { rps = $2 }
    END { printf "%s %.1f\n", rps, n ? 1000 * t / hz / n : 0 }' "$WORK/wrk.out"
}

BIN=$TESSERA
tessera() {
  case $1 in
    start)
      local tes adm; tes=$(port); adm=$(port)
      viewer_config "$tes" "$adm" > "$WORK/proxy.yaml"
      "$BIN" run --config "$WORK/proxy.yaml" > "$WORK/tessera.log" 2>&1 & SERVER_PID=$!; PIDS+=($!)
      SERVER_PIDS=("$SERVER_PID")
      wait_port "$tes"
      ORIGIN=http://127.0.0.1:$tes; PATH_PREFIX=/iiif/$2/; PREFIX=$ORIGIN$PATH_PREFIX ;;
    stop) kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true ;;
  esac
}
iipsrv_pool() {
  case $1 in
    start)
      local ngx; ngx=$(port)
      start_iipsrv_pool "$ngx" "$CORES"
      SERVER_PIDS=("${IIP_PIDS[@]}" "$(cat "$WORK/nginx.pid")")
      ORIGIN=http://127.0.0.1:$ngx; PATH_PREFIX="/fcgi-bin/iipsrv.fcgi?IIIF=$WORK/m/$2.jp2/"; PREFIX=$ORIGIN$PATH_PREFIX ;;
    stop) kill "${IIP_PIDS[@]}"; kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; sleep 0.3 ;;
  esac
}

if [ -z "${TILES_ONLY:-}" ]; then
echo "## A viewer's first screen and two zoom steps ($VIEWER_SIZE JP2s, OpenSeadragon's requests, $CLIENTS connections, $CORES cores), median of $ROUNDS"; echo
echo "Wall time of each step in ms (requests per step: see bench/viewer/*.urls)."; echo
echo "| master | server | cold first screen | cold zoom ×2 | cold zoom ×4 | warm first screen | warm zoom ×2 | warm zoom ×4 |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for image in $IMAGES; do
  echo "| $image | Tessera render | $(steps_row tessera $image) |"
  if [ -n "${BASELINE:-}" ]; then
    BIN=$BASELINE; echo "| $image | baseline render | $(steps_row tessera $image) |"; BIN=$TESSERA
  fi
  echo "| $image | nginx → $CORES iipsrv | $(steps_row iipsrv_pool $image) |"
done
fi
echo
echo "### Tiles per second, warm (wrk -c$CONNECTIONS -d$DURATION over the recorded tile requests, median of $ROUNDS alternating rounds)"; echo
echo "| master | server | tiles/s | CPU ms per tile | tiles per core, vs iipsrv |"
echo "|---|---|---:|---:|---:|"
servers="tessera${BASELINE:+ baseline} iipsrv_pool"
for image in $IMAGES; do
  rm -f "$WORK"/rps.*
  for r in $(seq "$ROUNDS"); do
    for s in $servers; do
      if [ "$s" = baseline ]; then BIN=$BASELINE; s=tessera; out=baseline; else out=$s; fi
      tiles_per_second "$s" "$image" >> "$WORK/rps.$out"; BIN=$TESSERA
    done
  done
  cpu_iip=$(awk '{print $2}' "$WORK/rps.iipsrv_pool" | median)
  for s in $servers; do
    name=$(case $s in tessera) echo "Tessera render";; baseline) echo "baseline render";; *) echo "nginx → $CORES iipsrv";; esac)
    rps=$(awk '{print $1}' "$WORK/rps.$s" | median); cpu=$(awk '{print $2}' "$WORK/rps.$s" | median)
    echo "| $image | $name | $rps | $cpu | $(awk -v a="$cpu_iip" -v b="$cpu" 'BEGIN { printf "%.2f×", a / b }') |"
  done
done
echo
echo "Per core: tiles per CPU-second of the server's own processes (Tessera; the iipsrv processes and nginx), iipsrv's CPU ms per tile over the server's. Tessera runs $CORES threads, the pool $CORES iipsrv processes."
