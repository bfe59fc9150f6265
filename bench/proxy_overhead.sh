#!/usr/bin/env bash
# Proxy overhead: Tessera vs nginx, configured the same way, in front of the same small upstream,
# measured with wrk in one run. A minimal Pingora proxy (bench/pingora-minimal: no routing,
# filters, metrics, logs, timeouts or forwarded headers) runs alongside, to tell Tessera's own
# cost from Pingora's, and a second time built with Tessera's Pingora features and run with
# `forwarding` (Tessera's default upstream timeouts and X-Forwarded-For/-Proto, done by Pingora
# alone: Pingora doing the work Tessera does, in the build Tessera has).
# Prints Markdown tables (paste into docs/benchmarks.md): req/s, latency and each proxy's CPU
# time per request (its processes' user + system time over the requests it served), then the
# ratios, of the medians and round by round.
#
#   bench/proxy_overhead.sh                       # defaults below
#   DURATION=20s CONNECTIONS=100 ROUNDS=5 bench/proxy_overhead.sh
#   BASELINE=/path/to/older/tessera bench/proxy_overhead.sh   # also an older build, same configs
#                                                   # (access log off and on),
#                                                   # in the same rounds: before/after a change
#   ONLY="pingora tessera logged" bench/proxy_overhead.sh   # only these targets (shorter rounds)
#   REQUEST_HEADERS=chromium bench/proxy_overhead.sh  # requests with a browser's headers
#                                                   # (bench/lib.sh), not wrk's Host alone
#
# Set-up: one upstream (nginx, 1 worker) serving a BODY_BYTES file; each proxy with 2
# workers/threads and upstream keep-alive; nginx and Tessera add X-Forwarded-For; access logs
# off; wrk with 2 threads. Tessera runs twice: as above, and with its JSON access log on (its
# default), written to a file as a deployment's stdout would be, to give the log's cost.
# Everything shares the machine's cores, so absolute numbers are low; the ratio is the point.
# Rounds go through the targets in turn, in an order that changes from round to round.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-50}
ROUNDS=${ROUNDS:-3}
WRK_THREADS=${WRK_THREADS:-2}
PROXY_THREADS=${PROXY_THREADS:-2}
BODY_BYTES=${BODY_BYTES:-1024}

need wrk wrk
need nginx nginx-light
need curl curl

cargo build --release -p tessera >&2
build_minimal_pingora
TESSERA=target/release/tessera

[ -n "${KEEP:-}" ] && trap "for p in \"\${PIDS[@]}\"; do kill \$p 2>/dev/null || true; done; echo kept \$WORK >&2" EXIT

UP=$(port); NGX=$(port); TES=$(port); ADM=$(port); MIN=$(port); FWD=$(port); BAS=$(port); BADM=$(port)
LOG=$(port); LADM=$(port); BLOG=$(port); BLADM=$(port)

mkdir -p "$WORK/www/bench" "$WORK/tmp"
head -c "$BODY_BYTES" /dev/urandom > "$WORK/www/bench/tile"

cat > "$WORK/nginx.conf" <<CONF
worker_processes $PROXY_THREADS; pid $WORK/ngx.pid; error_log $WORK/error.log warn; daemon off;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp;
  fastcgi_temp_path $WORK/tmp; uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
  default_type application/octet-stream;
  upstream up { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$NGX;
    location /bench/ { proxy_pass http://up; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } } }
CONF

proxy_route_config "$TES" "$ADM" "$PROXY_THREADS" false "$UP" > "$WORK/proxy.yaml"
proxy_route_config "$LOG" "$LADM" "$PROXY_THREADS" true "$UP" > "$WORK/logged.yaml"

static_upstream "$UP"
nginx -p "$WORK" -c "$WORK/nginx.conf" & PIDS+=($!); PID_nginx=$!
TESSERA_LOG=warn "$TESSERA" run --config "$WORK/proxy.yaml" >"$WORK/tessera.log" 2>&1 & PIDS+=($!); PID_tessera=$!
"$MINIMAL" "127.0.0.1:$MIN" "127.0.0.1:$UP" "$PROXY_THREADS" >"$WORK/minimal.log" 2>&1 & PIDS+=($!); PID_pingora=$!
"$MINIMAL_AS_TESSERA" "127.0.0.1:$FWD" "127.0.0.1:$UP" "$PROXY_THREADS" forwarding >"$WORK/forwarding.log" 2>&1 & PIDS+=($!); PID_pingora_fwd=$!
TESSERA_LOG=info "$TESSERA" run --config "$WORK/logged.yaml" >"$WORK/access.log" 2>&1 & PIDS+=($!); PID_logged=$!
TARGETS=(${ONLY:-upstream nginx pingora pingora_fwd tessera logged})
for name in "${TARGETS[@]}"; do
  case $name in upstream|nginx|pingora|pingora_fwd|tessera|logged) ;;
    *) echo "ONLY: unknown target $name (upstream nginx pingora pingora_fwd tessera logged)" >&2; exit 2;; esac
