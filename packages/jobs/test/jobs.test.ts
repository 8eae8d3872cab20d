import { Responder, Simulator } from "@batchkit/core/testing"
import { SqliteClient } from "@effect/sql-sqlite-node"
import * as WorkflowEngine from "@effect/workflow/WorkflowEngine"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Stream, TestClock } from "effect"
import { Jobs } from "../src/index.js"

const line = (i: number, model = "gpt-4o-mini") =>
  JSON.stringify({
    custom_id: `req-${i}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model, messages: [{ role: "user", content: `question ${i}` }] }
  })
const input = (name: string, from: number, n: number) => ({
  name,
  bytes: Stream.succeed(
    new TextEncoder().encode(`${Array.from({ length: n }, (_, i) => line(from + i)).join("\n")}\n`)
  )
})

const layer = (options: Simulator.Options = {}) =>
  Layer.mergeAll(Jobs.layer, Jobs.layerWorkflow).pipe(
    Layer.provideMerge(WorkflowEngine.layerMemory),
    Layer.provideMerge(SqliteClient.layer({ filename: ":memory:" })),
    Layer.provideMerge(Simulator.layer(options))
  )

/** Runs the job to its end, moving the clock. */
const finish = (id: string) =>
  Effect.gen(function* () {
    const jobs = yield* Jobs.Jobs
    const fiber = yield* Effect.fork(jobs.await(id))
    for (let i = 0; i < 200 && fiber.unsafePoll() === null; i++) yield* TestClock.adjust("1 minute")
    return yield* Fiber.join(fiber)
  })

describe("Jobs over the simulator", () => {
  it.effect("runs 250 requests in 3 shards to one set of results in input order", () =>
    Effect.gen(function* () {
      const jobs = yield* Jobs.Jobs
      const submitted = yield* jobs.submit([input("a.jsonl", 0, 150), input("b.jsonl", 150, 100)], {
        maxRequests: 100
      })
      expect(submitted.plan.shards.map((s) => s.requests)).toEqual([100, 100, 50])
      yield* jobs.start(submitted.id)
      const done = yield* finish(submitted.id)
      expect(done.status).toBe("finished")
      expect(done.requests).toMatchObject({ total: 250, succeeded: 250, pending: 0 })
      const lines = Chunk.toArray(yield* Stream.runCollect(jobs.results(submitted.id)))
      expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: 250 }, (_, i) => `req-${i}`))
      expect(lines.every((l) => l.outcome === "succeeded" && l.attempts === 1)).toBe(true)
      expect(done.tokens.input).toBeGreaterThan(0)
      expect(done.cost.usd).toBeGreaterThan(0)
      const sim = yield* Simulator.Simulator
      expect((yield* sim.batches).length).toBe(3)
    }).pipe(Effect.provide(layer()))
  )

  it.effect("retry rounds resend what failed transiently; the results say how many attempts each took", () =>
    Effect.gen(function* () {
      const jobs = yield* Jobs.Jobs
      const submitted = yield* jobs.submit([input("a.jsonl", 0, 20)])
      yield* jobs.start(submitted.id)
      const done = yield* finish(submitted.id)
      expect(done.requests).toMatchObject({ succeeded: 19, failed: 1 })
      const lines = Chunk.toArray(yield* Stream.runCollect(jobs.results(submitted.id)))
      expect(lines.find((l) => l.custom_id === "req-3")).toMatchObject({ outcome: "succeeded", attempts: 2 })
      expect(lines.find((l) => l.custom_id === "req-5")).toMatchObject({
        outcome: "failed",
        attempts: 1,
        status_code: 400
      })
      expect(lines.find((l) => l.custom_id === "req-0")).toMatchObject({ outcome: "succeeded", attempts: 1 })
    }).pipe(
      Effect.provide(
        layer({ responder: Responder.transient(["req-3"], { base: Responder.failing(["req-5"]) }) })
      )
    )
  )
})
