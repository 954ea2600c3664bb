#!/usr/bin/env bash
# The developer loop, per template: how long from `mayfly new` to the first
# 200 of `mayfly dev`, and from a saved edit to the new answer under it.
#
# Tools are already installed: each template is first made and built once
# (the Rust crates in cargo's cache, componentize-py in pip's, ComponentizeJS
# in npm's), then timed on REPEATS fresh apps. An edit rewrites the
# handler's text; its floor, measured in the same run, is the template's
# own build command run by hand after the same edit (what any tool must
# wait for): the ratio says what `mayfly dev` adds (the watch's quiet poll,
# the load, the swap). plugin-rust has no 200: its time is `new` to built.
#
# Not run in CI.
#
# Environment:
#   REPEATS    fresh apps and edits per template (default: 3)
#   TEMPLATES  which (default: all)
set -euo pipefail

repeats=${REPEATS:-3}
templates=${TEMPLATES:-"http-rust http-rust-p3 http-python http-js plugin-rust"}

source "$(dirname "$0")/lib.sh"

MAYFLY=$mayfly WORK=$work REPEATS=$repeats TEMPLATES=$templates python3 - <<'PYEOF'
import http.client, os, socket, statistics, subprocess, time

mayfly, work = os.environ["MAYFLY"], os.environ["WORK"]
repeats = int(os.environ["REPEATS"])
templates = os.environ["TEMPLATES"].split()
# The file each template's handler is in, and the text an edit changes.
handler = {
    "http-rust": "src/lib.rs",
    "http-rust-p3": "src/lib.rs",
    "http-python": "app.py",
    "http-js": "app.js",
    "plugin-rust": "src/lib.rs",
}
marker = {"plugin-rust": "upper-casing"}

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def get(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/hi")
        r = c.getresponse()
        return r.status, r.read().decode()
    except OSError:
        return None, ""

def wait_until(port, accept, limit=900):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status, body = get(port)
        if status == 200 and accept(body):
            return
        time.sleep(0.02)
    raise SystemExit(f"no answer on {port} within {limit}s")

def run(*args, cwd=None):
    subprocess.run(args, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def edit(app, template, n):
    path = os.path.join(app, handler[template])
    text = open(path).read()
    old = marker.get(template, "You asked")
    new_mark = f"{old} (edit {n})" if template not in marker else f"{old} {n}"
    # Each edit replaces the previous one's text.
    import re
    text = re.sub(re.escape(old) + r"( \(edit \d+\)| \d+)?", new_mark, text, count=1)
    open(path, "w").write(text)
    return new_mark

def build_command(app):
    import tomllib
    manifest = tomllib.load(open(os.path.join(app, "app.toml"), "rb"))
    (component,) = manifest["component"].values()
    return component["build"]["command"]

def bare_build(app):
    path = os.pathsep.join([os.path.join(app, ".venv/bin"), os.path.join(app, "node_modules/.bin"), os.environ["PATH"]])
    start = time.monotonic()
    subprocess.run(["sh", "-c", build_command(app)], cwd=app, check=True,
                   env={**os.environ, "PATH": path}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start

def fmt(seconds):
    return f"{seconds:.1f} s"

rows = []
for template in templates:
    warm = os.path.join(work, f"{template}-warm")
    run(mayfly, "new", template, warm)
    run(mayfly, "build", os.path.join(warm, "app.toml"))
    firsts, edits, floors = [], [], []
    for i in range(repeats):
        app = os.path.join(work, f"{template}-{i}")
        start = time.monotonic()
        run(mayfly, "new", template, app)
        if template == "plugin-rust":
            run(mayfly, "build", os.path.join(app, "app.toml"))
            firsts.append(time.monotonic() - start)
            edit(app, template, i)
            floors.append(bare_build(app))
            continue
        port = free_port()
        log = open(os.path.join(work, f"{template}-{i}.log"), "w")
        server = subprocess.Popen([mayfly, "dev", os.path.join(app, "app.toml"),
                                   "--listen", f"127.0.0.1:{port}",
                                   "--cache-dir", os.path.join(work, "cache"),
                                   "--data-dir", os.path.join(work, "data")],
                                  stdout=log, stderr=log)
        try:
            wait_until(port, lambda body: True)
            firsts.append(time.monotonic() - start)
            if i == 0:
                for n in range(repeats):
                    mark = edit(app, template, n)
                    start = time.monotonic()
                    wait_until(port, lambda body: mark in body)
                    edits.append(time.monotonic() - start)
        finally:
            server.terminate()
            server.wait()
        if i == 0:
            for n in range(repeats):
                edit(app, template, repeats + n)
                floors.append(bare_build(app))
    first = statistics.median(firsts)
    if edits:
        e, f = statistics.median(edits), statistics.median(floors)
        rows.append((template, fmt(first), fmt(e), fmt(f), f"{e / f:.2f}x"))
    else:
        rows.append((template, fmt(first) + " (to built)", "-", fmt(statistics.median(floors)), "-"))

print(f"median of {repeats}; 2 cores")
print("| template | `mayfly new` to first 200 | saved edit to new answer (`mayfly dev`) | the build command alone, same edit | edit / build alone |")
print("| --- | --- | --- | --- | --- |")
for row in rows:
    print("| " + " | ".join(row) + " |")
PYEOF
