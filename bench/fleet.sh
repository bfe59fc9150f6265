#!/usr/bin/env bash
# Three Tessera nodes (127.0.0.2–4) behind a round-robin nginx front, one S3 server, a Zipf(0.9)
# trace of image views (each view's tiles spread over the nodes by the front), run twice in one
# go: (a) three independent nodes, (b) the same three as a fleet. For each: origin GETs and
# bytes, hot cache hit ratio, p50/p99 tile latency at the front. Then the hop's cost: the p50 of
# a warm tile (kept in the owner's response cache) asked of a node that forwards it, minus the
# same tile asked of its owner.
#
#   bench/fleet.sh
#   IMAGES=60 VIEWS=400 CONCURRENCY=8 bench/fleet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

IMAGES=${IMAGES:-40}
VIEWS=${VIEWS:-300}
CONCURRENCY=${CONCURRENCY:-8}
HOPS=${HOPS:-400}
need nginx nginx-light; need curl curl; need opj_compress libopenjp2-tools; need vips libvips-tools

cargo build --release -p tessera -p tessera-s3-fixture >&2
TESSERA=$PWD/target/release/tessera
S3FIX=$PWD/target/release/tessera-s3-fixture
S3P=$(port); FRONT=$(port); P=$(port); A=$(port)
NODES="127.0.0.2 127.0.0.3 127.0.0.4"

echo "making $IMAGES images (1024×768, 256-px tiles)" >&2
sample_picture 1024 768 "$WORK/src.ppm"
opj_compress -i "$WORK/src.ppm" -o "$WORK/img.jp2" -t 256,256 -n 3 -r 5 >/dev/null
"$S3FIX" "$S3P" > "$WORK/s3.log" & PIDS+=($!)
wait_port "$S3P"
for i in $(seq 0 $((IMAGES - 1))); do
  curl -sf -o /dev/null -T "$WORK/img.jp2" --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://127.0.0.1:$S3P/images/img-$i"
done
SIZE=$(stat -c %s "$WORK/img.jp2")
echo "a secret the nodes share, 32 bytes" > "$WORK/secret"

# The trace: VIEWS views of images drawn Zipf(0.9), each view its 12 full-resolution tiles.
python3 - "$IMAGES" "$VIEWS" > "$WORK/trace" <<'PY'
import random, sys
n, views = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(20261130)
weights = [1 / (k + 1) ** 0.9 for k in range(n)]
for _ in range(views):
    image = rng.choices(range(n), weights)[0]
    for y in range(3):
        for x in range(4):
            print(f"/iiif/img-{image}/{x * 256},{y * 256},256,256/256,/0/default.jpg")
PY

# nginx in front, round robin over the three nodes with kept-alive connections.
cat > "$WORK/front.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $WORK/front.pid; error_log $WORK/front.err warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $WORK/t; proxy_temp_path $WORK/t; fastcgi_temp_path $WORK/t; uwsgi_temp_path $WORK/t; scgi_temp_path $WORK/t;
  upstream nodes { $(for n in $NODES; do echo "server $n:$P;"; done) keepalive 64; }
  server { listen 127.0.0.1:$FRONT;
    location / { proxy_pass http://nodes; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF

# Start the three nodes, in the fleet or not ($1: fleet|independent).
start_nodes() {
  local mode=$1 n fleet route_fleet
  NODE_PIDS=()
  for n in $NODES; do
    fleet=""; route_fleet=""
    if [ "$mode" = fleet ]; then
      fleet="fleet: { node: \"$n:$P\", peers: { static: [$(for m in $NODES; do printf '"%s:%s",' "$m" "$P"; done)] }, secret_file: $WORK/secret, health: { interval: 1s } }"
      route_fleet="fleet: { key: \"{image}\" }"
    fi
    rm -rf "$WORK/cache-$n"
    cat > "$WORK/node-$n.yaml" <<YAML
listen: [{ address: "$n:$P" }]
admin: { address: "$n:$A" }
access_log: false
origins:
  masters: { s3: { bucket: images, endpoint: "http://127.0.0.1:$S3P", path_style: true } }
hot_cache: { dir: "$WORK/cache-$n", capacity: 4GiB }
response_cache: { memory: 256MiB }
$fleet
routes:
  - name: tiles
    match: { path: "/iiif/{image}/{iiif*}" }
    $route_fleet
    cache: {}
    handler: { render: { origin: masters, key: "{image}" } }
YAML
    "$TESSERA" run --config "$WORK/node-$n.yaml" > "$WORK/node-$n.log" 2>&1 & NODE_PIDS+=($!); PIDS+=($!)
  done
  for n in $NODES; do
    for _ in $(seq 200); do curl -sf "http://$n:$A/readyz" >/dev/null && break; sleep 0.05; done
  done
  sleep 2   # a health interval: every node sees the others up
}
stop_nodes() { for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }

sum_metric() {  # name [label filter] → sum over the three nodes
  local name=$1 filter=${2:-}
  for n in $NODES; do curl -s "http://$n:$A/metrics"; done |
    awk -v name="$name" -v f="$filter" '$1 ~ "^"name"({|$)" && index($1, f) { s += $2 } END { printf "%d", s }'
}

# Replay the trace against the front with CONCURRENCY clients: "p50_ms p99_ms failures".
replay() {
  python3 - "$FRONT" "$CONCURRENCY" "$WORK/trace" <<'PY'
import http.client, sys, threading, time
port, conc, trace = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3]).read().split()
lat, failed, lock, nxt = [], [0], threading.Lock(), [0]
def client():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while True:
        with lock:
            if nxt[0] >= len(trace): return
            path = trace[nxt[0]]; nxt[0] += 1
        t = time.perf_counter()
        c.request("GET", path); r = c.getresponse(); r.read()
        d = time.perf_counter() - t
        with lock:
            lat.append(d)
            if r.status != 200: failed[0] += 1
ts = [threading.Thread(target=client) for _ in range(conc)]
[t.start() for t in ts]; [t.join() for t in ts]
lat.sort()
print(f"{lat[len(lat)//2]*1000:.1f} {lat[int(len(lat)*0.99)]*1000:.1f} {failed[0]}")
PY
}

