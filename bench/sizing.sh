#!/usr/bin/env bash
# What one decode costs, for sizing CPU and memory: the CPU time per request and the peak
# memory of `render` over a 61 MP tiled JPEG 2000 (viewer tiles, and a first-screen view), with
# 2 and 8 clients, beside iipsrv (nginx → one iipsrv process, file local) asked for the same tiles
# in the same run.
#
#   bench/sizing.sh
#   SIZE=9600x6400 bench/sizing.sh
#
# CPU is the process's user + system time (/proc/PID/stat) over the requests, divided by their
# number; memory is the process's peak RSS (VmHWM), each server started fresh for each row.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

SIZE=${SIZE:-9600x6400}
W=${SIZE%x*}; H=${SIZE#*x}
need nginx nginx-light; need curl curl; need opj_compress libopenjp2-tools; need vips libvips-tools
[ -x /usr/lib/iipimage-server/iipsrv.fcgi ] || { echo "missing iipsrv: apt-get install -y iipimage-server" >&2; exit 1; }

cargo build --release -p tessera >&2
TESSERA=$PWD/target/release/tessera

echo "making a $SIZE tiled JP2 (1024² tiles, 7 levels)" >&2
mkdir -p "$WORK/m"
tiled_jp2 "$W" "$H" "$WORK/m/big.jp2"

# The requests of a row: every full-resolution 1024² tile at half size, as a viewer asks for
# them (edge tiles cut to the image, their size halved, rounded up), or the first screen of a
# viewer (the whole image in 1200×900) 20 times.
paths() {
  local w h
  case $1 in
    tiles) for ((y = 0; y < H; y += 1024)); do for ((x = 0; x < W; x += 1024)); do
             w=$(( W - x < 1024 ? W - x : 1024 )); h=$(( H - y < 1024 ? H - y : 1024 ))
             echo "$x,$y,$w,$h/$(( (w + 1) / 2 )),/0/default.jpg"; done; done ;;
    screen) for _ in $(seq 20); do echo 'full/!1200,900/0/default.jpg'; done ;;
  esac
}
rss_mb() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
# Ask every path of $2 under URL prefix $1 with $3 clients; fail on any non-200.
ask() {
  local bad
  bad=$(paths "$2" | sed "s|^|$1|" | xargs -P "$3" -n 1 curl -s -o /dev/null -w "%{http_code} %{url}\n" | grep -v '^200 ' || true)
  [ -z "$bad" ] || { echo "failed: $bad" >&2; kill 0; }
}
# "CPU ms per request | peak RSS MB" of process $1 for kind $2 at prefix $3 with $4 clients.
measure() {
  local pid=$1 before after n
  n=$(paths "$2" | wc -l)
  before=$(cpu_ticks "$pid")
  ask "$3" "$2" "$4"
  after=$(cpu_ticks "$pid")
  echo "$(( (after - before) * 1000 / $(getconf CLK_TCK) / n )) | $(peak_mb "$pid")"
}

tessera_row() {
  local kind=$1 clients=$2 tes adm pid
  tes=$(port); adm=$(port)
  render_config "$tes" "$adm" "image_index: { dir: \"$WORK/index\" }"
  "$TESSERA" run --config "$WORK/proxy.yaml" > "$WORK/tessera.log" 2>&1 & pid=$!; PIDS+=($pid)
  wait_port "$tes"; sleep 0.5
  local idle; idle=$(rss_mb $pid)
  # The header index is built by the first request; not counted.
  curl -sf -o /dev/null "http://127.0.0.1:$tes/render/big.jp2/info.json" || true
  echo "$(measure $pid "$kind" "http://127.0.0.1:$tes/render/big.jp2/" "$clients") | $idle"
  kill $pid; wait $pid 2>/dev/null || true
}

iipsrv_row() {
  local kind=$1 clients=$2 iip ngx pid
  iip=$(port); ngx=$(port)
  start_iipsrv_behind_nginx "$iip" "$ngx"
  pid=$(pgrep -n -f "iipsrv.fcgi --bind 127.0.0.1:$iip")
  local idle; idle=$(rss_mb "$pid")
  echo "$(measure "$pid" "$kind" "http://127.0.0.1:$ngx/fcgi-bin/iipsrv.fcgi?IIIF=$WORK/m/big.jp2/" "$clients") | $idle"
  kill "$pid"; kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; sleep 0.3
}

echo "## CPU and memory per decode: $SIZE tiled JP2 ($(stat -c %s "$WORK/m/big.jp2") bytes), $(nproc) cores"; echo
echo "tiles: $(paths tiles | wc -l) distinct full-resolution 1024² regions at half size, as a viewer asks; screen: 20 × full/!1200,900"; echo
echo "| server | requests | clients | CPU ms per request | peak RSS MB | idle RSS MB |"
echo "|---|---|---:|---:|---:|---:|"
for kind in tiles screen; do
  for clients in 2 8; do
    echo "| Tessera render | $kind | $clients | $(tessera_row $kind $clients) |"
  done
  echo "| nginx → iipsrv (1 process) | $kind | 2 | $(iipsrv_row $kind 2) |"
done
echo
echo "The image's header index on disk (image_index.dir): $(du -sb "$WORK/index" | cut -f1) bytes."
