/** The CLI proper, bundled into dist/bundle/main.js; bin.ts loads it for anything but --version and --help. */
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { readFileSync } from "node:fs"
import { setFlagsFromString } from "node:v8"
import { commandPaths, normalizeArgs, run } from "./Cli.js"
import { exitCodes, report } from "./Exit.js"
import * as Help from "./Help.js"

// the bundle has the version built in; run from source (pnpm dev), it reads package.json
declare const BATCHKIT_VERSION: string | undefined
const version =
  typeof BATCHKIT_VERSION === "string"
    ? BATCHKIT_VERSION
    : (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
        .version

// pg warns (DeprecationWarning) about the cluster storage's overlapping queries on one client;
// a notice for library authors, not for a person at a terminal
process.noDeprecation = true

const args = normalizeArgs(process.argv.slice(2))

// V8 lets a busy process's heap grow to several times what it holds before it collects: a job of
// a million requests peaked near 420 MB of RSS while holding a fraction of that. A smaller growth
// step between full collections keeps the CLI near its live memory (a 200,000-request job:
// 379 → 257 MB peak RSS, no slower). The CLI's own process only: the libraries leave a
// program's heap settings alone, and so does the emulator, a server for tests and benchmarks
// (the command path comes first once the arguments are normalized).
if (args[0] !== "emulator") setFlagsFromString("--heap-growing-percent=20")
const json = args.includes("--json")

// `batchkit … | head` closes stdout early: stop quietly, as other command-line tools do
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0)
  throw error
})

// Ctrl-C and `kill` interrupt the command (which says what goes on and how to pick it up), then
// exit 130 / 143 as shells expect, so `batchkit … && next` does not go ahead. The emulator and a
// runner are services: a signal is their normal stop (exit 0).
let signal: NodeJS.Signals | undefined
for (const name of ["SIGINT", "SIGTERM"] as const) {
  process.once(name, () => {
    signal ??= name
  })
}
const service = commandPaths(args)[0] === "emulator" || commandPaths(args)[0] === "runner"

if (args.includes("--help") || args.includes("-h")) {
  process.stdout.write(Help.render(args))
} else {
  run([...process.argv.slice(0, 2), ...args], version).pipe(
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
    // a bug of ours or of a library: never a silent exit
    Effect.catchAllDefect((defect) =>
      Effect.sync(() => {
        // with the causes: a driver's own message ("deadlock detected") is what tells what happened
        process.stderr.write(
          `error: unexpected: ${Cause.pretty(Cause.die(defect), { renderErrorCause: true })}\n`
        )
        process.exitCode = 1
      })
    ),
    Effect.provide(NodeContext.layer),
    // what the CLI says it writes itself; libraries' log notices (the workflow engine's runner
    // health and the like) are not for a person at a terminal
    Logger.withMinimumLogLevel(LogLevel.Error),
    NodeRuntime.runMain({
      disableErrorReporting: true,
      teardown: (exit, onExit) => {
        if (signal !== undefined && !service) onExit(signal === "SIGINT" ? 130 : 143)
        else if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) onExit(1)
        else onExit(typeof process.exitCode === "number" ? process.exitCode : 0)
      }
    })
  )
}
