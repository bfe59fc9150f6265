#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: the proxy path's cost in a
# unit that does not move with the machine's other tenants (req/s and CPU time per request, in
# bench/proxy_overhead.sh, moved by 1.5× within one run on this 2-core machine). User space only:
# the kernel's socket work, the same for every proxy, is not counted.
#
#   bench/proxy_instructions.sh                    # Tessera (log off, log on), bare Pingora
#                                                  # (as it comes, and built with Tessera's
#                                                  # Pingora features), the latter with
#                                                  # Tessera's timeouts and headers
#   BASELINE=/path/to/older/tessera bench/proxy_instructions.sh   # an older build too
#   REQUESTS_FOR=20s bench/proxy_instructions.sh   # how long each proxy is loaded (default 20s)
#   PROFILES=/tmp/profiles bench/proxy_instructions.sh  # keep each proxy's callgrind profile
#                                                  # there (callgrind_annotate --inclusive=yes)
#   REQUEST_HEADERS=chromium bench/proxy_instructions.sh  # requests with a browser's headers
#                                                  # (bench/lib.sh), not wrk's Host alone
#   PARTS=1 bench/proxy_instructions.sh            # also Pingora built alike doing each of
#                                                  # the timeouts and the headers alone
#
# Each proxy runs alone under callgrind in front of the same upstream (nginx, 1 worker, a 1 KiB
# file), is warmed up (wrk, 5 s), its counters are zeroed, then loaded (wrk -t1 -c8) for
# REQUESTS_FOR; the counters are dumped and divided by the requests wrk completed. Under
# valgrind a proxy serves a few hundred requests a second, so each figure averages thousands.
# Prints a Markdown table (paste into docs/benchmarks.md).
set -euo pipefail
[ -z "${PROFILES:-}" ] || PROFILES=$(realpath -m "$PROFILES")  # before the cd below
cd "$(dirname "$0")/.."
source bench/lib.sh

REQUESTS_FOR=${REQUESTS_FOR:-20s}

need wrk wrk
need nginx nginx-light
need valgrind valgrind
need callgrind_control valgrind

cargo build --release -p tessera >&2
build_minimal_pingora
TESSERA=$PWD/target/release/tessera

UP=$(port)
mkdir -p "$WORK/www/bench"
head -c 1024 /dev/urandom > "$WORK/www/bench/tile"
static_upstream "$UP"
wait_port "$UP"

# Run "${@:2}" (a proxy listening on $PROXY_PORT) under callgrind as $1, load it, and print
# "requests instructions".
count() {
  local name=$1; shift
  local out="$WORK/$name.callgrind"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$PROXY_PORT/bench/tile" && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$PROXY_PORT/bench/tile" | cmp - "$WORK/www/bench/tile" || { echo "$name serves the wrong bytes" >&2; exit 1; }
  wrk "${WRK_HEADERS[@]}" -t1 -c8 -d5s "http://127.0.0.1:$PROXY_PORT/bench/tile" >/dev/null
  callgrind_control -z "$pid" >/dev/null
  local requests
  requests=$(wrk "${WRK_HEADERS[@]}" -t1 -c8 -d"$REQUESTS_FOR" "http://127.0.0.1:$PROXY_PORT/bench/tile" | awk '/ requests in / { print $1 }')
  callgrind_control -d "$pid" >/dev/null
  [ -z "${PROFILES:-}" ] || { mkdir -p "$PROFILES"; cp "$out.1" "$PROFILES/$name.callgrind"; }
  kill -KILL "$pid" 2>/dev/null || true  # the counts are dumped; no need for its exit
  wait "$pid" 2>/dev/null || true
  # The dump made on request is part 1 (the one at exit, part 2, holds only the shutdown).
  echo "$requests $(awk '/^summary:/ { print $2; exit }' "$out.1")"
}

row() {  # label "requests instructions" name
  [ -n "$2" ] || { echo "$1: nothing counted" >&2; exit 1; }
  read -r n ir <<<"$2"
  printf '| %s | %s | %.0f |\n' "$1" "$n" "$(awk -v i="$ir" -v n="$n" 'BEGIN { print i / n }')"
  declare -g "IR_$3=$(awk -v i="$ir" -v n="$n" 'BEGIN { print i / n }')"
}

echo "| proxy | requests counted | instructions per request |"
echo "|---|---:|---:|"
PROXY_PORT=$(port); row "minimal Pingora proxy" "$(count pingora "$MINIMAL" "127.0.0.1:$PROXY_PORT" "127.0.0.1:$UP" 2)" pingora
PROXY_PORT=$(port); row "minimal Pingora proxy built with Tessera's Pingora features" \
  "$(count pingora_feat "$MINIMAL_AS_TESSERA" "127.0.0.1:$PROXY_PORT" "127.0.0.1:$UP" 2)" pingora_feat
PROXY_PORT=$(port); row "the same, with Tessera's upstream timeouts and forwarded headers" \
  "$(count pingora_fwd "$MINIMAL_AS_TESSERA" "127.0.0.1:$PROXY_PORT" "127.0.0.1:$UP" 2 forwarding)" pingora_fwd
if [ -n "${PARTS:-}" ]; then
  for part in connect read write idle headers; do
    PROXY_PORT=$(port); row "the same, with only $part" \
      "$(count "pingora_$part" "$MINIMAL_AS_TESSERA" "127.0.0.1:$PROXY_PORT" "127.0.0.1:$UP" 2 "forwarding=$part")" "pingora_$part"
  done
fi
for build in tessera ${BASELINE:+baseline}; do
  bin=$TESSERA; label=tessera
  [ "$build" = baseline ] && { bin=$BASELINE; label="tessera, baseline build ($(basename "$BASELINE"))"; }
  for log in false true; do
    PROXY_PORT=$(port)
    proxy_route_config "$PROXY_PORT" "$(port)" 2 "$log" "$UP" > "$WORK/$build-$log.yaml"
    level=warn; suffix=""; [ "$log" = true ] && { level=info; suffix=", access log on"; }
    row "$label$suffix" "$(TESSERA_LOG=$level count "$build-$log" "$bin" run --config "$WORK/$build-$log.yaml")" "${build}_$log"
  done
done
echo
awk -v p="$IR_pingora" -v pf="$IR_pingora_feat" -v f="$IR_pingora_fwd" -v t="$IR_tessera_false" -v l="$IR_tessera_true" 'BEGIN {
  printf "Tessera / minimal Pingora: **%.2f×** the instructions (with the access log **%.2f×**); / Pingora built alike: **%.2f×**; / Pingora built alike with the timeouts and headers: **%.2f×**; the access log adds **%.1f %%**\n", t / p, l / p, t / pf, t / f, (l / t - 1) * 100 }'
if [ -n "${BASELINE:-}" ]; then
  awk -v t="$IR_tessera_false" -v l="$IR_tessera_true" -v b="$IR_baseline_false" -v bl="$IR_baseline_true" 'BEGIN {
    printf "Tessera / baseline build: **%.3f×** (log off), **%.3f×** (log on)\n", t / b, l / bl }'
fi
echo
echo "wrk -t1 -c8 for $REQUESTS_FOR per proxy, request headers: ${REQUEST_HEADERS:-wrk}, under callgrind (valgrind $(valgrind --version | sed 's/valgrind-//')), user-space instructions only; $(nproc) cores, tessera $("$TESSERA" --version | cut -d' ' -f2)"
