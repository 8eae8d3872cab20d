#!/usr/bin/env bash
# The main job on a fresh clone: set up, start the bundled emulator, submit the example batch
# (examples/requests.jsonl, 300 requests) with the batchkit CLI, show its progress, and write the
# results joined by custom_id to examples/out/results.jsonl. Exits with the CLI's exit code.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-pnpm.sh
pnpm install --frozen-lockfile >&2
pnpm build >&2

batchkit() { node packages/cli/dist/bin.js "$@"; }
url_file=$(mktemp)
# speed 20: the emulator's batches move twenty times faster than the wall clock
node packages/cli/dist/bin.js emulator --speed 20 >"$url_file" &
emulator=$!
trap 'kill "$emulator" 2>/dev/null || true; rm -f "$url_file"' EXIT
for _ in $(seq 100); do [ -s "$url_file" ] && break; sleep 0.1; done
url=$(head -n 1 "$url_file")
[ -n "$url" ] || { echo "the emulator did not start" >&2; exit 1; }

mkdir -p examples/out
export OPENAI_API_KEY=sk-demo OPENAI_BASE_URL="$url"
batchkit submit examples/requests.jsonl --wait --output examples/out/results.jsonl
echo "results: examples/out/results.jsonl ($(wc -l <examples/out/results.jsonl) lines)" >&2
