# The set-up every benchmark script shares; `source bench/lib.sh` from the repository root.
# It gives: need CMD PACKAGE (exit unless installed), a scratch directory $WORK (removed on exit,
# with every process whose pid is in PIDS), port (a free loopback port), wait_port PORT, median
# (of numbers on stdin), cpu_ticks (CPU time of processes so far), static_upstream and
# proxy_route_config (the proxy benchmarks' upstream and Tessera config),
# build_minimal_pingora (the bare Pingora references), sample_picture (the sample picture at
# any size, as PPM), tiles_lua and rps (wrk over 48 distinct tiles), start_iipsrv_behind_nginx
# (the image-server reference), the test S3 server's credentials ($AK, $SK, and the AWS_*
# variables Tessera reads), start_s3_fixture and s3_put (that server, and an upload to it), and
# WRK_HEADERS (wrk's -H arguments for REQUEST_HEADERS).

need() { command -v "$1" >/dev/null || { echo "missing $1: apt-get install -y $2" >&2; exit 1; }; }

WORK=$(mktemp -d)
chmod 755 "$WORK"   # nginx workers run as www-data
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
# Under `set -e` a failing step ends the script silently: say which.
trap 'echo "$0: line $LINENO: a command failed (exit $?)" >&2' ERR

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
# The request headers the proxy benchmarks send, as wrk's -H arguments in WRK_HEADERS:
# REQUEST_HEADERS=wrk (the default: wrk's own request, Host alone) or chromium (the twelve
# headers Chromium sent beside Host for an <img> tile, recorded once from a headless Chromium
# into bench/requests/chromium-image.headers: what a viewer's requests carry).
WRK_HEADERS=()
case ${REQUEST_HEADERS:-wrk} in
  wrk) ;;
  chromium) while IFS= read -r h; do WRK_HEADERS+=(-H "$h"); done < bench/requests/chromium-image.headers ;;
  *) echo "REQUEST_HEADERS: wrk or chromium, not ${REQUEST_HEADERS}" >&2; exit 2 ;;
esac

median() { sort -n | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }'; }

# The sample picture at WxH ($1 $2) in $3 (PPM): drawn at a quarter of the size and enlarged
# 4× with vips, since drawing tens of megapixels pixel by pixel in Python takes minutes.
sample_picture() {
  python3 scripts/make-sample-image.py $(($1 / 4)) $(($2 / 4)) "$WORK/small.ppm"
  vips resize "$WORK/small.ppm" "$WORK/big.v" 4 --kernel linear
  vips copy "$WORK/big.v" "$3"
  rm -f "$WORK/small.ppm" "$WORK/big.v"
}

# A tiled JPEG 2000 of the sample picture at WxH ($1 $2) in $3, as large masters are made:
# 1024² tiles, 7 resolution levels, RPCL.
tiled_jp2() { jp2_master "$@" -t 1024,1024; }
# The same in one tile, as many digitised masters are.
single_tile_jp2() { jp2_master "$@"; }
jp2_master() {
  local w=$1 h=$2 out=$3; shift 3
  sample_picture "$w" "$h" "$WORK/src.ppm"
  opj_compress -i "$WORK/src.ppm" -o "$out" "$@" -n 7 -r 10 -p RPCL >/dev/null
  rm "$WORK/src.ppm"
}
# The peak resident memory (VmHWM) of process $1, in MB.
peak_mb() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# A Tessera config in $WORK/proxy.yaml serving the folder $WORK/m through `render` at
# /render/{image}/{iiif*}, on ports $1 (traffic) and $2 (admin), access log off; $3 is more
# top-level YAML (e.g. an `image_index:`).
render_config() {
  cat > "$WORK/proxy.yaml" <<YAML
listen: [{ address: "127.0.0.1:$1" }]
admin: { address: "127.0.0.1:$2" }
access_log: false
origins: { folder: { dir: "$WORK/m" } }
${3:-}
routes:
  - name: render
    match: { path: "/render/{image}/{iiif*}" }
    handler: { render: { origin: folder, key: "{image}", decode_timeout: 120s } }
YAML
}

