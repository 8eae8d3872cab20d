/** The CLI proper, bundled into dist/cli.mjs; bin.ts loads it for anything but --version and --help. */
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import { readFileSync } from "node:fs"
import { run } from "./Cli.js"
import { exitCodes, report } from "./Exit.js"

// the bundle has the version built in; run from source (pnpm dev), it reads package.json
declare const BATCHKIT_VERSION: string | undefined
const version =
  typeof BATCHKIT_VERSION === "string"
    ? BATCHKIT_VERSION
    : (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
        .version

const json = process.argv.includes("--json")

// `batchkit … | head` closes stdout early: stop quietly, as other command-line tools do
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0)
  throw error
})

run(process.argv, version).pipe(
  // @effect/cli has printed its own message for bad usage
  Effect.catchIf(ValidationError.isValidationError, () =>
    Effect.sync(() => {
      process.exitCode = exitCodes.usage
    })
  ),
  Effect.catchAll((error) =>
    Effect.sync(() => {
      const { code, line } = report(error, json)
      process.stderr.write(`${line}\n`)
      process.exitCode = code
    })
  ),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
