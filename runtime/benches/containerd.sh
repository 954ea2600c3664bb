#!/usr/bin/env bash
# Through containerd: the hello app as an image (`mayfly oci build`), run by
# containerd-shim-mayfly-v1, against `mayfly serve` on the same app, in the
# same run.
#
# - start: from `ctr run` to the first 200, with the task's compile cache
#   in its own writable layer (cold: every task compiles), and with a
#   host directory mounted on /var/cache/mayfly (warm after the first);
# - throughput: wrk at 16 and 64 connections against a task and against
#   `mayfly serve`, two workers each, alternating ROUNDS times; the median
#   of each and the ratio.
#
# Needs root, containerd, ctr and wrk. Runs a containerd of its own (a
# private root, state and socket under a scratch directory), stopped by its
# pid on exit. Not run in CI.
#
# Environment:
#   REPEATS   cold starts of each kind  (default: 10)
#   ROUNDS    alternating wrk rounds    (default: 3)
#   DURATION  of each wrk run           (default: 10s)
set -euo pipefail

repeats=${REPEATS:-10}
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
[ "$(id -u)" -eq 0 ] || { echo "containerd needs root" >&2; exit 1; }
for tool in containerd ctr wrk; do
    command -v "$tool" >/dev/null || { echo "no $tool on PATH" >&2; exit 1; }
done

source "$(dirname "$0")/lib.sh"

echo "Building containerd-shim-mayfly-v1 (release)..." >&2
(cd "$repo" && cargo build --release -p containerd-shim-mayfly >&2)
mkdir -p "$work/bin" "$work/app" "$work/cache"
chmod 0700 "$work/cache"
ln -s "$target_dir/release/containerd-shim-mayfly-v1" "$work/bin/"
cp "$(guest hello)" "$work/app/hello.wasm"
cat >"$work/app/app.toml" <<'EOF'
name = "hello"

[component.hello]
source = "hello.wasm"

[[route]]
path = "/..."
component = "hello"
EOF
"$mayfly" oci build "$work/app/app.toml" -o "$work/app.tar" --name mayfly-bench/hello:1 >&2

cat >"$work/containerd.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/ctd.sock"
[ttrpc]
  address = "$work/ctd.sock.ttrpc"
[debug]
  address = "$work/debug.sock"
EOF
PATH="$work/bin:$PATH" containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
ctr() { command ctr --address "$work/ctd.sock" --namespace bench "$@"; }
stop_containerd() {
    for id in $(ctr task list --quiet 2>/dev/null); do
        ctr task kill --signal SIGKILL "$id" >/dev/null 2>&1 || true
        ctr task delete --force "$id" >/dev/null 2>&1 || true
    done
    kill "$containerd_pid" 2>/dev/null || true
    wait "$containerd_pid" 2>/dev/null || true
    cleanup
}
trap stop_containerd EXIT
for _ in $(seq 200); do ctr version >/dev/null 2>&1 && break; sleep 0.05; done
ctr image import "$work/app.tar" >&2
image=docker.io/mayfly-bench/hello:1

MAYFLY=$mayfly WORK=$work IMAGE=$image REPEATS=$repeats ROUNDS=$rounds DURATION=$duration python3 - <<'PYEOF'
import http.client, os, re, socket, statistics, subprocess, time

mayfly, work, image = os.environ["MAYFLY"], os.environ["WORK"], os.environ["IMAGE"]
repeats, rounds, duration = int(os.environ["REPEATS"]), int(os.environ["ROUNDS"]), os.environ["DURATION"]
ctr = ["ctr", "--address", f"{work}/ctd.sock", "--namespace", "bench"]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    return port

def answers(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/"); r = c.getresponse(); r.read(); c.close()
        return r.status == 200
    except OSError:
        return False

def until_200(port, limit=60):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if answers(port):
            return
        time.sleep(0.001)
    raise SystemExit(f"no 200 on port {port} within {limit}s")

def run_task(task, port, mounts=()):
    command = ctr + ["run", "-d", "--runtime", "io.containerd.mayfly.v1", "--net-host",
                     "--env", f"MAYFLY_LISTEN=127.0.0.1:{port}",
                     "--env", f"MAYFLY_HEALTH_LISTEN=127.0.0.1:{free_port()}",
                     "--env", "MAYFLY_WORKERS=2"]
    for mount in mounts:
        command += ["--mount", mount]
    subprocess.run(command + [image, task], check=True, stdout=subprocess.DEVNULL)

def stop_task(task):
    subprocess.run(ctr + ["task", "kill", task], check=True)
    for _ in range(2000):
        listed = subprocess.run(ctr + ["task", "list"], capture_output=True, text=True).stdout
        if not re.search(rf"^{task}\s+\d+\s+RUNNING", listed, re.M):
            break
        time.sleep(0.005)
    subprocess.run(ctr + ["task", "delete", task], stdout=subprocess.DEVNULL)
    subprocess.run(ctr + ["container", "delete", task], stdout=subprocess.DEVNULL)

def cold_start(task, mounts=()):
    port = free_port()
    start = time.monotonic()
    run_task(task, port, mounts)
    until_200(port)
    elapsed = (time.monotonic() - start) * 1000
    stop_task(task)
    return elapsed

cache = f"type=bind,src={work}/cache,dst=/var/cache/mayfly,options=rbind:rw"
cold, warm = [], []
cold_start("warm-up", [cache])  # fills the mounted cache
for i in range(repeats):
    cold.append(cold_start(f"cold-{i}"))
    warm.append(cold_start(f"warm-{i}", [cache]))
print(f"start, ctr run to first 200 (median of {repeats}):")
print(f"  task, compile cache in the task's own layer: {statistics.median(cold):7.1f} ms  (min {min(cold):.1f}, max {max(cold):.1f})")
print(f"  task, compile cache mounted from the host:   {statistics.median(warm):7.1f} ms  (min {min(warm):.1f}, max {max(warm):.1f})")

def wrk(port, connections):
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", duration,
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} failed responses on port {port}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

task_port, serve_port = free_port(), free_port()
run_task("throughput", task_port, [cache])
until_200(task_port)
serve = subprocess.Popen([mayfly, "serve", f"{work}/app/app.toml", "--listen", f"127.0.0.1:{serve_port}",
                          "--workers", "2", "--cache-dir", f"{work}/cache"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    until_200(serve_port)
    print(f"throughput, wrk {duration}, median of {rounds} alternating rounds:")
    for connections in (16, 64):
        shim, direct = [], []
        for _ in range(rounds):
            shim.append(wrk(task_port, connections))
            direct.append(wrk(serve_port, connections))
        s, d = statistics.median(shim), statistics.median(direct)
        print(f"  {connections:>2} connections: shim {s:9.0f} req/s, mayfly serve {d:9.0f} req/s, ratio {s / d:.2f}x")
finally:
    serve.terminate(); serve.wait()
    stop_task("throughput")
PYEOF
