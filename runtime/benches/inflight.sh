#!/usr/bin/env bash
# In-flight benchmark: 10,000 connections at once on the `slow` guest,
# each request sleeping one second in its own instance, through
# `mayfly serve` with the instance and connection caps raised to fit.
#
# Prints the completed requests per second (10,000/s if every request
# were served the moment it arrived) and the server's RSS per request in
# flight (RSS under load, less RSS idle, over the connections). Not run
# in CI.
#
# wrk divides what completed by the whole run, and nothing completes in
# its first second (every request is still sleeping, and the connections
# are still being opened): a 10 s run cannot show more than about 0.9x of
# the steady rate. The default of 30 s leaves that ramp a thirtieth.
#
# Environment:
#   CONNECTIONS  requests in flight        (default: 10000)
#   DURATION     length of the wrk run     (default: 30s)
#   SLEEP_MS     what each request sleeps  (default: 1000)
set -euo pipefail

connections=${CONNECTIONS:-10000}
duration=${DURATION:-30s}
sleep_ms=${SLEEP_MS:-1000}

command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)" >&2; exit 1; }
# Both sides hold a descriptor per connection.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((connections + 1000)) ]; then
    echo "the open-file limit ($(ulimit -n)) is too low for $connections connections" >&2
    exit 1
fi

source "$(dirname "$0")/lib.sh"
slow=$(guest slow)

# One instance per connection; 2 MiB of linear memory is what the guest
# needs, so that many slots fit the address space.
cat >"$work/app.toml" <<EOF
[component.slow]
source = "$slow"
[component.slow.limits]
instances = $connections
queue = $connections
memory = "2MiB"
[[route]]
path = "/..."
component = "slow"
EOF
port=$(free_port)
"$mayfly" serve "$work/app.toml" --listen "127.0.0.1:$port" \
    --max-instances "$connections" --max-connections $((connections + 100)) \
    --cache-dir "$work/cache" --data-dir "$work/data" >"$work/serve.log" 2>&1 &
server_pid=$!
answers "http://127.0.0.1:$port/?ms=0" || { cat "$work/serve.log" >&2; exit 1; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }
idle=$(rss)

wrk -t2 -c"$connections" -d"$duration" --timeout 10s "http://127.0.0.1:$port/?ms=$sleep_ms" >"$work/wrk.log" 2>&1 &
wrk_pid=$!
# Sample RSS while the load runs; keep the largest.
peak=$idle
while kill -0 "$wrk_pid" 2>/dev/null; do
    now=$(rss)
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.5
done
wait "$wrk_pid"
completed=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.log")
errors=$(grep -E "Socket errors|Non-2xx" "$work/wrk.log" || true)

echo "# $(date -u +%F) $(nproc) CPUs, $connections connections, requests sleeping ${sleep_ms} ms, wrk $duration"
python3 -c "
import sys
conns, ms, rps, idle, peak = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ideal = conns * 1000 / ms
print(f'completed {rps:.0f} req/s, {rps / ideal:.2f}x of the {ideal:.0f}/s a fresh instance per request at once would give')
print(f'RSS idle {idle} KiB, at peak {peak} KiB: {(peak - idle) / conns:.1f} KiB per request in flight')
" "$connections" "$sleep_ms" "$completed" "$idle" "$peak"
[ -z "$errors" ] || echo "wrk: $errors"
