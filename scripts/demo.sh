#!/usr/bin/env bash
# The main job on a fresh clone: set up, then submit the bundled example batch to a loopback
# server and watch it to its results (examples/out/results.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-pnpm.sh
pnpm install --frozen-lockfile >&2
pnpm build >&2
exec pnpm --filter @batchkit/examples --silent demo
