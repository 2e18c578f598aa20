#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (tests/support/browser.py). Install it when it is missing:
# as root (CI), or through sudo. Never `playwright install`: it downloads its own browser build, which
# is neither Debian's nor available offline.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "Chromium is missing and this is not a Debian-like system: install chromium and put it on PATH" \
        "(the browser tests launch \`chromium\`)" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    run=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    run=(sudo -n)
else
    echo "Chromium is missing: run \`sudo apt-get install -y chromium\` (the browser tests need it; this" \
        "script installs it only as root or with password-less sudo)" >&2
    exit 1
fi
echo "installing Debian's chromium for the browser tests"
"${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
    || { "${run[@]}" apt-get update && "${run[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends chromium; }
command -v chromium >/dev/null 2>&1 || { echo "chromium was installed but is not on PATH" >&2; exit 1; }