nginx -p "$WORK" -c "$WORK/front.conf" & PIDS+=($!)
wait_port "$FRONT"

echo "## A fleet of three beside three independent nodes ($IMAGES images of $SIZE bytes, $VIEWS views Zipf(0.9), $(wc -l < "$WORK/trace") tile requests, $CONCURRENCY clients)"; echo
echo "| nodes | origin GETs | origin MB | hot cache hit ratio | tile p50 ms | tile p99 ms | failed |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for mode in independent fleet; do
  start_nodes $mode
  read -r p50 p99 failed < <(replay)
  misses=$(sum_metric tessera_hot_cache_requests_total 'outcome="miss"')
  all=$(sum_metric tessera_hot_cache_requests_total)
  bytes=$(sum_metric tessera_hot_cache_copy_bytes_total)
  ratio=$(awk -v m="$misses" -v a="$all" 'BEGIN { printf "%.3f", a ? 1 - m / a : 0 }')
  echo "| $mode | $misses | $(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }') | $ratio | $p50 | $p99 | $failed |"
  echo "$mode: GETs $misses, bytes $bytes" >&2
  eval "BYTES_$mode=$bytes"
  if [ $mode = fleet ]; then
    echo "fleet requests: owner $(sum_metric tessera_fleet_requests_total 'outcome="owner"'), forwarded $(sum_metric tessera_fleet_requests_total 'outcome="forwarded"'), fallback $(sum_metric tessera_fleet_requests_total 'outcome="fallback"')" >&2
    # The hop: one warm tile, asked HOPS times of its owner and of a node that forwards it.
    tile=/iiif/img-0/0,0,256,256/256,/0/default.jpg
    owner=""
    for n in $NODES; do
      curl -s -o /dev/null "http://$n:$P$tile"
    done
    for n in $NODES; do
      before=$(curl -s "http://$n:$A/metrics" | awk '$1 ~ /^tessera_fleet_requests_total/ && /owner/ { print $2 }')
      curl -s -o /dev/null "http://$n:$P$tile"
      after=$(curl -s "http://$n:$A/metrics" | awk '$1 ~ /^tessera_fleet_requests_total/ && /owner/ { print $2 }')
      if [ "$before" != "$after" ]; then owner=$n; else other=$n; fi
    done
    hop() {  # node → p50 ms of HOPS requests on one kept-alive connection
      python3 - "$1" "$P" "$tile" "$HOPS" <<'PY'
import http.client, sys, time
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
lat = []
for _ in range(int(sys.argv[4])):
    t = time.perf_counter(); c.request("GET", sys.argv[3]); r = c.getresponse(); r.read()
    lat.append(time.perf_counter() - t)
lat.sort(); print(f"{lat[len(lat)//2]*1000:.3f}")
PY
    }
    local_ms=$(hop "$owner"); forwarded_ms=$(hop "$other")
  fi
  stop_nodes
done
echo
echo "Origin bytes, fleet / independent: $(awk -v f="$BYTES_fleet" -v i="$BYTES_independent" 'BEGIN { printf "%.2f", f / i }') (goal ≤ 0.40)."
echo "The hop: a warm tile (kept by its owner) p50 $local_ms ms asked of its owner ($owner), $forwarded_ms ms asked of $other, which forwards it: $(awk -v a="$forwarded_ms" -v b="$local_ms" 'BEGIN { printf "%.3f", a - b }') ms (goal ≤ 1 ms)."
