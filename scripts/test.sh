#!/usr/bin/env bash
# Sets up a fresh clone and runs every check and test; ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-pnpm.sh

step() { echo "::: $*" >&2; }
fail() { echo "FAILED: $*" >&2; totals; exit 1; }
totals() { node scripts/test-totals.mjs; }

rm -f packages/*/.vitest/results.json examples/.vitest/results.json
step "pnpm install --frozen-lockfile" && pnpm install --frozen-lockfile || fail "install"
step "build" && pnpm build || fail "build"
# the runners' tests start a PostgreSQL server of their own: Debian's package, installed when missing
step "PostgreSQL (installed when missing)" && node scripts/postgres.mjs ensure || fail "postgres"
step "lint and format check" && pnpm lint || fail "lint"
step "typecheck" && pnpm typecheck || fail "typecheck"
step "test" && pnpm test; status=$?
step "packed tarballs install and import in a fresh npm project" && pnpm pack-check; packs=$?
totals
[ "$status" -eq 0 ] || exit "$status"
exit "$packs"
