/**
 * Running the built CLI (dist/bin.js) as a child process against an emulator in this process,
 * the way a person or a script runs it. Each test file gets its own emulator and folder.
 */
import { Emulator } from "@batchkit/node"
import { afterAll, beforeAll, expect } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export const bin = fileURLToPath(new URL("../../dist/bin.js", import.meta.url))
export const apiKey = "sk-cli-SECRET-5555555555"
export type Server = Awaited<ReturnType<typeof Emulator.start>>

/** The emulator and the scratch folder of the calling test file. */
export const setup = () => {
  const state = {} as { server: Server; dir: string }
  beforeAll(async () => {
    // 20× the wall clock: a small batch completes in about a second
    state.server = await Emulator.start({ apiKey, speed: 20 })
    state.dir = mkdtempSync(join(tmpdir(), "batchkit-cli-"))
  })
  afterAll(() => state.server.close())

  const requestCount = async (s: Server = state.server) =>
    (await Effect.runPromise(s.simulator.requests)).length

  /**
   * Starts the built CLI on a clean environment (PATH, the key, the base URL); `done` is its end,
   * `stderr()` what it said so far.
   */
  const start = (args: Array<string>, env: Record<string, string> = {}, s: Server = state.server) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH ?? "", OPENAI_API_KEY: apiKey, OPENAI_BASE_URL: s.url, ...env }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d))
    child.stderr.on("data", (d: Buffer) => (stderr += d))
    const done = new Promise<Run>((resolve) => {
      child.on("close", (code) => {
        // the key must never be printed, whatever the command
        expect(stdout + stderr).not.toContain(apiKey)
        resolve({ code, stdout, stderr })
      })
    })
    return { child, done, stderr: () => stderr }
  }

  /** Runs the built CLI to its end; async, as the server runs in this process. */
  const cli = (args: Array<string>, env: Record<string, string> = {}, s: Server = state.server) =>
    start(args, env, s).done

  const write = (name: string, text: string) => {
    const path = join(state.dir, name)
    writeFileSync(path, text)
    return path
  }

  /** Uploads `path` with `files upload` and creates a batch from it with `create`; gives the batch. */
  const submitted = async (path: string, s: Server = state.server): Promise<{ id: string }> => {
    const file = JSON.parse((await cli(["files", "upload", path, "--json"], {}, s)).stdout)
    return JSON.parse(
      (
        await cli(
          ["create", "--input-file-id", file.id, "--endpoint", "/v1/chat/completions", "--json"],
          {},
          s
        )
      ).stdout
    )
  }

  return { state, requestCount, start, cli, write, submitted }
}

export interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Waits until `check` holds, polling every 50 ms (for at most 20 s). */
export const until = async (check: () => boolean | Promise<boolean>) => {
  for (let i = 0; i < 400; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error("timed out waiting")
}

/** `n` chat requests, req-0 … req-(n-1), as JSONL. */
export const lines = (n: number, endpoint = "/v1/chat/completions") =>
  `${Array.from({ length: n }, (_, i) => JSON.stringify({ custom_id: `req-${i}`, method: "POST", url: endpoint, body: { model: "gpt-4o-mini", messages: [{ role: "user", content: `q${i}` }] } })).join("\n")}\n`

export const jsonLines = (text: string) =>
  text
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l))
