#!/usr/bin/env bash
# pnpm bench: set up and build, then run the benchmarks (bench/run.mjs). Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-pnpm.sh
pnpm install --frozen-lockfile >&2
pnpm build >&2
exec node bench/run.mjs "$@"
