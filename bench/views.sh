#!/usr/bin/env bash
# Small /full/ views and in-process rendering, measured against their references in one run:
#
#  1. byte_range: bytes read from S3 for full/!200,200 and full/!1024,1024 of a large single-tile
#     RPCL JP2 (tile-parts by resolution, TLM), as a share of the file, and the latency of the
#     request next to the same request through orchestrate + iipsrv (which must first copy the
#     whole file; cold = first request for the image, warm = file already in the hot cache).
#  2. render: tile throughput (wrk, 48 distinct 512-px tiles of a tiled JP2) next to iipsrv
#     (nginx → iipsrv, file local) on the same file.
#
#   bench/views.sh                      # defaults below
#   ROUNDS=5 IMAGE=10000x7500 DURATION=10s bench/views.sh
#   BASELINE=/path/to/older/tessera NO_RENDER=1 bench/views.sh   # byte_range of an older build too,
#                                                   # same config, same rounds
#   BIG_MASTER=/path/to/master.jp2 NO_RENDER=1 bench/views.sh     # byte_range of this file instead
#                                                   # of the made one (say, an HTJ2K master)
#   SKIP_PLANES=1 BASELINE=target/release/tessera NO_RENDER=1 bench/views.sh
#                                                   # byte_range with skip_last_bit_planes: 1,
#                                                   # beside the exact decode (the baseline runs
#                                                   # without it)
#   S3_LATENCY_MS=20 bench/views.sh                 # every S3 request held 20 ms, as a real
#                                                   # object store's first byte is
#   INTERLEAVE=1 BIG_MASTER=tiled.jp2 NO_RENDER=1 bench/views.sh
#                                                   # the master rewritten by `tessera interleave`
#                                                   # (a tiled one's small views: one range, not
#                                                   # one per tile), beside the file as given
#
# Each byte_range row also gives the decode time per request (tessera_decode_duration_seconds,
# the decode, resize and encode on the blocking pool: no fetch).
set -euo pipefail
[ -n "${BIG_MASTER:-}" ] && BIG_MASTER=$(realpath "$BIG_MASTER")
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
IMAGE=${IMAGE:-10000x7500}
TILED=${TILED:-4000x3000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-8}

need wrk wrk; need nginx nginx-light; need curl curl; need opj_compress libopenjp2-tools
IIPSRV=/usr/lib/iipimage-server/iipsrv.fcgi
[ -x $IIPSRV ] || { echo "missing iipsrv: apt-get install -y iipimage-server" >&2; exit 1; }

cargo build --release -p tessera -p tessera-s3-fixture >&2
TESSERA=$PWD/target/release/tessera

S3P=$(port); IIP=$(port); NGX=$(port); TES=$(port); ADM=$(port)

