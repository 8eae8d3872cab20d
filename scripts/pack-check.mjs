// Proves the published packages work for a user: packs @batchkit/core, node and cli with
// `pnpm pack`, installs the tarballs into a fresh npm project (with the peer dependencies from
// the registry), then imports them as ESM, typechecks a file against their types, and runs the
// installed `batchkit` bin.
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pack } from "./pack.mjs"

const root = new URL("..", import.meta.url).pathname
const work = mkdtempSync(join(tmpdir(), "batchkit-pack-"))
const sh = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" })

try {
  const tarballs = pack(join(work, "tarballs"))
  const app = join(work, "app")
  sh("mkdir", ["-p", app])
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }))
  // a user of @batchkit/core alone: no SQL driver, no native addon
  const coreOnly = join(work, "core-only")
  sh("mkdir", ["-p", coreOnly])
  writeFileSync(
    join(coreOnly, "package.json"),
    JSON.stringify({ name: "core-only", private: true, type: "module" })
  )
  sh(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      tarballs.core,
      "effect@3.22.4",
      "@effect/platform@0.97.2"
    ],
    coreOnly
  )
  const installed = sh("npm", ["ls", "--all", "--parseable"], coreOnly)
  const drivers = installed.split("\n").filter((p) => /(better-sqlite3|[\\/]@effect[\\/]sql)/.test(p))
  if (drivers.length > 0)
    throw new Error(`@batchkit/core alone installed a SQL driver: ${drivers.join(", ")}`)
  sh(
    "node",
    [
      "--input-type=module",
      "-e",
      'import { BatchService } from "@batchkit/core"; if (!BatchService.layer) process.exit(1)'
    ],
    coreOnly
  )
  console.log("core alone: no SQL driver, no native addon")
  // the library with jobs (the driver is the app's choice; none here)
  const packed = [tarballs.core, tarballs.jobs, tarballs.node]
  sh(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      ...packed,
      "effect@3.22.4",
      "@effect/platform@0.97.2",
      "@effect/platform-node@0.108.2",
      "typescript@5.9.3",
      "@types/node@20.19.43"
    ],
    app
  )
  writeFileSync(
    join(app, "check.mjs"),
    `import { Batch, BatchConfig, BatchError, BatchLine, BatchService, FileService, RetryPolicy } from "@batchkit/core"
import { Responder, Simulator } from "@batchkit/core/testing"
import { NodeBatch, NodeFileSource } from "@batchkit/node"
import { Job, Jobs, Planner, Prices } from "@batchkit/jobs"
const missing = Object.entries({ Batch, BatchConfig, BatchError, BatchLine, BatchService, FileService, RetryPolicy, Responder, Simulator, NodeBatch, NodeFileSource, Job, Jobs, Planner, Prices })
  .filter(([, m]) => m === undefined || Object.keys(m).length === 0).map(([k]) => k)
if (missing.length > 0 || typeof NodeBatch.layerConfig !== "function" || !Batch.isTerminal("completed")) {
  console.error("missing exports:", missing); process.exit(1)
}
console.log("esm import ok")
`
  )
  writeFileSync(
    join(app, "check.ts"),
    `import { BatchService, type Batch, BatchError } from "@batchkit/core"
import { NodeBatch } from "@batchkit/node"
import { Effect } from "effect"
const program: Effect.Effect<Batch.Batch, BatchError.BatchError | import("effect/ConfigError").ConfigError> = Effect.flatMap(
  BatchService.BatchService, (s) => s.retrieve("batch_abc")).pipe(Effect.provide(NodeBatch.layerConfig()))
export default program
`
  )
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        module: "NodeNext",
        moduleResolution: "NodeNext",
        target: "ES2022",
        strict: true,
        noEmit: true,
        types: ["node"]
      },
      files: ["check.ts"]
    })
  )
  process.stdout.write(sh("node", ["check.mjs"], app))
  sh(join(app, "node_modules/.bin/tsc"), ["-p", "."], app)
  console.log("types ok")
  // the README's install of the command: the CLI tarball alone, globally (here, a prefix of its own)
  const prefix = join(work, "global")
  sh(
    "npm",
    ["install", "--global", "--prefix", prefix, "--no-audit", "--no-fund", "--loglevel=error", tarballs.cli],
    work
  )
  const bin = join(prefix, "bin", "batchkit")
  const version = sh(bin, ["--version"], work).trim()
  if (!/^\d+\.\d+\.\d+$/.test(version))
    throw new Error(`npm i -g of the CLI tarball: --version printed ${version}`)
  const help = sh(bin, ["submit", "--help"], work)
  if (!help.includes("--dry-run")) throw new Error("batchkit submit --help did not describe --dry-run")
  const dry = sh(bin, ["submit", join(root, "examples/requests.jsonl"), "--dry-run", "--json"], work)
  if (JSON.parse(dry).lines !== 300) throw new Error(`the globally installed CLI's dry run printed ${dry}`)
  // jobs: the bundled CLI with its native SQLite addon
  const jobs = sh(bin, ["jobs", "list", "--json", "--state", join(work, "state.db")], work)
  if (jobs.trim() !== "") throw new Error(`batchkit jobs list on a new store printed ${jobs}`)
  console.log("npm i -g of the CLI tarball ok")
} finally {
  rmSync(work, { recursive: true, force: true })
}
