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
  const packed = [tarballs.core, tarballs.node, tarballs.cli]
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
const missing = Object.entries({ Batch, BatchConfig, BatchError, BatchLine, BatchService, FileService, RetryPolicy, Responder, Simulator, NodeBatch, NodeFileSource })
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
  const version = sh(join(app, "node_modules/.bin/batchkit"), ["--version"], app).trim()
  if (!/\d+\.\d+\.\d+/.test(version)) throw new Error(`batchkit --version printed ${version}`)
  const help = sh(join(app, "node_modules/.bin/batchkit"), ["submit", "--help"], app)
  if (!help.includes("--dry-run")) throw new Error("batchkit submit --help did not describe --dry-run")
  console.log(`batchkit bin ok (${version})`)
  sh(join(app, "node_modules/.bin/tsc"), ["-p", "."], app)
  console.log("types ok")
  // the README's install of the command: the CLI tarball alone, globally (here, a prefix of its own)
  const prefix = join(work, "global")
  sh(
    "npm",
    ["install", "--global", "--prefix", prefix, "--no-audit", "--no-fund", "--loglevel=error", tarballs.cli],
    work
  )
  const globalVersion = sh(join(prefix, "bin", "batchkit"), ["--version"], work).trim()
  if (globalVersion !== version)
    throw new Error(`npm i -g of the CLI tarball: --version printed ${globalVersion}`)
  const dry = sh(
    join(prefix, "bin", "batchkit"),
    ["submit", join(root, "examples/requests.jsonl"), "--dry-run", "--json"],
    work
  )
  if (JSON.parse(dry).lines !== 300) throw new Error(`the globally installed CLI's dry run printed ${dry}`)
  console.log("npm i -g of the CLI tarball ok")
} finally {
  rmSync(work, { recursive: true, force: true })
}
