# Shared by the benchmark scripts (sourced, not run): builds mayfly in
# release mode, finds this checkout's guests, and gives a scratch
# directory, a free port and a wait for a server to answer.
#
# Sets: repo, mayfly, guests (the directory of the built guest
# components), work (removed on exit, after the server in $server_pid is
# stopped).

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

echo "Building mayfly (release)..." >&2
(cd "$repo" && cargo build --release --bin mayfly >&2)
target_dir=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
mayfly=$target_dir/release/mayfly
# runtime/guests/build.rs builds this checkout's guests in a directory named after it.
checkout=$(realpath "$repo/guests" | sed 's/[^A-Za-z0-9]/-/g')
guests=$target_dir/wasm-guests/$checkout/wasm32-wasip2/release

# guest NAME: the path of guest NAME's component; exits if it is missing.
guest() {
    local path=$guests/$1.wasm
    [ -f "$path" ] || { echo "missing $path" >&2; exit 1; }
    echo "$path"
}

work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# answers URL: waits up to 10 s for URL to answer 2xx; fails if it does not.
answers() {
    for _ in $(seq 200); do
        curl -sf "$1" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

# started NAME PORT: after a server NAME was started in the background
# (its pid in $server_pid, its log in $work/NAME.log), waits until it
# answers on PORT; shows its log and exits if it does not.
started() {
    answers "http://127.0.0.1:$2/" && return 0
    echo "$1 did not start; its log:" >&2
    cat "$work/$1.log" >&2
    exit 1
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# run_wrk PORT CONNECTIONS [PATH] (for $duration) -> "requests_per_second p99_microseconds"
run_wrk() {
    local port=$1 conns=$2 path=${3:-/} threads
    threads=$((conns < 2 ? conns : 2))
    wrk -t"$threads" -c"$conns" -d"$duration" --latency "http://127.0.0.1:$port$path" |
        python3 -c '
import re, sys
text = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
scale = {"us": 1, "ms": 1000, "s": 1000000}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", text)
if errors:
    sys.exit("wrk reported errors: " + errors.group(0))
print(rps, float(m.group(1)) * scale)
'
}

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
