#!/usr/bin/env bash
# What each kind of master costs `render`, beside iipsrv (nginx → iipsrv, file local) on the same
# files in one run: a 4000×3000 picture as a tiled JPEG 2000, the same as a tiled HTJ2K
# codestream (OpenJPH's `ojph_compress`, step size chosen for about the same bytes), a pyramidal
# tiled TIFF (JPEG tiles), a one-page tiled TIFF (deflate), a JPEG and a PNG, all in one folder.
#
#   bench/masters.sh                     # prints Markdown tables
#   ROUNDS=5 DURATION=10s bench/masters.sh
#   MASTERS="pyramid.tif tiled.tif" bench/masters.sh      # some of them
#   BASELINE=/path/to/an/older/tessera MASTERS=tiled.jp2 bench/masters.sh   # that build too
#   MASTERS="by-resolution.jp2 interleaved.jp2" bench/masters.sh
#                                        # tiled.jp2 with a tile-part per resolution and TLM,
#                                        # and that file after `tessera interleave` (not in the
#                                        # default list)
#
# For each master: tiles per second (wrk, 48 distinct 256-px tiles at full resolution) and the
# median latency of a small view (full/!1024,1024, N requests one at a time). The response
# cache is off; the files are read in place (a BASELINE build copies each one into its hot
# cache before measuring).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-8}
VIEWS=${VIEWS:-9}
MASTERS=${MASTERS:-tiled.jp2 htj2k.j2k pyramid.tif tiled.tif photo.jpg drawing.png}
need wrk wrk; need nginx nginx-light; need curl curl; need opj_compress libopenjp2-tools
need ojph_compress openjph-tools
need vips libvips-tools
IIPSRV=/usr/lib/iipimage-server/iipsrv.fcgi
[ -x $IIPSRV ] || { echo "missing iipsrv: apt-get install -y iipimage-server" >&2; exit 1; }

cargo build --release -p tessera >&2
TESSERA=$PWD/target/release/tessera
IIP=$(port); NGX=$(port); TES=$(port); ADM=$(port)

echo "making the masters" >&2
mkdir -p "$WORK/m"
sample_picture 4000 3000 "$WORK/src.ppm"
vips copy "$WORK/src.ppm" "$WORK/src.png"
opj_compress -i "$WORK/src.ppm" -o "$WORK/m/tiled.jp2" -t 256,256 -n 5 -r 10 -p RPCL >/dev/null
case " $MASTERS " in *" by-resolution.jp2 "*|*" interleaved.jp2 "*)
  opj_compress -i "$WORK/src.ppm" -o "$WORK/m/by-resolution.jp2" -t 256,256 -n 5 -r 10 -p RPCL \
    -TP R -TLM >/dev/null
  "$TESSERA" interleave "$WORK/m/by-resolution.jp2" "$WORK/m/interleaved.jp2" >&2 ;;
esac
# HTJ2K: the same tiles, levels and order; OpenJPH has no rate control, and this step size gives
# about the bytes of tiled.jp2. It writes a bare codestream (.j2c).
ojph_compress -i "$WORK/src.ppm" -o "$WORK/htj2k.j2c" -num_decomps 4 -tile_size "{256,256}" \
  -prog_order RPCL -qstep 0.0013 >/dev/null
mv "$WORK/htj2k.j2c" "$WORK/m/htj2k.j2k"
vips tiffsave "$WORK/src.png" "$WORK/m/pyramid.tif" --tile --pyramid --compression jpeg --Q 90 --tile-width 256 --tile-height 256
vips tiffsave "$WORK/src.png" "$WORK/m/tiled.tif" --tile --compression deflate --tile-width 256 --tile-height 256
vips jpegsave "$WORK/src.png" "$WORK/m/photo.jpg" --Q 90
cp "$WORK/src.png" "$WORK/m/drawing.png"

start_iipsrv_behind_nginx "$IIP" "$NGX"

cat > "$WORK/proxy.yaml" <<YAML
listen: [{ address: "127.0.0.1:$TES" }]
admin: { address: "127.0.0.1:$ADM" }
access_log: false
origins: { folder: { dir: "$WORK/m" } }
hot_cache: { dir: "$WORK/cache", capacity: 4GiB }   # for a BASELINE build; this one reads the folder in place
routes:
  - name: render
    match: { path: "/render/{image}/{iiif*}" }
    handler: { render: { origin: folder, key: "{image}", version: 2 } }
