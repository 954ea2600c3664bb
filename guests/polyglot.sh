#!/usr/bin/env bash
# Builds the Python and JavaScript guests (guests/python, guests/js) into
# OUT_DIR, with their pinned toolchains: componentize-py from PyPI
# (python/requirements.txt, hash-pinned) in a virtual environment, and
# ComponentizeJS from npm (js/package-lock.json) in node_modules, both
# installed under TOOLS on first use, never globally.
#
#   guests/polyglot.sh OUT_DIR [TOOLS]
#
# TOOLS defaults to OUT_DIR/tools. A guest is built again only when its
# source, its world or its toolchain is newer than its component. Each
# guest is one file, named LANGUAGE-NAME.wasm (python-hello.wasm,
# js-app.wasm...). Needs python3 (with venv) and node/npm.
set -euo pipefail

guests=$(cd "$(dirname "$0")" && pwd)
wit=$guests/../wit/service
out=${1:?usage: guests/polyglot.sh OUT_DIR [TOOLS]}
tools=${2:-$out/tools}
mkdir -p "$out" "$tools"
out=$(cd "$out" && pwd)
tools=$(cd "$tools" && pwd)

# The world each guest is built for, from wit/service.
world_of() {
    case $1 in
        hello) echo http-with-env ;;
        *) echo service-with-files ;;
    esac
}

# Whether OUTPUT is missing or older than any of the other arguments.
stale() {
    local output=$1
    shift
    [ -e "$output" ] || return 0
    [ -n "$(find "$@" -newer "$output" -print -quit 2>/dev/null)" ]
}

# Python: componentize-py in a virtual environment of its own.
venv=$tools/python
if stale "$venv/.installed" "$guests/python/requirements.txt"; then
    echo "== installing componentize-py into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
        -r "$guests/python/requirements.txt"
    touch "$venv/.installed"
fi
for dir in "$guests"/python/*/; do
    name=$(basename "$dir")
    output=$out/python-$name.wasm
    if stale "$output" "$dir" "$wit" "$venv/.installed"; then
        echo "== building python/$name" >&2
        (cd "$dir" && "$venv/bin/componentize-py" -d "$wit" -w "$(world_of "$name")" \
            componentize app -p . -o "$output.tmp" >/dev/null)
        mv "$output.tmp" "$output"
    fi
done

# JavaScript: ComponentizeJS in node_modules of its own.
node=$tools/js
if stale "$node/.installed" "$guests/js/package.json" "$guests/js/package-lock.json"; then
    echo "== installing ComponentizeJS into $node" >&2
    rm -rf "$node"
    mkdir -p "$node"
    cp "$guests/js/package.json" "$guests/js/package-lock.json" "$node/"
    (cd "$node" && npm ci --silent --no-audit --no-fund)
    touch "$node/.installed"
fi
for dir in "$guests"/js/*/; do
    name=$(basename "$dir")
    [ "$name" = node_modules ] && continue
    output=$out/js-$name.wasm
    if stale "$output" "$dir" "$wit" "$node/.installed"; then
        echo "== building js/$name" >&2
        "$node/node_modules/.bin/componentize-js" "$dir/app.js" --wit "$wit" \
            --world-name "$(world_of "$name")" -o "$output.tmp" >/dev/null
        mv "$output.tmp" "$output"
    fi
done
ls -l "$out"/*.wasm >&2