done
if [ -n "${BASELINE:-}" ]; then
  proxy_route_config "$BAS" "$BADM" "$PROXY_THREADS" false "$UP" > "$WORK/baseline.yaml"
  TESSERA_LOG=warn "$BASELINE" run --config "$WORK/baseline.yaml" >"$WORK/baseline.log" 2>&1 & PIDS+=($!); PID_baseline=$!
  proxy_route_config "$BLOG" "$BLADM" "$PROXY_THREADS" true "$UP" > "$WORK/baseline-logged.yaml"
  TESSERA_LOG=info "$BASELINE" run --config "$WORK/baseline-logged.yaml" >"$WORK/baseline-access.log" 2>&1 & PIDS+=($!); PID_baseline_logged=$!
  TARGETS+=(baseline baseline_logged)
fi

PORTS="$UP $NGX $MIN $FWD $TES $LOG${BASELINE:+ $BAS $BLOG}"
for p in $PORTS; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/bench/tile" -o /dev/null && break; sleep 0.1; done
done
for p in $PORTS; do
  curl -sf "http://127.0.0.1:$p/bench/tile" | cmp - "$WORK/www/bench/tile" || { echo "port $p serves the wrong bytes" >&2; exit 1; }
done

# The proxy's own processes (nginx: its workers), whose CPU time per request is measured: steadier
# on a shared machine than req/s, and what "overhead" means.
proxy_pids() {
  case $1 in
    upstream) ;;
    nginx) pgrep -P "$PID_nginx" ;;
    *) local v="PID_$1"; echo "${!v}" ;;
  esac
}