YAML
"$TESSERA" run --config "$WORK/proxy.yaml" > "$WORK/tessera.log" 2>&1 & PIDS+=($!)
wait_port "$TES"
if [ -n "${BASELINE:-}" ]; then   # the same config on other ports, JPEG 2000 masters only
  BTES=$(port); BADM=$(port)
  sed -e "s/127.0.0.1:$TES/127.0.0.1:$BTES/" -e "s/127.0.0.1:$ADM/127.0.0.1:$BADM/" \
    -e "s#$WORK/cache#$WORK/cache-baseline#" "$WORK/proxy.yaml" > "$WORK/baseline.yaml"
  "$BASELINE" run --config "$WORK/baseline.yaml" > "$WORK/baseline.log" 2>&1 & PIDS+=($!)
  wait_port "$BTES"
fi

ms() { curl -s -o /dev/null -w "%{http_code} %{time_total}\n" "$1" | awk '{ if ($1 != 200) { print "HTTP " $1 > "/dev/stderr"; exit 1 } printf "%.1f\n", $2 * 1000 }'; }
tiles_lua 256

echo "| master | bytes | render tiles/s | iipsrv tiles/s | render full/!1024,1024 ms | iipsrv full/!1024,1024 ms |${BASELINE:+ baseline tiles/s | baseline full/!1024,1024 ms |}"
echo "|---|---:|---:|---:|---:|---:|${BASELINE:+---:|---:|}"
has_baseline() { case $1 in *.jp2|*.j2k) [ -n "${BASELINE:-}" ] ;; *) false ;; esac; }
# iipsrv reads JPEG 2000 files (.jp2) and TIFF; not bare codestreams, JPEG or PNG.
iipsrv_reads() { case $1 in *.jp2|*.tif) true ;; *) false ;; esac; }
for m in $MASTERS; do   # each server's local copy, and the round files
  ms "http://127.0.0.1:$TES/render/$m/full/!256,256/0/default.jpg" >/dev/null
  has_baseline "$m" && ms "http://127.0.0.1:$BTES/render/$m/full/!256,256/0/default.jpg" >/dev/null
  : > "$WORK/r.$m"; : > "$WORK/i.$m"; : > "$WORK/b.$m"
done
# Tiles per second: the masters take turns within each round (and the servers within each
# master), so that a host that slows down or speeds up during the run moves them all alike.
for _ in $(seq "$ROUNDS"); do
  for m in $MASTERS; do
    rps "http://127.0.0.1:$TES" "/render/$m/" >> "$WORK/r.$m"
    if has_baseline "$m"; then rps "http://127.0.0.1:$BTES" "/render/$m/" >> "$WORK/b.$m"; fi
    if iipsrv_reads "$m"; then rps "http://127.0.0.1:$NGX" "/fcgi-bin/iipsrv.fcgi?IIIF=$WORK/m/$m/" >> "$WORK/i.$m"; fi
  done
done
for m in $MASTERS; do
  size=$(stat -c %s "$WORK/m/$m")
  : > "$WORK/rv"; : > "$WORK/iv"; : > "$WORK/bv"
  for _ in $(seq "$VIEWS"); do
    ms "http://127.0.0.1:$TES/render/$m/full/!1024,1024/0/default.jpg" >> "$WORK/rv"
    if iipsrv_reads "$m"; then ms "http://127.0.0.1:$NGX/fcgi-bin/iipsrv.fcgi?IIIF=$WORK/m/$m/full/!1024,1024/0/default.jpg" >> "$WORK/iv"; fi
    if has_baseline "$m"; then ms "http://127.0.0.1:$BTES/render/$m/full/!1024,1024/0/default.jpg" >> "$WORK/bv"; fi
  done
  iip_rps=$( [ -s "$WORK/i.$m" ] && median < "$WORK/i.$m" || echo "—")
  iip_view=$( [ -s "$WORK/iv" ] && median < "$WORK/iv" || echo "—")
  base=""
  if [ -n "${BASELINE:-}" ]; then
    if has_baseline "$m"; then base=" $(median < "$WORK/b.$m") | $(median < "$WORK/bv") |"; else base=" — | — |"; fi
  fi
  echo "| $m | $size | $(median < "$WORK/r.$m") | $iip_rps | $(median < "$WORK/rv") | $iip_view |$base"
  echo "$m rounds: render $(tr '\n' ' ' < "$WORK/r.$m")| iipsrv $(tr '\n' ' ' < "$WORK/i.$m")| baseline $(tr '\n' ' ' < "$WORK/b.$m")" >&2
done
echo
echo "4000×3000 picture; wrk -t2 -c$CONNECTIONS -d$DURATION over 48 distinct 256-px tiles at full resolution (median of $ROUNDS rounds, the masters taking turns in each); views: median of $VIEWS requests; one tessera process ($(nproc) threads), one iipsrv process; $(nproc) cores; iipsrv does not read bare codestreams (.j2k), JPEG or PNG"
