#!/usr/bin/env bash
# Decompression bombs and malformed files: what a JP2 that declares a huge size, or is cut short,
# has flipped bits or lies about a tile-part's length costs Tessera, next to what a normal image
# costs. The bomb files are a 64×64 JP2 (a few KB) whose SIZ and ihdr boxes are patched to
# declare W×H (image and tile), as an attacker would; the malformed ones are made from a
# 1200×900 tiled JP2.
#
#   bench/bomb.sh                  # prints a Markdown table (paste into docs/reliability.md)
#
# For each file and request: the status, the time to answer (curl), and Tessera's peak RSS
# (VmHWM) after it, against its RSS when idle. Tessera runs `info` and `render` over a `dir`
# origin with the default limits (image_index.max_image_pixels 2e9, render max_decode_pixels
# 64e6).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

need curl curl
need opj_compress libopenjp2-tools

cargo build --release -p tessera >&2
TESSERA=target/release/tessera
TES=$(port); ADM=$(port)

mkdir -p "$WORK/images" "$WORK/cache"
python3 - "$WORK" <<'PY'
import struct, sys, subprocess, os
work = sys.argv[1]
w = h = 64
with open(f"{work}/small.ppm", "wb") as f:
    f.write(b"P6\n%d %d\n255\n" % (w, h))
    f.write(bytes((x * 4 + y) % 256 for y in range(h) for x in range(w) for _ in range(3)))
subprocess.run(["opj_compress", "-i", f"{work}/small.ppm", "-o", f"{work}/images/normal.jp2", "-n", "3"],
               check=True, stdout=subprocess.DEVNULL)
data = open(f"{work}/images/normal.jp2", "rb").read()
for name, size in [("bomb", 100_000), ("big", 40_000)]:
    b = bytearray(data)
    i = b.index(b"ihdr") + 4
    b[i:i + 8] = struct.pack(">II", size, size)
    s = b.index(b"\xff\x51")
    for off in (6, 10, 22, 26):
        b[s + off:s + off + 4] = struct.pack(">I", size)
    open(f"{work}/images/{name}.jp2", "wb").write(b)

import random
w, h = 1200, 900
with open(f"{work}/photo.ppm", "wb") as f:
    f.write(b"P6\n%d %d\n255\n" % (w, h))
    f.write(bytes(((x * 7) ^ (y * 3)) % 256 for y in range(h) for x in range(w) for _ in range(3)))
subprocess.run(["opj_compress", "-i", f"{work}/photo.ppm", "-o", f"{work}/images/photo.jp2",
                "-t", "256,256", "-n", "5"], check=True, stdout=subprocess.DEVNULL)
photo = open(f"{work}/images/photo.jp2", "rb").read()
open(f"{work}/images/truncated.jp2", "wb").write(photo[: len(photo) // 3])
rng = random.Random(7)
flipped = bytearray(photo)
for _ in range(200):
    i = rng.randrange(len(flipped))
    flipped[i] ^= 1 << rng.randrange(8)
open(f"{work}/images/flipped.jp2", "wb").write(flipped)
lying = bytearray(photo)
sot = lying.index(b"\xff\x90")
lying[sot + 6:sot + 10] = struct.pack(">I", 0xFFFFFFFF)
open(f"{work}/images/lying.jp2", "wb").write(lying)
PY

cat > "$WORK/proxy.yaml" <<CONF
listen: [{ address: "127.0.0.1:$TES" }]
admin: { address: "127.0.0.1:$ADM" }
access_log: false
origins:
  local: { dir: "$WORK/images" }
hot_cache: { dir: "$WORK/cache", capacity: 1GiB }
routes:
  - name: info
    match: { path: "/iiif/{image}/info.json" }
    handler: { info: { origin: local, key: "{image}.jp2" } }
  - name: render
    match: { path: "/iiif/{image}/{iiif*}" }
    handler: { render: { origin: local, key: "{image}.jp2" } }
CONF
TESSERA_LOG=warn "$TESSERA" run --config "$WORK/proxy.yaml" >"$WORK/tessera.log" 2>&1 & PIDS+=($!)
PID=$!
wait_port "$TES"
rss() { awk '/^VmHWM/ { print $2 }' "/proc/$PID/status"; }
curl -s -o /dev/null "http://127.0.0.1:$TES/iiif/normal/info.json"
IDLE=$(rss)

echo "| file (declares) | request | status | time ms | peak RSS above idle so far (VmHWM), MB |"
echo "|---|---|---:|---:|---:|"
for file in "normal 64×64" "big 40000×40000" "bomb 100000×100000" \
    "photo 1200×900" "truncated 1200×900,cut" "flipped 1200×900,flips" "lying 1200×900,Psot"; do
  set -- $file
  for req in info.json "0,0,32,32/32,/0/default.jpg" "256,256,256,256/256,/0/default.jpg" "full/max/0/default.jpg"; do
    out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "http://127.0.0.1:$TES/iiif/$1/$req")
    read -r code secs <<<"$out"
    peak=$(rss)
    printf '| %s (%s) | `%s` | %s | %.1f | %.1f |\n' "$1" "$2" "$req" "$code" \
      "$(echo "$secs * 1000" | bc -l)" "$(echo "($peak - $IDLE) / 1024" | bc -l)"
  done
done
echo
echo "idle RSS (VmHWM) $((IDLE / 1024)) MB; $(nproc) cores; tessera $("$TESSERA" --version | cut -d' ' -f2)"
