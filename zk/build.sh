#!/usr/bin/env bash
# Rebuilds every circuit, the development ceremony, the keys and the examples (see README.md).
# Same as `npm run build`; extra arguments go to scripts/build.mjs (--reuse-ptau, --power N).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules ]; then npm ci; fi
exec node scripts/build.mjs "$@"
