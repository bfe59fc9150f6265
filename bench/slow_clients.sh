#!/usr/bin/env bash
# Slowloris: thousands of connections that send a header line every few seconds and never
# finish, while a normal client asks for a page. Run against Tessera with its default limits,
# with a per-client limit, and against a baseline build (BASELINE=path) that has neither.
#
#   bench/slow_clients.sh                              # prints a Markdown table
#   BASELINE=/path/to/old/tessera bench/slow_clients.sh
#   SLOW=20000 RATE=4000 ATTACK=30 bench/slow_clients.sh
#
# The attack (slowhttptest -H, split over processes of at most 10 000 connections so that none
# reaches its own descriptor limit) comes from 127.0.0.1; the normal client (curl, one request at
# a time) from 127.0.0.2, so a per-client limit tells them apart. For each target: the normal
# client's answers during the attack (how many were 200, and the slowest), Tessera's open file
# descriptors and RSS at their highest during the attack, and RSS once the attack is over.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

SLOW=${SLOW:-20000}
RATE=${RATE:-4000}
ATTACKERS=$(( (SLOW + 9999) / 10000 ))
ATTACK=${ATTACK:-30}
need slowhttptest slowhttptest
need curl curl

cargo build --release -p tessera >&2
TESSERA=target/release/tessera

run_one() {  # label binary extra-limits
  local label=$1 bin=$2 limits=$3 tes adm pid
  tes=$(port); adm=$(port)
  cat > "$WORK/$label.yaml" <<CONF
listen: [{ address: "127.0.0.1:$tes" }]
admin: { address: "127.0.0.1:$adm" }
access_log: false
$limits
routes:
  - name: page
    match: { path: "/{rest*}" }
    handler: { respond: { body: "hello" } }
CONF
  TESSERA_LOG=error "$bin" run --config "$WORK/$label.yaml" >"$WORK/$label.log" 2>&1 &
  pid=$!; PIDS+=($pid)
  wait_port "$tes"
  local idle_rss; idle_rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
  local attackers=()
  for _ in $(seq "$ATTACKERS"); do
    slowhttptest -H -c $((SLOW / ATTACKERS)) -r $((RATE / ATTACKERS)) -i 5 -l "$ATTACK" \
      -u "http://127.0.0.1:$tes/" >/dev/null 2>&1 &
    attackers+=($!)
  done
  local peak_fd=0 peak_rss=0 ok=0 total=0
  : > "$WORK/$label.times"
  local end=$((SECONDS + ATTACK))
  sleep 5
  while [ $SECONDS -lt $end ]; do
    local fds rss
    fds=$(ls /proc/$pid/fd 2>/dev/null | wc -l); [ "$fds" -gt "$peak_fd" ] && peak_fd=$fds
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status); [ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
    for _ in 1 2 3 4 5; do
      read -r code secs < <(curl -s -o /dev/null --interface 127.0.0.2 -m 5 -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$tes/" || echo "000 5")
      total=$((total + 1)); [ "$code" = 200 ] && ok=$((ok + 1))
      echo "$secs" >> "$WORK/$label.times"
    done
    sleep 0.5
  done
  wait "${attackers[@]}" 2>/dev/null || true
  sleep 25
  local after_rss; after_rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local p99 slowest
  p99=$(sort -g "$WORK/$label.times" | awk '{t[NR] = $1} END {i = int(NR * 0.99); if (i < 1) i = 1; print t[i] * 1000}')
  slowest=$(sort -g "$WORK/$label.times" | tail -1 | awk '{print $1 * 1000}')
  printf '| %s | %d/%d | %.0f | %.0f | %d | %d | %d | %d |\n' "$label" "$ok" "$total" \
    "$p99" "$slowest" "$peak_fd" "$((idle_rss / 1024))" "$((peak_rss / 1024))" "$((after_rss / 1024))"
}

echo "| target | normal client: 200s / requests | p99 ms | slowest ms | peak open fds | RSS idle MB | RSS peak MB | RSS after MB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
run_one "tessera, defaults" "$TESSERA" ""
run_one "tessera, max_connections_per_client: 1000" "$TESSERA" "limits: { max_connections_per_client: 1000 }"
if [ -n "${BASELINE:-}" ]; then
  run_one "baseline build (no limits)" "$BASELINE" ""
fi
echo
echo "$ATTACKERS × slowhttptest -H -c $((SLOW / ATTACKERS)) -r $((RATE / ATTACKERS)) -i 5 -l $ATTACK from 127.0.0.1; normal client curl from 127.0.0.2, 5 requests every ~0.5 s; fd limit $(ulimit -n); $(nproc) cores"
