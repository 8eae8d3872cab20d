#!/usr/bin/env node
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import { readFileSync } from "node:fs"
import { command } from "./Cli.js"
import { exitCodes, report } from "./Exit.js"

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string
}
const json = process.argv.includes("--json")

Command.run(command, { name: "batchkit", version })(process.argv).pipe(
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
