#!/usr/bin/env bash
# Memory per held client connection: N connections each send half a request header and wait,
# first all held at once, then churned (closed and replaced, as `max_connections` sheds them in
# a flood). Run for each `listen[].read_buffer` size, to show what Pingora's 64 KiB default
# costs; nginx (1 worker, its default client_header_buffer_size) alongside as the reference.
#
#   bench/connection_memory.sh            # N=4000
#   N=2000 bench/connection_memory.sh
#
# Prints a Markdown table: RSS idle, with N held, after N more churned through, and 15 s after
# all closed; KB per held connection is (held − idle) / N.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

N=${N:-4000}
need nginx nginx-light
need python3 python3
need bc bc

cargo build --release -p tessera >&2
TESSERA=target/release/tessera

# hold.py PORT N PID...: prints "held churned closed" RSS in KB summed over the PIDs.
cat > "$WORK/hold.py" <<'PY'
import socket, sys, time
port, n, pids = int(sys.argv[1]), int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
def rss():
    total = 0
    for pid in pids:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS"):
                total += int(line.split()[1])
    return total
def connect():
    s = socket.create_connection(("127.0.0.1", port))
    s.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-a: b\r\n")
    return s
held = [connect() for _ in range(n)]
time.sleep(3)
at_held = rss()
for i in range(n):            # churn: each connection is replaced by a new one
    held[i].close()
    held[i] = connect()
time.sleep(3)
at_churned = rss()
for s in held:
    s.close()
time.sleep(15)
print(at_held, at_churned, rss())
PY

rss_of() { local total=0; for p in "$@"; do total=$((total + $(awk '/^VmRSS/ {print $2}' /proc/$p/status))); done; echo $total; }

row() {  # label idle-KB "held churned closed"-KB
  local label=$1 idle=$2; read -r held churned closed <<<"$3"
  printf '| %s | %d | %d | %d | %d | %.1f |\n' "$label" $((idle / 1024)) $((held / 1024)) \
    $((churned / 1024)) $((closed / 1024)) "$(echo "($held - $idle) / $N" | bc -l)"
}

echo "| server | RSS idle MB | $N held MB | after $N churned MB | 15 s after closing MB | KB per held connection |"
echo "|---|---:|---:|---:|---:|---:|"
for buffer in 0 4KiB 64KiB; do
  tes=$(port); adm=$(port)
  cat > "$WORK/t.yaml" <<CONF
listen: [{ address: "127.0.0.1:$tes", read_buffer: $buffer }]
admin: { address: "127.0.0.1:$adm" }
access_log: false
limits: { max_connections: $((N + 100)) }
routes:
  - name: page
    match: { path: "/{rest*}" }
    handler: { respond: { body: "hello" } }
CONF
  TESSERA_LOG=error "$TESSERA" run --config "$WORK/t.yaml" >"$WORK/t.log" 2>&1 &
  pid=$!; PIDS+=($pid)
  wait_port "$tes"; sleep 1
  idle=$(rss_of $pid)
  row "tessera, read_buffer: $buffer" "$idle" "$(python3 "$WORK/hold.py" "$tes" "$N" $pid)"
  kill $pid; wait $pid 2>/dev/null || true
done

ngx=$(port)
mkdir -p "$WORK/ngx"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/ngx/nginx.pid; error_log $WORK/ngx/error.log crit;
events { worker_connections $((N + 100)); }
http { access_log off; client_header_timeout 60s;
  server { listen 127.0.0.1:$ngx; location / { return 200 "hello"; } } }
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK/ngx" &
PIDS+=($!)
wait_port "$ngx"; sleep 1
ngx_pids="$(cat "$WORK/ngx/nginx.pid") $(pgrep -P "$(cat "$WORK/ngx/nginx.pid")" | tr '\n' ' ')"
idle=$(rss_of $ngx_pids)
row "nginx (1 worker, master included)" "$idle" "$(python3 "$WORK/hold.py" "$ngx" "$N" $ngx_pids)"

echo
echo "N=$N connections from one python3 process, each sent \"GET / HTTP/1.1\\r\\nHost: x\\r\\nX-a: b\\r\\n\" and nothing more; $(nproc) cores"