# The two masters of the viewer benchmark in folder $1: tiled.jp2 and single.jp2, VIEWER_SIZE
# (61 MP by default), made the same way every time (bench/viewer/*.urls were recorded on them).
VIEWER_SIZE=${VIEWER_SIZE:-9600x6400}
viewer_masters() {
  local w=${VIEWER_SIZE%x*} h=${VIEWER_SIZE#*x}
  echo "making $VIEWER_SIZE tiled and single-tile JP2s" >&2
  tiled_jp2 "$w" "$h" "$1/tiled.jp2"
  single_tile_jp2 "$w" "$h" "$1/single.jp2"
}
# A config serving the folder $WORK/m as a viewer would use it, on ports $1 and $2: the viewer
# page at /view/{image}, info.json and every IIIF request decoded in process (`render`) under
# /iiif/{image}/, no response cache.
viewer_config() {
  cat <<YAML
listen: [{ address: "127.0.0.1:$1" }]
admin: { address: "127.0.0.1:$2" }
origins: { folder: { dir: "$WORK/m" } }
routes:
  - name: view
    match: { path: "/view/{image}" }
    handler: { viewer: { show: image, iiif: /iiif } }
  - name: viewer-files
    match: { path: "/viewer/{file*}" }
    handler: { viewer: { show: assets } }
  - name: info
    match: { path: "/iiif/{image}/info.json" }
    handler: { info: { origin: folder, key: "{image}.jp2" } }
  - name: render
    match: { path: "/iiif/{image}/{iiif*}" }
    handler: { render: { origin: folder, key: "{image}.jp2", decode_timeout: 120s } }
YAML
}

AK=tessera-test; SK=tessera-test-secret
export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_EC2_METADATA_DISABLED=true

# The test S3 server (target/release/tessera-s3-fixture: build it first) on port $1, holding each
# request $2 ms (default 0); its bucket is `images`, its log of requests ("METHOD PATH RANGE")
# $WORK/s3.log. Waits until it listens.
start_s3_fixture() {
  target/release/tessera-s3-fixture "$1" "${2:-0}" > "$WORK/s3.log" & PIDS+=($!)
  wait_port "$1"
}
# Upload file $3 as key $2 to the test S3 server on port $1.
s3_put() {
  curl -sf -o /dev/null -T "$3" --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://127.0.0.1:$1/images/$2"
}

# A wrk script, $WORK/tiles.lua, cycling over the 48 tiles of an 8×6 grid of SIZE-pixel tiles
# (IIIF 2 `x,y,w,h/w,/0/default.jpg`) under the path prefix given to wrk after `--`.
tiles_lua() {
  local t=$1
  cat > "$WORK/tiles.lua" <<LUA
local paths = {}
function init(args)
  for y = 0, 5 do for x = 0, 7 do
    table.insert(paths, args[1] .. (x * $t) .. "," .. (y * $t) .. ",$t,$t/$t,/0/default.jpg")
  end end
end
local i = 0
function request() i = i + 1; return wrk.format("GET", paths[(i % #paths) + 1]) end
LUA
}
# A wrk script in $2 cycling over the request paths of file $1 (one a line) under the path
# prefix given to wrk after `--`.
paths_lua() {
  cat > "$2" <<LUA
local paths = {}
function init(args) for line in io.lines("$1") do table.insert(paths, args[1] .. line) end end
local i = 0
function request() i = i + 1; return wrk.format("GET", paths[(i % #paths) + 1]) end
LUA
}
# Requests per second of wrk (CONNECTIONS, DURATION) over tiles.lua against URL $1, prefix $2.
rps() { wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$WORK/tiles.lua" "$1" -- "$2" | awk '/Requests\/sec/ {print $2}'; }

# The image-server reference: one iipsrv process on port $1, with nginx (one worker) in front
# of it on port $2 speaking FastCGI at /fcgi-bin/iipsrv.fcgi; waits until both listen.
start_iipsrv_behind_nginx() {
  local iip=$1 ngx=$2
  LOGFILE=$WORK/iipsrv.log VERBOSITY=0 /usr/lib/iipimage-server/iipsrv.fcgi --bind 127.0.0.1:$iip --backlog 1024 >/dev/null 2>&1 & PIDS+=($!)
  nginx_fastcgi_front "$ngx" "server 127.0.0.1:$iip;"
  wait_port "$iip"; wait_port "$ngx"
}
# A pool of $2 iipsrv processes behind nginx on port $1 (round robin); their pids in IIP_PIDS.
start_iipsrv_pool() {
  local ngx=$1 servers="" p
  IIP_PIDS=()
  for _ in $(seq "$2"); do
    p=$(port)
    LOGFILE=$WORK/iipsrv.log VERBOSITY=0 /usr/lib/iipimage-server/iipsrv.fcgi --bind 127.0.0.1:$p --backlog 1024 >/dev/null 2>&1 & PIDS+=($!); IIP_PIDS+=($!)
    servers+="server 127.0.0.1:$p; "
    wait_port "$p"
  done
  nginx_fastcgi_front "$ngx" "$servers"
  wait_port "$ngx"
}
# The proxy benchmarks' upstream: nginx (one worker) on port $1 serving $WORK/www as static
# files, started (its pid in PIDS).
static_upstream() {
  mkdir -p "$WORK/tmp"
  cat > "$WORK/upstream.conf" <<CONF
worker_processes 1; pid $WORK/up.pid; error_log $WORK/error.log warn; daemon off;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp;
  fastcgi_temp_path $WORK/tmp; uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$1; root $WORK/www; location / { } } }
CONF
  nginx -p "$WORK" -c "$WORK/upstream.conf" & PIDS+=($!)
}
# Build bench/pingora-minimal twice: $MINIMAL, Pingora's proxy alone, and $MINIMAL_AS_TESSERA,
# the same built with the Pingora features Tessera's workspace enables (its own target directory,
# so that each build stays cached).
build_minimal_pingora() {
  CARGO_TARGET_DIR=target cargo build --release --manifest-path bench/pingora-minimal/Cargo.toml >&2
  CARGO_TARGET_DIR=target/pingora-as-tessera cargo build --release \
    --manifest-path bench/pingora-minimal/Cargo.toml --features as-tessera >&2
  MINIMAL=$PWD/target/release/pingora-minimal
  MINIMAL_AS_TESSERA=$PWD/target/pingora-as-tessera/release/pingora-minimal
}
# The proxy benchmarks' Tessera config: listen on port $1, admin on $2, $3 threads, access_log
# $4 (true/false), one route sending /bench/ to the upstream on port $5.
proxy_route_config() {
  cat <<CONF
listen: [{ address: "127.0.0.1:$1" }]
admin: { address: "127.0.0.1:$2" }
server: { threads: $3 }
access_log: $4
clusters:
  up: { endpoints: ["127.0.0.1:$5"] }
routes:
  - name: bench
    match: { path: "/bench/{rest*}" }
    handler: { proxy: { cluster: up } }
CONF
}
# CPU time (clock ticks, user + system) the processes $@ have used so far.
cpu_ticks() { local p t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
# nginx (one worker) on port $1 speaking FastCGI at /fcgi-bin/iipsrv.fcgi to the upstream
# servers $2 (`server host:port;` lines).
nginx_fastcgi_front() {
  local ngx=$1
  cat > "$WORK/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $WORK/nginx.pid; error_log $WORK/nginx.err warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $WORK/t; fastcgi_temp_path $WORK/t; proxy_temp_path $WORK/t; uwsgi_temp_path $WORK/t; scgi_temp_path $WORK/t;
  upstream iipsrv { $2 }
  server { listen 127.0.0.1:$ngx;
    location /fcgi-bin/iipsrv.fcgi { fastcgi_pass iipsrv;
      fastcgi_param QUERY_STRING \$query_string; fastcgi_param REQUEST_METHOD \$request_method;
      fastcgi_param REQUEST_URI \$request_uri; fastcgi_param SERVER_NAME \$server_name;
      fastcgi_param SERVER_PORT \$server_port; fastcgi_param HTTP_HOST \$http_host; } } }
CONF
  nginx -p "$WORK" -c "$WORK/nginx.conf" & PIDS+=($!)
}
