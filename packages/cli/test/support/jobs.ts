/** Jobs through the built CLI against an emulator in this process, and what the emulator holds of a job. */
import { Emulator } from "@batchkit/node"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { apiKey, bin, type Run } from "./cli.js"

export type Server = Awaited<ReturnType<typeof Emulator.start>>

/** An emulator whose requests can be acted on: `hook` is replaced by each test. */
export const hooked = async (options: Emulator.Options = {}) => {
  const box: {
    hook: (
      r: {
        readonly method: string
        readonly path: string
        readonly headers: Readonly<Record<string, string>>
        readonly body: Uint8Array
      },
      when: "before" | "after"
    ) => void | Promise<void>
  } = {
    hook: () => {}
  }
  const server = await Emulator.start({
    apiKey,
    speed: 2000,
    ...options,
    onRequest: (r, w) => box.hook(r, w)
  })
  return { server, box }
}

export const scratch = () => mkdtempSync(join(tmpdir(), "batchkit-jobs-cli-"))

/** `n` embedding requests (r0 …), as a file in `dir`. */
export const embeddings = (dir: string, n: number, name = "in.jsonl", from = 0) => {
  const path = join(dir, name)
  let text = ""
  for (let i = from; i < from + n; i++)
    text += `${JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/embeddings", body: { model: "text-embedding-3-small", input: `text ${i}` } })}\n`
  writeFileSync(path, text)
  return path
}

/** Starts the built CLI against `server`; `child` to kill it, `done` for its end. */
export const start = (server: Server, args: Array<string>, cwd: string, env: Record<string, string> = {}) => {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? "", OPENAI_API_KEY: apiKey, OPENAI_BASE_URL: server.url, ...env }
  })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (d: Buffer) => (stdout += d))
  child.stderr.on("data", (d: Buffer) => (stderr += d))
  const done = new Promise<Run & { readonly signal: NodeJS.Signals | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }))
  )
  return { child, done, stderr: () => stderr }
}

export const cli = (server: Server, args: Array<string>, cwd: string, env: Record<string, string> = {}) =>
  start(server, args, cwd, env).done

export const jobIdOf = (stderr: string) => /job (job_[a-z0-9]+)/.exec(stderr)?.[1]

/** The emulator's batches of one job, with the custom_ids of each one's input. */
export const batchesOf = async (server: Server, jobId: string) => {
  const all = await Effect.runPromise(server.simulator.batches)
  const mine = all.filter((b) => (b.metadata as Record<string, string> | null)?.batchkit_job === jobId)
  const decoder = new TextDecoder()
  const files = await Effect.runPromise(server.simulator.files)
  return Promise.all(
    mine.map(async (b) => {
      const reply = await Effect.runPromise(
        server.simulator.handle({
          method: "GET",
          path: `/v1/files/${b.input_file_id as string}/content`,
          query: new URLSearchParams(),
          headers: { authorization: `Bearer ${apiKey}` },
          body: new Uint8Array()
        })
      )
      const ids =
        reply._tag === "Answer"
          ? decoder
              .decode(reply.body)
              .split("\n")
              .filter((l) => l !== "")
              .map((l) => (JSON.parse(l) as { custom_id: string }).custom_id)
          : []
      void files
      return {
        id: b.id as string,
        shard: (b.metadata as Record<string, string>).batchkit_shard as string,
        status: b.status as string,
        ids
      }
    })
  )
}