# wrk's --latency output, and the proxy's CPU ticks around it -> "rps p50_ms p99_ms cpu_us_per_request"
measure() {
  local pids=($(proxy_pids "$2")) t0 t1 out
  t0=$(cpu_ticks "${pids[@]}")
  out=$(wrk "${WRK_HEADERS[@]}" -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$1/bench/tile")
  t1=$(cpu_ticks "${pids[@]}")
  awk -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v has_pids=${#pids[@]} '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
    / requests in / { n = $1 }
    /Non-2xx|Socket errors/ { print "errors: " $0 > "/dev/stderr" }
    END { cpu = (has_pids && n) ? sprintf("%.1f", ticks / hz * 1e6 / n) : "-";
          printf "%.0f %.3f %.3f %s\n", rps, p50, p99, cpu }' <<<"$out"
}

port_of() { case $1 in upstream) echo $UP;; nginx) echo $NGX;; pingora) echo $MIN;; pingora_fwd) echo $FWD;; tessera) echo $TES;; logged) echo $LOG;; baseline) echo $BAS;; baseline_logged) echo $BLOG;; esac; }
declare -A RESULTS=([upstream]= [nginx]= [pingora]= [pingora_fwd]= [tessera]= [logged]= [baseline]= [baseline_logged]=)
for name in "${TARGETS[@]}"; do RESULTS[$name]=""; measure "$(port_of $name)" "$name" >/dev/null; done  # warm-up
# Each round starts one target further on, and every other round goes through them backwards:
# no target always runs first, nor always after the same neighbour (after a logging target,
# say, with its access log's write-back still going).
for r in $(seq "$ROUNDS"); do
  n=${#TARGETS[@]}
  for i in "${!TARGETS[@]}"; do
    k=$(( r % 2 ? i : n - 1 - i ))
    name=${TARGETS[$(( (k + r - 1) % n ))]}
    p=$(port_of $name)
    line=$(measure "$p" "$name")
    echo "round $r $name: $line" >&2
    RESULTS[$name]+="$line"$'\n'
  done
done

median_row() { sort -n -k1 | awk '{ a[NR]=$0 } END { print a[int((NR+1)/2)] }'; }
echo "| target | req/s (median of $ROUNDS) | p50 ms | p99 ms | proxy CPU µs per request (median) |"
echo "|---|---:|---:|---:|---:|"
declare -A RPS
for name in "${TARGETS[@]}"; do
  read -r rps p50 p99 _ <<<"$(printf '%s' "${RESULTS[$name]}" | median_row)"
  cpu=$(printf '%s' "${RESULTS[$name]}" | awk '{ print $4 }' | median)
  case $name in
    upstream) label="upstream direct (no proxy)";;
    pingora) label="minimal Pingora proxy";;
    pingora_fwd) label="minimal Pingora proxy built with Tessera's Pingora features, with its upstream timeouts and forwarded headers";;
    logged) label="tessera, access log on";;
    baseline) label="tessera, baseline build ($(basename "$BASELINE"))";;
    baseline_logged) label="tessera, baseline build ($(basename "$BASELINE")), access log on";;
    *) label=$name;;
  esac
  echo "| $label | $rps | $p50 | $p99 | $cpu |"
  RPS[$name]=$rps
done

# $1 / $2 of the medians' req/s, or - when either was not measured.
ratio() {
  [ -n "${RPS[$1]:-}" ] && [ -n "${RPS[$2]:-}" ] || { echo -; return; }
  awk -v a="${RPS[$1]}" -v b="${RPS[$2]}" 'BEGIN { printf "%.2f", a / b }'
}
# The same ratio taken round by round (the two targets measured seconds apart), then the
# median: steadier than the ratio of medians when the machine's load drifts during the run.
paired() {
  [ -n "${RESULTS[$1]}" ] && [ -n "${RESULTS[$2]}" ] || { echo -; return; }
  paste -d' ' <(printf '%s' "${RESULTS[$1]}" | awk '{ print $1 }') <(printf '%s' "${RESULTS[$2]}" | awk '{ print $1 }') |
    awk '{ print $1 / $2 }' | median | awk '{ printf "%.2f", $1 }'
}
echo
echo "| ratio (req/s) | of the medians | round by round |"
echo "|---|---:|---:|"
for pair in "tessera nginx" "tessera pingora" "logged pingora" "logged tessera" "pingora_fwd pingora" \
  "tessera pingora_fwd" "logged pingora_fwd" ${BASELINE:+"tessera baseline" "logged baseline_logged" "baseline_logged baseline"}; do
  read -r a b <<<"$pair"
  [ -n "${RESULTS[$a]}" ] && [ -n "${RESULTS[$b]}" ] || continue
  echo "| $a / $b | $(ratio $a $b)× | $(paired $a $b)× |"
done
echo
echo "(tessera = log off; logged = tessera with its access log on; pingora_fwd = the minimal Pingora built with Tessera's Pingora features, with its upstream timeouts and forwarded headers. The log's cost is 1 − logged / tessera.)"
[ -n "${RESULTS[logged]}" ] && echo "access log: $(wc -l <"$WORK/access.log") lines, $(du -h "$WORK/access.log" | cut -f1)" >&2
echo
echo "body $BODY_BYTES bytes, proxy threads/workers $PROXY_THREADS, wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION, request headers: ${REQUEST_HEADERS:-wrk}, $ROUNDS rounds, $(nproc) cores, nginx $(nginx -v 2>&1 | sed 's/.*\///'), tessera $("$TESSERA" --version | cut -d' ' -f2)"
