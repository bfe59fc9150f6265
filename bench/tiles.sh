#!/usr/bin/env bash
# The tile path, measured against its references in one run:
#
#  1. cold flood: FLOOD concurrent requests for one tile of an image that is not yet local, through
#     Tessera (S3 → hot cache → iipsrv over FastCGI). Reported: GETs that reached S3, p50/p99
#     latency. References: the same flood when the image is warm, the same flood straight to
#     nginx → iipsrv reading the file from local disk, and one raw S3 GET of the object (curl).
#  2. copy throughput: a COPY_MB object copied into the hot cache (time from Tessera's own log
#     line, HEAD included), with parallel ranged GETs (the default) and as one stream, next to
#     `curl` GETting it from the same S3 server into a file on the same disk.
#  3. warm tiles: wrk over 48 distinct tiles of a warm image, through Tessera (FastCGI to iipsrv;
#     and HTTP via nginx) next to nginx → iipsrv with the file local.
#
#   bench/tiles.sh                    # defaults below
#   ROUNDS=5 FLOOD=200 COPY_MB=256 DURATION=10s bench/tiles.sh
#   SECTIONS="copy" bench/tiles.sh    # only some of: flood copy warm
#
# One iipsrv process serves every path, so its speed bounds them all; the ratios are the point.
# The S3 server is s3s-fs (crates/tessera-s3-fixture) on loopback, reading from the local disk.
# Objects are uploaded with PUT: s3s-fs then keeps their ETag, whereas for a file dropped into its
# directory it hashes the whole file on every HEAD and GET (ranged ones too), which real S3
# never does.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
FLOOD=${FLOOD:-200}
COPY_MB=${COPY_MB:-256}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-8}
IMAGE=${IMAGE:-4000x3000}
SECTIONS=" ${SECTIONS:-flood copy warm} "
section() { [[ "$SECTIONS" == *" $1 "* ]]; }

need wrk wrk
need nginx nginx-light
need curl curl
need opj_compress libopenjp2-tools
IIPSRV=/usr/lib/iipimage-server/iipsrv.fcgi
[ -x $IIPSRV ] || { echo "missing iipsrv: apt-get install -y iipimage-server" >&2; exit 1; }

cargo build --release -p tessera -p tessera-s3-fixture >&2
TESSERA=$PWD/target/release/tessera
S3FIX=$PWD/target/release/tessera-s3-fixture

S3P=$(port); IIP=$(port); NGX=$(port); TES=$(port); ADM=$(port)

