#!/usr/bin/env bash
# `full/max` and a large `!w,h` of a 61 MP tiled JPEG 2000 through `render`, with the peak memory
# of the process, beside iipsrv (nginx → iipsrv, file local) asked the same on the same file, in
# one run. With BASELINE (the path of an older release binary of Tessera), that build is
# measured too, on the same file and config.
#
#   bench/full_max.sh
#   ROUNDS=5 SIZE=9600x6400 BASELINE=/path/to/an/older/tessera bench/full_max.sh
#
# Each server is started fresh for each request kind, so its peak RSS (VmHWM) is that request's.
# The image is read once before measuring (index built, local copy made): times are warm.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-9600x6400}
W=${SIZE%x*}; H=${SIZE#*x}
need nginx nginx-light; need curl curl; need opj_compress libopenjp2-tools; need vips libvips-tools
IIPSRV=/usr/lib/iipimage-server/iipsrv.fcgi
[ -x $IIPSRV ] || { echo "missing iipsrv: apt-get install -y iipimage-server" >&2; exit 1; }

cargo build --release -p tessera >&2
TESSERA=$PWD/target/release/tessera

echo "making a $SIZE tiled JP2 (1024² tiles, 6 levels)" >&2
mkdir -p "$WORK/m"
tiled_jp2 "$W" "$H" "$WORK/m/big.jp2"

# The time of one request (ms) and what came back, or the HTTP status on failure.
timed() { curl -s -o "$WORK/out" -w "%{http_code} %{time_total}\n" "$1" | awk '{ if ($1 != 200) { print "HTTP " $1 > "/dev/stderr"; exit 1 } printf "%.0f\n", $2 * 1000 }'; }
out_size() { vipsheader -f width "$WORK/out" | tr '\n' 'x'; vipsheader -f height "$WORK/out"; }

# One Tessera build ($1) with `render` over the folder: "median ms | peak MB | size" for path $2.
tessera_row() {
  local bin=$1 path=$2 tes adm pid
  tes=$(port); adm=$(port)
  # The hot cache is for a BASELINE build; this one reads the folder in place.
  render_config "$tes" "$adm" "hot_cache: { dir: \"$WORK/cache\", capacity: 4GiB }"
  "$bin" run --config "$WORK/proxy.yaml" > "$WORK/tessera.log" 2>&1 & pid=$!; PIDS+=($pid)
  wait_port "$tes"
  curl -sf -o /dev/null "http://127.0.0.1:$tes/render/big.jp2/0,0,256,256/256,/0/default.jpg"
  : > "$WORK/t"
  for _ in $(seq "$ROUNDS"); do timed "http://127.0.0.1:$tes/render/big.jp2/$path" >> "$WORK/t"; done
  echo "$(median < "$WORK/t") | $(peak_mb $pid) | $(out_size)"
  echo "$path: $(tr '\n' ' ' < "$WORK/t")" >&2
  kill $pid; wait $pid 2>/dev/null || true
}

# iipsrv behind nginx, fresh for each path: "median ms | peak MB (iipsrv) | size".
iipsrv_row() {
  local path=$1 iip ngx pid
  iip=$(port); ngx=$(port)
  start_iipsrv_behind_nginx "$iip" "$ngx"
  pid=$(pgrep -n -f "iipsrv.fcgi --bind 127.0.0.1:$iip")
  curl -sf -o /dev/null "http://127.0.0.1:$ngx/fcgi-bin/iipsrv.fcgi?IIIF=$WORK/m/big.jp2/0,0,256,256/256,/0/default.jpg"
  : > "$WORK/t"
  for _ in $(seq "$ROUNDS"); do timed "http://127.0.0.1:$ngx/fcgi-bin/iipsrv.fcgi?IIIF=$WORK/m/big.jp2/$path" >> "$WORK/t"; done
  echo "$(median < "$WORK/t") | $(peak_mb "$pid") | $(out_size)"
  echo "iipsrv $path: $(tr '\n' ' ' < "$WORK/t")" >&2
  kill "$pid"; kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; sleep 0.3
}

echo "## full/max and !4800,4800 of a $SIZE tiled JP2 ($(stat -c %s "$WORK/m/big.jp2") bytes), warm, median of $ROUNDS"; echo
echo "| server | request | ms | peak RSS MB | output |"
echo "|---|---|---:|---:|---|"
for path in full/max/0/default.jpg 'full/!4800,4800/0/default.jpg'; do
  echo "| Tessera render | $path | $(tessera_row "$TESSERA" "$path") |"
  if [ -n "${BASELINE:-}" ]; then
    echo "| baseline render | $path | $(tessera_row "$BASELINE" "$path") |"
  fi
  echo "| nginx → iipsrv | $path | $(iipsrv_row "$path") |"
done
