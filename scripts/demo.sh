#!/usr/bin/env bash
# The main job on a fresh clone: set up, start the bundled emulator, run the example requests
# (examples/requests.jsonl, 300 chat requests) as a job with the batchkit CLI, in batches of at
# most 100 (three of them), show its progress, and write every result in input order to
# examples/out/results.jsonl, then the summary. Exits with the CLI's exit code.
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
# --new: a fresh job each time (the same run again would resume an unfinished one)
batchkit run examples/requests.jsonl --max-requests 100 --output examples/out/results.jsonl \
  --state examples/out/state.db --new
echo "results: examples/out/results.jsonl ($(wc -l <examples/out/results.jsonl) lines)" >&2
