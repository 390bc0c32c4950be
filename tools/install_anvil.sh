#!/usr/bin/env bash
# Install the pinned tools of the anvil end-to-end tests (tests/anvil/):
#
#   anvil   Foundry's local EVM node, from npm: the platform package
#           @foundry-rs/anvil-<os>-<arch>, which holds the native binary (the
#           @foundry-rs/anvil wrapper only picks one of these, or downloads it
#           in a postinstall script; we install the binary package directly).
#   solc    solc-js, the Solidity compiler as WebAssembly, from npm: the tests
#           recompile tests/contracts/TestToken.sol and compare the artifact.
#
# Into ${INDEXER_TOOLS_DIR:-$HOME/.cache/indexer-tools} with npm (Node.js >= 20).
# Idempotent: nothing is downloaded when the pinned versions are there already.
# Prints, on stdout, one `key=value` line each (the tests read them):
#
#   anvil=<path of the anvil binary>
#   anvil_version=<pinned version>
#   solc=<directory of the solc npm package, for require()>
#   solc_version=<pinned version>
#
# Usage: tools/install_anvil.sh
set -euo pipefail

ANVIL_VERSION=1.7.1
SOLC_VERSION=0.8.28
DIR="${INDEXER_TOOLS_DIR:-$HOME/.cache/indexer-tools}"

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) PLATFORM=linux-amd64 ;;
    Linux-aarch64 | Linux-arm64) PLATFORM=linux-arm64 ;;
    Darwin-x86_64) PLATFORM=darwin-amd64 ;;
    Darwin-arm64) PLATFORM=darwin-arm64 ;;
    *)
        echo "install_anvil.sh: no anvil npm package for $(uname -s) $(uname -m)" >&2
        exit 1
        ;;
esac
ANVIL_PACKAGE="@foundry-rs/anvil-$PLATFORM"
ANVIL="$DIR/node_modules/$ANVIL_PACKAGE/bin/anvil"
SOLC="$DIR/node_modules/solc"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "install_anvil.sh: $tool not found; install Node.js >= 20 (with npm)" >&2
        exit 1
    fi
done

# The version in an installed package's package.json, or nothing.
installed() {
    node -e 'try { process.stdout.write(require(process.argv[1]).version) } catch {}' \
        "$1/package.json"
}

up_to_date() {
    [ "$(installed "$DIR/node_modules/$ANVIL_PACKAGE")" = "$ANVIL_VERSION" ] &&
        [ "$(installed "$SOLC")" = "$SOLC_VERSION" ] &&
        [ -x "$ANVIL" ]
}

mkdir -p "$DIR"
if ! up_to_date; then
    # Concurrent test sessions may run this at once: one installs, the others wait.
    exec 9>"$DIR/.install.lock"
    if command -v flock >/dev/null; then
        flock 9
    fi
    if ! up_to_date; then
        echo "install_anvil.sh: installing $ANVIL_PACKAGE@$ANVIL_VERSION and solc@$SOLC_VERSION into $DIR" >&2
        # Both in one command: an install with --no-save removes what an
        # earlier one added.  No package scripts are needed (nor run).
        npm install --prefix "$DIR" --no-save --no-audit --no-fund --ignore-scripts \
            "$ANVIL_PACKAGE@$ANVIL_VERSION" "solc@$SOLC_VERSION" >&2
    fi
    exec 9>&-
fi

if ! version="$("$ANVIL" --version 2>&1)" || [[ "$version" != *"Version: $ANVIL_VERSION"* ]]; then
    echo "install_anvil.sh: $ANVIL does not run or is not version $ANVIL_VERSION: $version" >&2
    exit 1
fi

echo "anvil=$ANVIL"
echo "anvil_version=$ANVIL_VERSION"
echo "solc=$SOLC"
echo "solc_version=$SOLC_VERSION"
