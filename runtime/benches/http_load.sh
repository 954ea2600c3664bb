#!/usr/bin/env bash
# HTTP load benchmark: the `hello` guest served by `mayfly serve` and by
# `wasmtime serve` (both with a fresh instance per request), and nginx
# returning the same text from its config (the cost of HTTP alone on this
# machine), each driven by wrk on loopback in turn, at several connection
# counts, repeated.
#
# Prints, per connection count, the median requests/s and p99 latency of
# each server, and mayfly's ratios to wasmtime and to nginx. Then the same for durable
# writes: `/count` (a `wasi:keyvalue/atomics` increment on the embedded
# store, acknowledged after its fsync) against hello, on one mayfly
# server. Not run in CI.
#
# Environment:
#   CONNECTIONS  connection counts          (default: "1 16 64")
#   REPEATS      runs per server and count  (default: 3)
#   DURATION     length of each wrk run     (default: 10s)
#   WORKERS      worker threads of each server (default: CPU count)
#   MAYFLY_BENCH_DIR  where this script installs its tools
#                     (default: ~/.cache/mayfly/bench)
set -euo pipefail

connections=${CONNECTIONS:-"1 16 64"}
repeats=${REPEATS:-3}
duration=${DURATION:-10s}
workers=${WORKERS:-$(nproc)}
tools=${MAYFLY_BENCH_DIR:-$HOME/.cache/mayfly/bench}
wasmtime_version=48.0.8
wasmtime=$tools/wasmtime-$wasmtime_version/bin/wasmtime

if ! command -v wrk >/dev/null; then
    echo "wrk is not installed (Debian: apt-get install wrk)" >&2
    exit 1
fi
nginx=$(command -v nginx || true)
if [ -z "$nginx" ] && [ -x /usr/sbin/nginx ]; then
    nginx=/usr/sbin/nginx
fi
if [ -z "$nginx" ]; then
    echo "Installing nginx-light (once)..." >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
    nginx=/usr/sbin/nginx
fi
if [ ! -x "$wasmtime" ]; then
    echo "Installing wasmtime-cli $wasmtime_version into $tools (once; this takes a while)..." >&2
    cargo install "wasmtime-cli@$wasmtime_version" --locked \
        --root "$tools/wasmtime-$wasmtime_version" \
        --target-dir "$tools/wasmtime-build"
fi

source "$(dirname "$0")/lib.sh"
hello=$(guest hello)
counter=$(guest counter)

# start_server NAME PORT: starts it in the background, waits until it answers.
start_server() {
    local name=$1 port=$2
    case $name in
        mayfly)
            "$mayfly" serve "$hello" --listen "127.0.0.1:$port" --workers "$workers" \
                --cache-dir "$work/cache" >"$work/$name.log" 2>&1 &
            ;;
        wasmtime)
            # WASIp2 components get a fresh instance per request by default
            # (--max-instance-reuse-count 1); it is passed explicitly anyway.
            # The pooling allocator is wasmtime serve's own default choice.
            TOKIO_WORKER_THREADS=$workers "$wasmtime" serve --addr "127.0.0.1:$port" \
                --max-instance-reuse-count 1 -Scli "$hello" >"$work/$name.log" 2>&1 &
            ;;
        nginx)
            # As the current user, on loopback, with a config of its own;
            # the same body as hello, from memory.
            mkdir -p "$work/nginx"
            cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
worker_processes $workers;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
$( [ "$(id -u)" -eq 0 ] && echo "user root;" )
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type text/plain;
            return 200 "Hello from Mayfly!\n";
        }
    }
}
EOF
            "$nginx" -p "$work/nginx" -c "$work/nginx/nginx.conf" >"$work/$name.log" 2>&1 &
            ;;
    esac
    server_pid=$!
    started "$name" "$port"
}

echo "# $(date -u +%F) $(nproc) CPUs, $workers server workers, wrk $duration x $repeats, RUST_BACKTRACE=${RUST_BACKTRACE:-unset}"
printf '%-6s %12s %12s %12s %8s %8s %11s %11s %11s\n' conns mayfly_rps wasmtime_rps nginx_rps \
    m/w m/nginx mayfly_p99 wasmtime_p99 nginx_p99
for conns in $connections; do
    declare -A rps=() p99=()
    for run in $(seq "$repeats"); do
        # Rotate which server goes first, so drift in the machine's load
        # does not favour one of them.
        case $((run % 3)) in
            1) order="mayfly wasmtime nginx" ;;
            2) order="wasmtime nginx mayfly" ;;
            0) order="nginx mayfly wasmtime" ;;
        esac
        for name in $order; do
            port=$(free_port)
            start_server "$name" "$port"
            # Warm-up: first-touch of pool slots, connection set-up.
            wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$port/" >/dev/null
            read -r r p < <(run_wrk "$port" "$conns")
            rps[$name]+="$r "
            p99[$name]+="$p "
            stop_server
        done
    done
    m_rps=$(median ${rps[mayfly]}); w_rps=$(median ${rps[wasmtime]}); n_rps=$(median ${rps[nginx]})
    m_p99=$(median ${p99[mayfly]}); w_p99=$(median ${p99[wasmtime]}); n_p99=$(median ${p99[nginx]})
    python3 -c "
import sys
c, mr, wr, nr, mp, wp, np = sys.argv[1], *map(float, sys.argv[2:])
print(f'{c:<6} {mr:12.0f} {wr:12.0f} {nr:12.0f} {mr/wr:7.2f}x {mr/nr:7.2f}x {mp:9.0f}us {wp:9.0f}us {np:9.0f}us')
" "$conns" "$m_rps" "$w_rps" "$n_rps" "$m_p99" "$w_p99" "$n_p99"
    unset rps p99
done

# Durable writes: hello and increments from the same mayfly server, in
# alternating runs.
cat >"$work/state.toml" <<EOF
[component.hello]
source = "$hello"
[component.counter]
source = "$counter"
key_value_stores = ["default"]
[[route]]
path = "/"
component = "hello"
[[route]]
path = "/count/..."
component = "counter"
EOF
port=$(free_port)
"$mayfly" serve "$work/state.toml" --listen "127.0.0.1:$port" --workers "$workers" \
    --cache-dir "$work/cache" --data-dir "$work/data" >"$work/state.log" 2>&1 &
server_pid=$!
answers "http://127.0.0.1:$port/count/peek" || { cat "$work/state.log" >&2; exit 1; }
echo
printf '%-6s %14s %14s %8s %12s %12s\n' conns hello_rps incr_rps ratio hello_p99 incr_p99
for conns in $connections; do
    declare -A rps=() p99=()
    for run in $(seq "$repeats"); do
        order="/ /count"
        [ $((run % 2)) -eq 0 ] && order="/count /"
        for path in $order; do
            wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$port$path" >/dev/null
            read -r r p < <(run_wrk "$port" "$conns" "$path")
            rps[$path]+="$r "
            p99[$path]+="$p "
        done
    done
    h_rps=$(median ${rps[/]}); i_rps=$(median ${rps[/count]})
    h_p99=$(median ${p99[/]}); i_p99=$(median ${p99[/count]})
    python3 -c "
import sys
c, hr, ir, hp, ip = sys.argv[1], *map(float, sys.argv[2:])
print(f'{c:<6} {hr:14.0f} {ir:14.0f} {ir/hr:7.2f}x {hp:10.0f}us {ip:10.0f}us')
" "$conns" "$h_rps" "$i_rps" "$h_p99" "$i_p99"
    unset rps p99
done
stop_server
