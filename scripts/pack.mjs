// Packs @batchkit/core, jobs, node and cli into tarballs (`pnpm packs`, after `pnpm build`): how to
// install batchkit from this repository until the packages are on the registry. Prints the
// install commands. `scripts/pack-check.mjs` installs the same tarballs in a fresh project.
import { execFileSync } from "node:child_process"
import { mkdirSync, readdirSync, rmSync } from "node:fs"
import { join, relative } from "node:path"

const root = new URL("..", import.meta.url).pathname

/** Packs the three published packages into `destination` (emptied first); gives the tarballs by package. */
export const pack = (destination) => {
  rmSync(destination, { recursive: true, force: true })
  mkdirSync(destination, { recursive: true })
  for (const pkg of ["core", "jobs", "node", "cli"])
    execFileSync("pnpm", ["pack", "--pack-destination", destination], {
      cwd: join(root, "packages", pkg),
      stdio: ["ignore", "ignore", "inherit"]
    })
  const files = readdirSync(destination)
  const find = (name) =>
    join(
      destination,
      files.find((f) => f.startsWith(`batchkit-${name}-`))
    )
  return { core: find("core"), jobs: find("jobs"), node: find("node"), cli: find("cli") }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const packed = pack(join(root, "packs"))
  const show = (path) => `./${relative(process.cwd(), path)}`
  console.log(`packed into ${show(join(root, "packs"))}:
  the batchkit command (bundled; it builds better-sqlite3, its one dependency, for jobs):
    npm i -g ${show(packed.cli)}
  the library, in your project:
    npm i ${show(packed.core)} ${show(packed.node)} effect@3.22.4 @effect/platform@0.97.2 @effect/platform-node@0.108.2
  and for jobs:
    npm i ${show(packed.jobs)} @effect/sql-sqlite-node@0.53.0`)
}
