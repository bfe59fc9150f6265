#!/usr/bin/env bash
# Thumbnails from pre-made derivatives in S3, and the response cache in front of them, measured
# against a raw GET of the same objects from the same S3 server in one run:
#
#  1. throughput and latency (wrk, CONNECTIONS connections, DURATION, cycling over IMAGES images):
#     - raw S3 GET of open/400.jpg (presigned URLs, so wrk needs no signing);
#     - Tessera `thumbs`, no cache: the exact size (full/400,: one S3 GET per request) and a size
#       in between (full/300,: a GET and a Lanczos3 resize);
#     - the same requests through a route with `cache:`, warm (every answer kept: cache hits).
#  2. cold: the first request for each of IMAGES images (s.json and the thumbnail read from S3,
#     the answer kept), then the same request again (a hit), with curl, next to a raw GET.
#
#   bench/thumbs.sh                               # defaults below
#   ROUNDS=5 DURATION=10s CONNECTIONS=8 bench/thumbs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-8}
IMAGES=${IMAGES:-48}

need wrk wrk; need curl curl
python3 -c 'import boto3, PIL' 2>/dev/null || { echo "missing boto3 or Pillow: pip install boto3 pillow" >&2; exit 1; }

cargo build --release -p tessera -p tessera-s3-fixture >&2
TESSERA=$PWD/target/release/tessera
S3FIX=$PWD/target/release/tessera-s3-fixture

S3P=$(port); TES=$(port); ADM=$(port)

"$S3FIX" "$S3P" > /dev/null & PIDS+=($!)
wait_port "$S3P"

# The DLCS layout for IMAGES images: s.json and four open sizes of a photograph-like picture
# (the sample picture with noise, JPEG q90), uploaded with PUT. Prints presigned GET paths of
# each image's open/400.jpg, for wrk.
echo "making and uploading the thumbnails of $IMAGES images" >&2
python3 scripts/make-sample-image.py 1000 750 "$WORK/src.ppm"
python3 - "$S3P" "$IMAGES" "$WORK/src.ppm" "$WORK/presigned.txt" <<'PY'
import io, random, sys
import boto3
from botocore.config import Config
from PIL import Image
port, images, src, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
picture = Image.open(src).convert("RGB")
rng = random.Random(1)
noise = Image.frombytes("RGB", picture.size, bytes(rng.randrange(256) for _ in range(3 * 1000 * 750)))
picture = Image.blend(picture, noise, 0.12)
sizes = [(1000, 750), (400, 300), (200, 150), (100, 75)]
files = {}
for w, h in sizes:
    buf = io.BytesIO()
    picture.resize((w, h), Image.LANCZOS).save(buf, "JPEG", quality=90)
    files[max(w, h)] = buf.getvalue()
listing = b'{"o": [[1000,750],[400,300],[200,150],[100,75]], "a": []}'
with open(out, "w") as f:
    for i in range(images):
        prefix = f"thumbs/1/1/img{i}"
        s3.put_object(Bucket="images", Key=f"{prefix}/s.json", Body=listing)
        for edge, body in files.items():
            s3.put_object(Bucket="images", Key=f"{prefix}/open/{edge}.jpg", Body=body)
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "images", "Key": f"{prefix}/open/400.jpg"}, ExpiresIn=7200)
        f.write(url.split(f"127.0.0.1:{port}", 1)[1] + "\n")
print(f"open/400.jpg is {len(files[400])} bytes", file=sys.stderr)
PY

cat > "$WORK/proxy.yaml" <<YAML
listen: [{ address: "127.0.0.1:$TES" }]
admin: { address: "127.0.0.1:$ADM" }
access_log: false
origins:
  masters: { s3: { bucket: images, endpoint: "http://127.0.0.1:$S3P", path_style: true } }
response_cache: { memory: 256MiB }
routes:
  - name: plain
    match: { path: "/plain/{customer}/{space}/{image}/{iiif*}" }
    handler: { thumbs: { origin: masters, key: "thumbs/{customer}/{space}/{image}" } }
  - name: cached
    match: { path: "/cached/{customer}/{space}/{image}/{iiif*}" }
    cache: {}
    handler: { thumbs: { origin: masters, key: "thumbs/{customer}/{space}/{image}" } }
YAML
"$TESSERA" run --config "$WORK/proxy.yaml" > "$WORK/tessera.log" 2>&1 & PIDS+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null && break; sleep 0.05; done

