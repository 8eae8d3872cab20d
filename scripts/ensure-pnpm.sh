#!/usr/bin/env bash
# Sourced by the other scripts: makes `pnpm` the pinned 12.4.2 on a machine that has only Node and npm.
PNPM_VERSION=12.4.2
if [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  echo "installing pnpm $PNPM_VERSION with npm" >&2
  if ! npm install --global --loglevel=error "pnpm@$PNPM_VERSION" >&2; then
    # no write access to npm's global prefix: install under the user's own prefix
    export NPM_CONFIG_PREFIX="${HOME:-/tmp}/.batchkit-npm"
    npm install --global --loglevel=error "pnpm@$PNPM_VERSION" >&2
    export PATH="$NPM_CONFIG_PREFIX/bin:$PATH"
  fi
  hash -r
fi
export DO_NOT_TRACK=1 TURBO_TELEMETRY_DISABLED=1
# better-sqlite3 (the jobs' SQLite store) is compiled here: its prebuilt binary is fetched from
# outside the registries. node-gyp under pnpm does not read npm's nodedir, which points at the
# machine's own Node headers, so it would try to download them; pass it on.
if [ -z "${npm_config_nodedir:-}" ]; then
  nodedir=$(npm config get nodedir 2>/dev/null)
  if [ -n "$nodedir" ] && [ "$nodedir" != "undefined" ] && [ -d "$nodedir/include/node" ]; then
    export npm_config_nodedir="$nodedir"
  elif [ -d "$(dirname "$(dirname "$(command -v node)")")/include/node" ]; then
    export npm_config_nodedir="$(dirname "$(dirname "$(command -v node)")")"
  fi
fi
