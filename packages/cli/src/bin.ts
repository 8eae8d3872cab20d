#!/usr/bin/env node
/**
 * The `batchkit` entry. `--version` and `--help` are answered here, without loading the CLI:
 * the help text is the CLI's own, rendered at build time into dist/help.txt. Everything else
 * loads the bundled CLI (dist/bundle/main.js).
 */
import { readFileSync } from "node:fs"

const args = process.argv.slice(2)
const only = args.length === 1 ? args[0] : undefined

if (only === "--version") {
  const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string
  }
  process.stdout.write(`${version}\n`)
} else if (only === "--help" || only === "-h") {
  process.stdout.write(readFileSync(new URL("./help.txt", import.meta.url)))
} else {
  // @ts-expect-error: the bundle has no declarations; it runs the CLI when loaded
  await import("./bundle/main.js")
}