# wrk over a list of paths (one per line), cycling.
cat > "$WORK/paths.lua" <<'LUA'
local paths = {}
function init(args) for line in io.lines(args[1]) do table.insert(paths, line) end end
local i = 0
function request() i = i + 1; return wrk.format("GET", paths[(i % #paths) + 1]) end
LUA
paths() {  # route size → a file of paths
  local f="$WORK/paths-$1-${2//[!0-9]/}"
  for i in $(seq 0 $((IMAGES - 1))); do echo "/$1/1/1/img$i/full/$2/0/default.jpg"; done > "$f"
  echo "$f"
}
# → "req/s p50ms p99ms", failing on any non-2xx answer
load() {
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/paths.lua" "http://127.0.0.1:$1" -- "$2" > "$WORK/wrk.out"
  if grep -q "Non-2xx" "$WORK/wrk.out"; then cat "$WORK/wrk.out" >&2; exit 1; fi
  awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
       /Requests\/sec/ { r = $2 } / 50%/ { p50 = ms($2) } / 99%/ { p99 = ms($2) }
       END { printf "%d %.2f %.2f\n", r, p50, p99 }' "$WORK/wrk.out"
}
median_col() { awk -v c="$1" '{print $c}' | sort -n | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }'; }
warm() {  # prime every answer of a cached route, then check they are hits
  while read -r p; do curl -s -o /dev/null "http://127.0.0.1:$TES$p"; done < "$1"
  hit=$(curl -s -o /dev/null -D - "http://127.0.0.1:$TES$(head -1 "$1")" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-tessera-cache" {print $2}')
  [ "$hit" = hit ] || { echo "expected a cache hit, got '$hit'" >&2; exit 1; }
}

RAW=$WORK/presigned.txt

# Cold, before anything else touches the cached route: the first request for each image reads its
# s.json and the thumbnail from S3 (and keeps the answer); the same request again is a hit. The
# second size finds the listing already read: its miss is the thumbnail GET and the resize.
ms() { curl -s -o /dev/null -w "%{http_code} %{time_total}\n" "$1" | awk '{ if ($1 != 200) { print "HTTP " $1 > "/dev/stderr"; exit 1 } printf "%.2f\n", $2 * 1000 }'; }
for size in 400, 300,; do
  : > "$WORK/cold"; : > "$WORK/hit"; : > "$WORK/rawcurl"
  for i in $(seq 0 $((IMAGES - 1))); do
    ms "http://127.0.0.1:$TES/cached/1/1/img$i/full/$size/0/default.jpg" >> "$WORK/cold"
    ms "http://127.0.0.1:$TES/cached/1/1/img$i/full/$size/0/default.jpg" >> "$WORK/hit"
    ms "http://127.0.0.1:$S3P$(sed -n "$((i + 1))p" "$RAW")" >> "$WORK/rawcurl"
  done
  echo "cold full/$size: miss $(median < "$WORK/cold") ms, hit $(median < "$WORK/hit") ms, raw GET $(median < "$WORK/rawcurl") ms" >&2
  printf '%s %s %s %s\n' "$size" "$(median < "$WORK/cold")" "$(median < "$WORK/hit")" "$(median < "$WORK/rawcurl")" >> "$WORK/coldtable"
done
echo "## One request at a time (curl, median of $IMAGES images)"; echo
echo "| request | miss (answer made and kept) ms | hit ms | raw S3 GET of open/400.jpg ms |"
echo "|---|---:|---:|---:|"
while read -r size miss hit raw; do echo "| full/$size | $miss | $hit | $raw |"; done < "$WORK/coldtable"
echo
echo "full/400, is the first request for each image (s.json and the thumbnail read); full/300, comes second (the listing is in memory: the thumbnail read and a resize)."
echo

PLAIN400=$(paths plain 400,); PLAIN300=$(paths plain 300,)
CACHED400=$(paths cached 400,); CACHED300=$(paths cached 300,)
# Every listing read once, so the plain routes measure the thumbnail path, not s.json.
while read -r p; do curl -s -o /dev/null "http://127.0.0.1:$TES$p"; done < "$PLAIN400"
warm "$CACHED400"; warm "$CACHED300"

for name in raw plain400 plain300 cached400 cached300; do : > "$WORK/r.$name"; done
for r in $(seq "$ROUNDS"); do
  echo "round $r" >&2
  load "$S3P" "$RAW" >> "$WORK/r.raw"
  load "$TES" "$PLAIN400" >> "$WORK/r.plain400"
  load "$TES" "$PLAIN300" >> "$WORK/r.plain300"
  load "$TES" "$CACHED400" >> "$WORK/r.cached400"
  load "$TES" "$CACHED300" >> "$WORK/r.cached300"
done
RAW_RPS=$(median_col 1 < "$WORK/r.raw")
echo "## Thumbnails: wrk, $CONNECTIONS connections, $DURATION, $IMAGES images, median of $ROUNDS rounds"; echo
echo "| path | req/s | vs raw S3 GET | p50 ms | p99 ms | req/s of every round |"
echo "|---|---:|---:|---:|---:|---|"
row() {
  local f="$WORK/r.$2" rps
  rps=$(median_col 1 < "$f")
  echo "| $1 | $rps | $(awk -v a="$rps" -v b="$RAW_RPS" 'BEGIN{printf "%.2f×", a/b}') | $(median_col 2 < "$f") | $(median_col 3 < "$f") | $(awk '{printf "%s ", $1}' "$f")|"
}
row "raw S3 GET of open/400.jpg (presigned)" raw
row "thumbs, exact size (full/400,), no cache" plain400
row "thumbs, resized (full/300,), no cache" plain300
row "thumbs, exact size, response cache hit" cached400
row "thumbs, resized, response cache hit" cached300
echo