make_jp2() {  # WxH out.jp2 opj_compress-args...
  local size=$1 out=$2; shift 2
  local w=${size%x*} h=${size#*x}
  # The sample picture at a quarter of the size, enlarged 4× (generating 75 MP pixel by pixel
  # in Python would take minutes).
  python3 scripts/make-sample-image.py $((w / 4)) $((h / 4)) "$WORK/small.ppm"
  python3 - "$WORK/small.ppm" "$WORK/src.ppm" 4 <<'PY'
import sys
src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
rest = data.split(b"\n", 3)
w, h = map(int, rest[1].split())
px = rest[3]
with open(dst, "wb") as f:
    f.write(b"P6\n%d %d\n255\n" % (w * k, h * k))
    for y in range(h):
        row = px[y * w * 3:(y + 1) * w * 3]
        big = b"".join(row[3 * x:3 * x + 3] * k for x in range(w))
        for _ in range(k):
            f.write(big)
PY
  opj_compress -i "$WORK/src.ppm" -o "$out" "$@" >/dev/null
  rm "$WORK/src.ppm" "$WORK/small.ppm"
}
if [ -n "${BIG_MASTER:-}" ]; then
  cp "$BIG_MASTER" "$WORK/big.jp2"
  IMAGE="$(basename "$BIG_MASTER")"
  LAYOUT="as given"
else
  echo "making a $IMAGE single-tile RPCL JP2 (takes a while)" >&2
  make_jp2 "$IMAGE" "$WORK/big.jp2" -p RPCL -TP R -TLM -n 7 -r 10
  LAYOUT="single tile, RPCL, -TP R -TLM"
fi
if [ -z "${NO_RENDER:-}" ]; then
  echo "making a $TILED tiled JP2" >&2
  make_jp2 "$TILED" "$WORK/tiled.jp2" -p RPCL -TP R -TLM -t 512,512 -n 6 -r 10
fi
if [ -n "${INTERLEAVE:-}" ]; then
  cp "$WORK/big.jp2" "$WORK/as-given.jp2"
  "$TESSERA" interleave "$WORK/big.jp2" "$WORK/big.jp2" >&2
  LAYOUT="$LAYOUT, interleaved by resolution (tessera interleave)"
fi
BIG=$(stat -c %s "$WORK/big.jp2")

start_s3_fixture "$S3P" "${S3_LATENCY_MS:-0}"
put() { s3_put "$S3P" "$1" "$2"; }
start_iipsrv_behind_nginx "$IIP" "$NGX"

cat > "$WORK/proxy.yaml" <<YAML
listen: [{ address: "127.0.0.1:$TES" }]
admin: { address: "127.0.0.1:$ADM" }
access_log: false
origins:
  masters: { s3: { bucket: images, endpoint: "http://127.0.0.1:$S3P", path_style: true } }
hot_cache: { dir: "$WORK/cache", capacity: 8GiB }
clusters:
  iip: { endpoints: ["127.0.0.1:$IIP"], protocol: fastcgi, timeouts: { read: 120s } }
routes:
  - name: small
    match: { path: "/small/{image}/full/{size}/{rotation}/{quality}.{format}" }
    handler: { byte_range: { origin: masters, key: "{image}", version: 2, request: "full/{size}/{rotation}/{quality}.{format}", max_pixels: 2000000${SKIP_PLANES:+, skip_last_bit_planes: $SKIP_PLANES} } }
  - name: tiles
    match: { path: "/iip/{image}/{iiif*}" }
    handler: { orchestrate: { origin: masters, key: "{image}", cluster: iip, upstream_path: "/fcgi-bin/iipsrv.fcgi?IIIF={local_path}/{iiif}" } }
  - name: render
    match: { path: "/render/{image}/{iiif*}" }
    handler: { render: { origin: masters, key: "{image}", version: 2 } }
YAML
"$TESSERA" run --config "$WORK/proxy.yaml" > "$WORK/tessera.log" 2>&1 & PIDS+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null && break; sleep 0.05; done
if [ -n "${BASELINE:-}" ]; then
  BTES=$(port); BADM=$(port)
  sed -e "s/127.0.0.1:$TES/127.0.0.1:$BTES/" -e "s/127.0.0.1:$ADM/127.0.0.1:$BADM/" \
    -e "s#$WORK/cache#$WORK/cache-baseline#" -e "s/, skip_last_bit_planes: [0-9]*//" \
    "$WORK/proxy.yaml" > "$WORK/baseline.yaml"
  "$BASELINE" run --config "$WORK/baseline.yaml" > "$WORK/baseline.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$BADM/readyz" >/dev/null && break; sleep 0.05; done
fi
# Mean byte_range decode time (ms) so far, from the admin listener on port $1.
decode_ms() {
  curl -s "http://127.0.0.1:$1/metrics" | awk '
    /^tessera_decode_duration_seconds_sum\{handler="byte_range"\}/ { s = $2 }
    /^tessera_decode_duration_seconds_count\{handler="byte_range"\}/ { n = $2 }
    END { printf "%.1f", n ? 1000 * s / n : 0 }'
}
decode_sum() {  # seconds of byte_range decode so far, on admin port $1
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^tessera_decode_duration_seconds_sum\{handler="byte_range"\}/ { print $2 + 0 }'
}
decode_count() {
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^tessera_decode_duration_seconds_count\{handler="byte_range"\}/ { print $2 + 0 }'
}

ms() { curl -s -o /dev/null -w "%{http_code} %{time_total}\n" "$1" | awk '{ if ($1 != 200) { print "HTTP " $1 > "/dev/stderr"; exit 1 } printf "%.1f", $2 * 1000 }'; }
ranged_bytes() {  # key → bytes of ranged GETs so far
  sleep 0.2
  { grep "^GET /images/$1 bytes=" "$WORK/s3.log" || true; } | sed -E 's/.*bytes=([0-9]+)-([0-9]+)/\1 \2/' | awk '{ s += $2 - $1 + 1 } END { print s + 0 }'
}
ranged_gets() {  # key → ranged GETs so far
  sleep 0.2
  grep -c "^GET /images/$1 bytes=" "$WORK/s3.log" || true
}

echo "image: $IMAGE ($LAYOUT), $BIG bytes; $ROUNDS rounds; S3 latency ${S3_LATENCY_MS:-0} ms" >&2
echo "## byte_range: a $IMAGE JP2 ($BIG bytes)${S3_LATENCY_MS:+, S3 answering after $S3_LATENCY_MS ms}"; echo
echo "| request | bytes read (share of file), ranged GETs | byte_range, first request ms | byte_range, index in memory ms | decode ms | orchestrate + iipsrv cold ms | orchestrate + iipsrv warm ms | byte_range (index in memory) / cold |${BASELINE:+ baseline, index in memory ms | baseline decode ms |}${INTERLEAVE:+ master as given, index in memory ms | its ranged GETs |}"
echo "|---|---:|---:|---:|---:|---:|---:|---:|${BASELINE:+---:|---:|}${INTERLEAVE:+---:|---:|}"
for size in '!200,200' '!1024,1024'; do
  : > "$WORK/br"; : > "$WORK/br2"; : > "$WORK/cold"; : > "$WORK/warm"; : > "$WORK/bb"; : > "$WORK/given"; read_share=""; given_s=0; given_n=0
  d0=$(decode_ms "$ADM") n0=$(decode_count "$ADM")
  [ -n "${BASELINE:-}" ] && { bd0=$(decode_ms "$BADM"); bn0=$(decode_count "$BADM"); }
  for r in $(seq "$ROUNDS"); do
    key="big-${size//[!0-9]/}-$r"
    put "$key" "$WORK/big.jp2"
    before=$(ranged_bytes "$key")
    ms "http://127.0.0.1:$TES/small/$key/full/$size/0/default.jpg" >> "$WORK/br"; echo >> "$WORK/br"
    after=$(ranged_bytes "$key")
    gets0=$(ranged_gets "$key")
    ms "http://127.0.0.1:$TES/small/$key/full/$size/0/default.jpg" >> "$WORK/br2"; echo >> "$WORK/br2"
    gets=$(( $(ranged_gets "$key") - gets0 ))
    if [ -n "${INTERLEAVE:-}" ]; then
      put "$key-given" "$WORK/as-given.jp2"
      gs0=$(decode_sum "$ADM") gn0=$(decode_count "$ADM")
      ms "http://127.0.0.1:$TES/small/$key-given/full/$size/0/default.jpg" > /dev/null
      g0=$(ranged_gets "$key-given")
      ms "http://127.0.0.1:$TES/small/$key-given/full/$size/0/default.jpg" >> "$WORK/given"; echo >> "$WORK/given"
      given_gets=$(( $(ranged_gets "$key-given") - g0 ))
      # The master as given is decoded apart: its decodes leave this size's mean.
      given_s=$(awk -v a="$given_s" -v b="$gs0" -v c="$(decode_sum "$ADM")" 'BEGIN { print a + c - b }')
      given_n=$(( given_n + $(decode_count "$ADM") - gn0 ))
    fi
    if [ -n "${BASELINE:-}" ]; then
      ms "http://127.0.0.1:$BTES/small/$key/full/$size/0/default.jpg" > /dev/null
      ms "http://127.0.0.1:$BTES/small/$key/full/$size/0/default.jpg" >> "$WORK/bb"; echo >> "$WORK/bb"
    fi
    read_share="$((after - before)) ($(awk -v a=$((after - before)) -v b="$BIG" 'BEGIN{printf "%.2f %%", 100*a/b}')), $gets"
    ms "http://127.0.0.1:$TES/iip/$key/full/$size/0/default.jpg" >> "$WORK/cold"; echo >> "$WORK/cold"
    ms "http://127.0.0.1:$TES/iip/$key/full/$size/0/default.jpg" >> "$WORK/warm"; echo >> "$WORK/warm"
  done
  B=$(median < "$WORK/br"); B2=$(median < "$WORK/br2"); C=$(median < "$WORK/cold"); W=$(median < "$WORK/warm")
  # Mean decode time of this size's requests: the difference of the histogram's sum and count.
  span_ms() { awk -v s0="$1" -v n0="$2" -v s1="$3" -v n1="$4" -v gs="${5:-0}" -v gn="${6:-0}" 'BEGIN { printf "%.1f", (n1 - gn > n0) ? (s1 * n1 - s0 * n0 - 1000 * gs) / (n1 - n0 - gn) : 0 }'; }
  D=$(span_ms "$d0" "$n0" "$(decode_ms "$ADM")" "$(decode_count "$ADM")" "$given_s" "$given_n")
  extra=""
  if [ -n "${BASELINE:-}" ]; then
    extra=" $(median < "$WORK/bb") | $(span_ms "$bd0" "$bn0" "$(decode_ms "$BADM")" "$(decode_count "$BADM")") |"
  fi
  [ -n "${INTERLEAVE:-}" ] && extra="$extra $(median < "$WORK/given") | $given_gets |"
  echo "| full/$size | $read_share | $B | $B2 | $D | $C | $W | $(awk -v a="$B2" -v b="$C" 'BEGIN{printf "%.2f×", a/b}') |$extra"
  echo "all rounds (ms): byte_range $(tr '\n' ' ' < "$WORK/br")| again $(tr '\n' ' ' < "$WORK/br2")| cold $(tr '\n' ' ' < "$WORK/cold")| warm $(tr '\n' ' ' < "$WORK/warm")${BASELINE:+| baseline $(tr '\n' ' ' < "$WORK/bb")}${INTERLEAVE:+| as given $(tr '\n' ' ' < "$WORK/given")}" >&2
done
echo
echo "The first byte_range request for each image also reads its header (a HEAD and one 16 KiB read) to build the index; bytes read exclude it. The second is the same request again, with the index in memory."
if [ -n "${NO_RENDER:-}" ]; then exit 0; fi
echo

echo "## render: tiles of a $TILED tiled JP2 (wrk, $CONNECTIONS connections, $DURATION, 48 distinct 512-px tiles)"; echo
tiles_lua 512
put tiled "$WORK/tiled.jp2"
curl -s -o /dev/null "http://127.0.0.1:$TES/render/tiled/0,0,512,512/512,/0/default.jpg"
: > "$WORK/w.iip"; : > "$WORK/w.render"
for r in $(seq "$ROUNDS"); do
  rps "http://127.0.0.1:$NGX" "/fcgi-bin/iipsrv.fcgi?IIIF=$WORK/tiled.jp2/" >> "$WORK/w.iip"
  rps "http://127.0.0.1:$TES" "/render/tiled/" >> "$WORK/w.render"
done
I=$(median < "$WORK/w.iip"); R=$(median < "$WORK/w.render")
echo "| path | median req/s | vs iipsrv | all rounds |"
echo "|---|---:|---:|---|"
echo "| nginx → iipsrv (1 process), file local | $I | 1.00× | $(tr '\n' ' ' < "$WORK/w.iip")|"
echo "| Tessera render (2 threads) | $R | $(awk -v a="$R" -v b="$I" 'BEGIN{printf "%.2f×", a/b}') | $(tr '\n' ' ' < "$WORK/w.render")|"
