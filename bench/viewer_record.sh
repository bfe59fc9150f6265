#!/usr/bin/env bash
# Records what OpenSeadragon asks for when a viewer opens a 61 MP image and zooms in twice, for
# bench/viewer.sh to replay: Tessera's own viewer page (OpenSeadragon 5.0.1, as built into the
# binary) in headless Chromium, 1200×900, over `render`; the requests are read from the access
# log. Each step is a page load — the first screen, then zoomed ×2 and ×4 at the centre — and
# keeps only the requests the steps before it had not made (a browser has those already).
#
#   bench/viewer_record.sh        # writes bench/viewer/tiled.urls and bench/viewer/single.urls
#
# The images are the ones bench/viewer.sh makes (the same sample picture, encoder and settings),
# so the recorded requests fit them.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
need chromium chromium; need opj_compress libopenjp2-tools; need vips libvips-tools; need curl curl

cargo build --release -p tessera >&2
mkdir -p "$WORK/m"
viewer_masters "$WORK/m"

tes=$(port); adm=$(port)
viewer_config "$tes" "$adm" > "$WORK/proxy.yaml"
target/release/tessera run --config "$WORK/proxy.yaml" > "$WORK/tessera.log" 2>&1 & PIDS+=($!)
wait_port "$tes"

for image in tiled single; do
  out=bench/viewer/$image.urls
  echo "# OpenSeadragon 5.0.1 in Chromium 1200×900 opening $image.jp2 ($VIEWER_SIZE), recorded by bench/viewer_record.sh" > "$out"
  for zoom in 1 2 4; do
    from=$(wc -l < "$WORK/tessera.log")
    chromium --headless --no-sandbox --disable-gpu --window-size=1200,900 \
      --virtual-time-budget=60000 --dump-dom "http://127.0.0.1:$tes/view/$image?zoom=$zoom" > /dev/null 2>&1
    echo "# step: zoom $zoom" >> "$out"
    tail -n +"$((from + 1))" "$WORK/tessera.log" \
      | python3 -c '
import json, sys
seen = {l.strip() for l in open(sys.argv[1]) if not l.startswith("#")}
for line in sys.stdin:
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("target") == "tessera::access" and e.get("path", "").startswith("/iiif/"):
        path = e["path"].split("/", 3)[3]   # after /iiif/{image}/
        if path not in seen:
            seen.add(path); print(path)
' "$out" >> "$out"
  done
  echo "$out: $(grep -vc '^#' "$out") requests" >&2
done