# --- the image: a tiled RPCL JP2 made by opj_compress from a generated picture
W=${IMAGE%x*}; H=${IMAGE#*x}
python3 - "$W" "$H" "$WORK/src.ppm" <<'PY'
import sys
w, h, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
row = bytearray(w * 3)
with open(out, "wb") as f:
    f.write(b"P6\n%d %d\n255\n" % (w, h))
    for y in range(h):
        for x in range(w):
            row[3*x] = x * 255 // w; row[3*x+1] = y * 255 // h; row[3*x+2] = ((x // 7) ^ (y // 5)) & 255
        f.write(row)
PY
opj_compress -i "$WORK/src.ppm" -o "$WORK/local.jp2" -t 256,256 -p RPCL -n 6 >/dev/null
rm "$WORK/src.ppm"
SIZE=$(stat -c %s "$WORK/local.jp2")

# --- S3, iipsrv, nginx → iipsrv
"$S3FIX" "$S3P" > "$WORK/s3.log" & PIDS+=($!)
wait_port "$S3P"
BUCKET=$(head -1 "$WORK/s3.log")
start_iipsrv_behind_nginx "$IIP" "$NGX"

start_tessera() {  # $1: extra hot_cache settings
  rm -rf "$WORK/cache"
  cat > "$WORK/proxy.yaml" <<YAML
listen: [{ address: "127.0.0.1:$TES" }]
admin: { address: "127.0.0.1:$ADM" }
access_log: false
origins:
  masters: { s3: { bucket: images, endpoint: "http://127.0.0.1:$S3P", path_style: true } }
hot_cache: { dir: "$WORK/cache", capacity: 8GiB $1 }
clusters:
  iip: { endpoints: ["127.0.0.1:$IIP"], protocol: fastcgi, timeouts: { read: 60s } }
  iip_http: { endpoints: ["127.0.0.1:$NGX"], timeouts: { read: 60s } }
routes:
  - name: tiles
    match: { path: "/iiif/{image}/{iiif*}" }
    handler: { orchestrate: { origin: masters, key: "{image}", cluster: iip, upstream_path: "/fcgi-bin/iipsrv.fcgi?IIIF={local_path}/{iiif}" } }
  - name: tiles-http
    match: { path: "/iiif-http/{image}/{iiif*}" }
    handler: { orchestrate: { origin: masters, key: "{image}", cluster: iip_http, upstream_path: "/fcgi-bin/iipsrv.fcgi?IIIF={local_path}/{iiif}" } }
YAML
  "$TESSERA" run --config "$WORK/proxy.yaml" > "$WORK/tessera.log" 2>&1 & TPID=$!; PIDS+=($TPID)
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null && return; sleep 0.05; done
  echo "tessera did not start" >&2; cat "$WORK/tessera.log" >&2; exit 1
}
stop_tessera() { kill "$TPID"; wait "$TPID" 2>/dev/null || true; }

TILE="0,0,256,256/256,/0/default.jpg"
DIRECT="http://127.0.0.1:$NGX/fcgi-bin/iipsrv.fcgi?IIIF=$WORK/local.jp2"

# flood URL → "ok p50 p99" (milliseconds)
flood() {
  seq "$FLOOD" | xargs -P "$FLOOD" -I{} curl -s -o /dev/null -w "%{http_code} %{time_total}\n" "$1" > "$WORK/flood.out"
  awk '$1==200 {ok++} {print $2*1000}' "$WORK/flood.out" | sort -n > "$WORK/lat"
  local ok; ok=$(awk '$1==200' "$WORK/flood.out" | wc -l)
  local n; n=$(wc -l < "$WORK/lat")
  printf "%s %s %s\n" "$ok" "$(sed -n "$(( (n+1)/2 ))p" "$WORK/lat")" "$(sed -n "$(( (n*99+99)/100 ))p" "$WORK/lat")"
}
s3_gets() { sleep 0.2; grep -c "^GET /images/$1 " "$WORK/s3.log" || true; }
put() {  # key file
  curl -sf -o /dev/null -T "$2" --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://127.0.0.1:$S3P/images/$1"
}
raw_get() {  # key dest → seconds
  curl -s -o "$2" -w "%{time_total}\n" --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://127.0.0.1:$S3P/images/$1"
}

echo "image: $IMAGE tiled 256, RPCL, $SIZE bytes; flood of $FLOOD; $ROUNDS rounds" >&2
start_tessera ""

# ---------------------------------------------------------------- 1. cold flood
if section flood; then
echo "## Cold flood" ; echo
echo "| round | Tessera cold: 200s | S3 GETs | p50 ms | p99 ms | Tessera warm p50 / p99 ms | nginx → iipsrv (local file) p50 / p99 ms | raw S3 GET of the object ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for r in $(seq "$ROUNDS"); do
  put "cold-$r" "$WORK/local.jp2"
  read -r ok p50 p99 < <(flood "http://127.0.0.1:$TES/iiif/cold-$r/$TILE")
  gets=$(s3_gets "cold-$r")
  read -r _ wp50 wp99 < <(flood "http://127.0.0.1:$TES/iiif/cold-$r/$TILE")
  read -r _ dp50 dp99 < <(flood "$DIRECT/$TILE")
  raw=$(raw_get "cold-$r" /dev/null | awk '{printf "%.1f", $1*1000}')
  echo "| $r | $ok/$FLOOD | $gets | $p50 | $p99 | $wp50 / $wp99 | $dp50 / $dp99 | $raw |"
done
echo

fi

# ---------------------------------------------------------------- 2. copy throughput
if section copy; then
echo "## Copy of a $COPY_MB MB object into the hot cache"; echo
head -c "$((COPY_MB << 20))" /dev/urandom > "$WORK/big"
copied_ms() {  # key → elapsed_ms from the "copied" log line
  for _ in $(seq 600); do
    local ms; ms=$(grep "hot cache: copied" "$WORK/tessera.log" | grep "\"$1\"" | sed -E 's/.*"elapsed_ms":([0-9]+).*/\1/' | tail -1)
    [ -n "$ms" ] && { echo "$ms"; return; }
    sleep 0.1
  done
  echo "no copy line for $1" >&2; exit 1
}
: > "$WORK/copy.parallel"; : > "$WORK/copy.single"; : > "$WORK/copy.curlfile"; : > "$WORK/copy.curlnull"
for mode in parallel single; do
  stop_tessera
  if [ $mode = single ]; then start_tessera ", parallel_copy: { parts: 1 }"; else start_tessera ""; fi
  for r in $(seq "$ROUNDS"); do
    put "big-$mode-$r" "$WORK/big"
    curl -s -o /dev/null "http://127.0.0.1:$TES/iiif/big-$mode-$r/info.json"
    copied_ms "big-$mode-$r" >> "$WORK/copy.$mode"
    raw_get "big-$mode-$r" "$WORK/curl.out" | awk '{printf "%d\n", $1*1000}' >> "$WORK/copy.curlfile"
    raw_get "big-$mode-$r" /dev/null | awk '{printf "%d\n", $1*1000}' >> "$WORK/copy.curlnull"
    rm -f "$WORK/curl.out" "$BUCKET/big-$mode-$r"
  done
done
mbps() { awk -v mb="$COPY_MB" '{ printf "%.0f", mb / ($1 / 1000) }'; }
P=$(median < "$WORK/copy.parallel"); S=$(median < "$WORK/copy.single")
CF=$(median < "$WORK/copy.curlfile"); CN=$(median < "$WORK/copy.curlnull")
echo "| copy | median ms | MB/s | vs curl to a file |"
echo "|---|---:|---:|---:|"
echo "| Tessera, parallel ranged GETs (16 MiB × 4) | $P | $(echo "$P" | mbps) | $(awk -v a="$CF" -v b="$P" 'BEGIN{printf "%.2f×", a/b}') |"
echo "| Tessera, one stream | $S | $(echo "$S" | mbps) | $(awk -v a="$CF" -v b="$S" 'BEGIN{printf "%.2f×", a/b}') |"
echo "| curl GET → file on the same disk | $CF | $(echo "$CF" | mbps) | 1.00× |"
echo "| curl GET → /dev/null | $CN | $(echo "$CN" | mbps) | |"
echo
echo "all rounds (ms): parallel $(tr '\n' ' ' < "$WORK/copy.parallel")| single $(tr '\n' ' ' < "$WORK/copy.single")| curl→file $(tr '\n' ' ' < "$WORK/copy.curlfile")| curl→null $(tr '\n' ' ' < "$WORK/copy.curlnull")"
echo

fi

# ---------------------------------------------------------------- 3. warm tiles
if section warm; then
echo "## Warm tiles (wrk, $CONNECTIONS connections, $DURATION, 48 distinct tiles)"; echo
tiles_lua 256
put warm "$WORK/local.jp2"
curl -s -o /dev/null "http://127.0.0.1:$TES/iiif/warm/info.json"
: > "$WORK/w.direct"; : > "$WORK/w.fcgi"; : > "$WORK/w.http"
for r in $(seq "$ROUNDS"); do
  rps "http://127.0.0.1:$NGX" "/fcgi-bin/iipsrv.fcgi?IIIF=$WORK/local.jp2/" >> "$WORK/w.direct"
  rps "http://127.0.0.1:$TES" "/iiif/warm/" >> "$WORK/w.fcgi"
  rps "http://127.0.0.1:$TES" "/iiif-http/warm/" >> "$WORK/w.http"
done
D=$(median < "$WORK/w.direct"); F=$(median < "$WORK/w.fcgi"); HT=$(median < "$WORK/w.http")
echo "| path | median req/s | vs nginx → iipsrv | all rounds |"
echo "|---|---:|---:|---|"
echo "| nginx → iipsrv, file local | $D | 1.00× | $(tr '\n' ' ' < "$WORK/w.direct")|"
echo "| Tessera → iipsrv (FastCGI) | $F | $(awk -v a="$F" -v b="$D" 'BEGIN{printf "%.2f×", a/b}') | $(tr '\n' ' ' < "$WORK/w.fcgi")|"
echo "| Tessera → nginx → iipsrv (HTTP) | $HT | $(awk -v a="$HT" -v b="$D" 'BEGIN{printf "%.2f×", a/b}') | $(tr '\n' ' ' < "$WORK/w.http")|"
fi
