#!/usr/bin/env bash
# Install the pinned peer of the side-by-side benchmark (bench/ponder.py):
#
#   ponder      Ponder, the TypeScript EVM indexer, from npm, with what a minimal
#               Ponder project needs beside it: its peer dependencies viem (ABIs,
#               the RPC client), hono (its HTTP API) and typescript.
#
# Into ${INDEXER_TOOLS_DIR:-$HOME/.cache/indexer-tools}/ponder with npm (Node.js >= 18.14).
# A directory of its own, not the anvil tools' one: an `npm install --no-save` there
# would remove what the other script installed.  The generated Ponder projects do not
# install anything: they are run with NODE_PATH-free resolution by symlinking this
# directory's node_modules into them (bench/_ponder/project.py).
# Idempotent: nothing is downloaded when the pinned versions are there already.
# Prints, on stdout, one `key=value` line each (bench/ponder.py reads them):
#
#   ponder=<path of the ponder command (node_modules/.bin/ponder)>
#   ponder_version=<pinned version>
#   node_modules=<the node_modules directory the projects link to>
#   node_version=<node --version>
#
# Usage: tools/install_ponder.sh
set -euo pipefail

PONDER_VERSION=0.16.10
VIEM_VERSION=2.38.6
HONO_VERSION=4.10.8
TYPESCRIPT_VERSION=5.9.3
DIR="${INDEXER_TOOLS_DIR:-$HOME/.cache/indexer-tools}/ponder"
MODULES="$DIR/node_modules"
PONDER="$MODULES/.bin/ponder"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "install_ponder.sh: $tool not found; install Node.js >= 18.14 (with npm)" >&2
        exit 1
    fi
done

# The version in an installed package's package.json, or nothing.
installed() {
    node -e 'try { process.stdout.write(require(process.argv[1]).version) } catch {}' \
        "$1/package.json"
}

up_to_date() {
    [ "$(installed "$MODULES/ponder")" = "$PONDER_VERSION" ] &&
        [ "$(installed "$MODULES/viem")" = "$VIEM_VERSION" ] &&
        [ "$(installed "$MODULES/hono")" = "$HONO_VERSION" ] &&
        [ "$(installed "$MODULES/typescript")" = "$TYPESCRIPT_VERSION" ] &&
        [ -x "$PONDER" ]
}

mkdir -p "$DIR"
if ! up_to_date; then
    # Two benchmark sessions may run this at once: one installs, the others wait.
    exec 9>"$DIR/.install.lock"
    if command -v flock >/dev/null; then
        flock 9
    fi
    if ! up_to_date; then
        echo "install_ponder.sh: installing ponder@$PONDER_VERSION into $DIR" >&2
        # A package.json of our own makes $DIR the npm project root (npm would
        # otherwise climb to a parent that has one).  Everything in one command:
        # an install with --no-save removes what an earlier one added.
        [ -f "$DIR/package.json" ] ||
            echo '{"name": "indexer-bench-ponder", "private": true, "type": "module"}' \
                >"$DIR/package.json"
        # Package scripts stay off: the few dependencies with install scripts
        # (esbuild's platform binary comes as an optional dependency instead)
        # are not needed to run `ponder start`.
        npm install --prefix "$DIR" --no-save --no-audit --no-fund --ignore-scripts \
            "ponder@$PONDER_VERSION" "viem@$VIEM_VERSION" "hono@$HONO_VERSION" \
            "typescript@$TYPESCRIPT_VERSION" >&2
    fi
    exec 9>&-
fi

if ! version="$("$PONDER" --version 2>&1)" || [[ "$version" != *"$PONDER_VERSION"* ]]; then
    echo "install_ponder.sh: $PONDER does not run or is not version $PONDER_VERSION: $version" >&2
    exit 1
fi

echo "ponder=$PONDER"
echo "ponder_version=$PONDER_VERSION"
echo "node_modules=$MODULES"
echo "node_version=$(node --version)"
