/** Jobs on Node: SQLite store, the workflow engine on one runner, the emulator over HTTP. */
import { Jobs } from "@batchkit/jobs"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Layer, Stream } from "effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Emulator, NodeFileSource } from "../src/index.js"
import * as NodeJobs from "../src/NodeJobs.js"

const apiKey = "sk-jobs-SECRET-1234567890"
const line = (i: number) =>
  JSON.stringify({
    custom_id: `r${i}`,
    method: "POST",
    url: "/v1/embeddings",
    body: { model: "text-embedding-3-small", input: `text ${i}` }
  })

describe("NodeJobs", () => {
  it.live(
    "runs a job of three shards on SQLite against the emulator; the store holds no key; a second engine is refused",
    () =>
      Effect.gen(function* () {
        const dir = mkdtempSync(join(tmpdir(), "batchkit-jobs-"))
        const input = join(dir, "in.jsonl")
        writeFileSync(input, `${Array.from({ length: 250 }, (_, i) => line(i)).join("\n")}\n`)
        const state = join(dir, "state", "jobs.db")
        const emulator = yield* Emulator.Emulator
        const program = Effect.gen(function* () {
          const jobs = yield* Jobs.Jobs
          const { id, plan } = yield* jobs.submit([{ name: input, bytes: NodeFileSource.stream(input) }], {
            maxRequests: 100
          })
          expect(plan.shards.length).toBe(3)
          yield* jobs.start(id)
          // the store is taken: another engine on it is refused
          const busy = yield* Effect.exit(
            Effect.scoped(Layer.build(NodeJobs.layer({ apiKey, baseUrl: emulator.url, state })))
          )
          expect(Exit.isFailure(busy) && String(busy.cause)).toContain("EngineBusy")
          const done = yield* jobs.await(id, { interval: "100 millis" })
          const lines = Chunk.toArray(yield* Stream.runCollect(jobs.results(id)))
          return { done, lines }
        })
        const { done, lines } = yield* program.pipe(
          Effect.provide(NodeJobs.layer({ apiKey, baseUrl: emulator.url, state }))
        )
        expect(done.status).toBe("finished")
        expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: 250 }, (_, i) => `r${i}`))
        expect(lines.every((l) => l.outcome === "succeeded" && l.attempts === 1)).toBe(true)
        expect((yield* emulator.simulator.batches).length).toBe(3)
        expect(readFileSync(state).includes(Buffer.from(apiKey))).toBe(false)
      }).pipe(Effect.provide(Emulator.layer({ apiKey, speed: 200 }))),
    { timeout: 60_000 }
  )
})
