import { Responder, Simulator } from "@batchkit/core/testing"
import { Jobs } from "@batchkit/jobs"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { WorkflowEngine } from "@effect/workflow"
import { expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Stream, TestClock } from "effect"

// 250 chat requests, one JSON object per line
const jsonl = Array.from({ length: 250 }, (_, i) =>
  JSON.stringify({
    custom_id: `request-${i}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "gpt-4o-mini", messages: [{ role: "user", content: `question ${i}` }] }
  })
).join("\n")

// the jobs, their workflow engine in memory, a store in memory, and the simulated API
const TestJobs = Layer.mergeAll(Jobs.layer, Jobs.layerWorkflow).pipe(
  Layer.provideMerge(WorkflowEngine.layerMemory),
  Layer.provideMerge(SqliteClient.layer({ filename: ":memory:" })),
  Layer.provideMerge(Simulator.layer({ responder: Responder.transient(["request-42"]) }))
)

it.effect("a job of 3 batches retries what failed transiently and keeps input order", () =>
  Effect.gen(function* () {
    const jobs = yield* Jobs.Jobs
    const input = { name: "in.jsonl", bytes: Stream.make(new TextEncoder().encode(jsonl)) }
    const { id } = yield* jobs.submit([input], { maxRequests: 100 })
    yield* jobs.start(id)
    const waiting = yield* Effect.fork(jobs.await(id))
    for (let minute = 0; minute < 60; minute++) yield* TestClock.adjust("1 minute") // hours of batches, in no time
    const done = yield* Fiber.join(waiting)
    const lines = Chunk.toArray(yield* Stream.runCollect(jobs.results(id)))
    expect(done.requests.succeeded).toBe(250)
    expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: 250 }, (_, i) => `request-${i}`))
    expect(lines[42]).toMatchObject({ outcome: "succeeded", attempts: 2 })
  }).pipe(Effect.provide(TestJobs))
)
