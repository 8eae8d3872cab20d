import { Responder, Simulator } from "@batchkit/core/testing"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import * as WorkflowEngine from "@effect/workflow/WorkflowEngine"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Layer, Stream, TestClock } from "effect"
import { Jobs } from "../src/index.js"
import * as Store from "../src/internal/store.js"

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

const layer = (options: Simulator.Options = {}, workflow = Jobs.layerWorkflow) =>
  Layer.mergeAll(Jobs.layer, workflow).pipe(
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

  it.effect(
    "a collect cut midway counts no attempt twice; results come in input order whatever order the store got them in; a result lost is an error",
    () =>
      Effect.gen(function* () {
        const jobs = yield* Jobs.Jobs
        const sql = yield* SqlClient.SqlClient
        const sim = yield* Simulator.Simulator
        // the first results download breaks after half of its 2,550 lines: runs of them are in
        // the store when the collect fails and runs again
        yield* sim.inject("files.content", Simulator.truncatedBody)
        const submitted = yield* jobs.submit([input("a.jsonl", 0, 5_100)], { maxRequests: 2_550 })
        yield* jobs.start(submitted.id)
        yield* finish(submitted.id)
        const downloads = (yield* sim.requests).filter(
          (r) => r.method === "GET" && r.path.endsWith("/content")
        )
        expect(downloads.length).toBe(3)
        const before = Chunk.toArray(yield* Stream.runCollect(jobs.results(submitted.id)))
        expect(before.map((l) => l.custom_id)).toEqual(Array.from({ length: 5_100 }, (_, i) => `req-${i}`))
        expect(before.every((l) => l.attempts === 1 && l.outcome === "succeeded")).toBe(true)
        // stored again backwards: the table's own order is no help
        yield* sql`CREATE TABLE saved AS SELECT * FROM batchkit_results`
        yield* sql`DELETE FROM batchkit_results`
        yield* sql`INSERT INTO batchkit_results SELECT * FROM saved ORDER BY idx DESC`
        const again = Chunk.toArray(yield* Stream.runCollect(jobs.results(submitted.id)))
        expect(again).toEqual(before)
        yield* sql`DELETE FROM batchkit_results WHERE idx = 5050`
        const exit = yield* Effect.exit(Stream.runDrain(jobs.resultsJsonl(submitted.id)))
        expect(Exit.isFailure(exit) && String(Exit.isFailure(exit) ? exit.cause : "")).toContain(
          "the store has no result for request 5050"
        )
      }).pipe(Effect.provide(layer({}, Jobs.layerWorkflowWith({ collectBuffer: 100_000 }))))
  )

  it.effect("a store made before results named their batch gains the column when opened", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE batchkit_results (job_id TEXT NOT NULL, idx INTEGER NOT NULL, custom_id TEXT NOT NULL,
        outcome TEXT NOT NULL, retryable INTEGER NOT NULL, attempts INTEGER NOT NULL, record BLOB NOT NULL,
        input_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER NOT NULL, PRIMARY KEY (job_id, idx))`
      yield* sql`INSERT INTO batchkit_results VALUES ('j', 0, 'a', 'succeeded', 0, 1, x'7b7d0a', 1, 0, 1, 0)`
      const store = yield* Effect.provide(Store.Store, Store.layer)
      expect(
        (yield* sql<{ name: string }>`PRAGMA table_info(batchkit_results)`).map((c) => c.name)
      ).toContain("batch_id")
      expect(yield* store.results("j", [0])).toEqual([{ idx: 0, attempts: 1, batch_id: null }])
      // opening it again finds the column there
      yield* Effect.provide(Store.Store, Store.layer)
    }).pipe(Effect.provide(SqliteClient.layer({ filename: ":memory:" })))
  )

  it.effect("retry rounds resend what failed transiently; the results say how many attempts each took", () =>
    Effect.gen(function* () {
      const jobs = yield* Jobs.Jobs
      // run: submit, start and await in one
      const running = yield* Effect.fork(jobs.run([input("a.jsonl", 0, 20)]))
      for (let i = 0; i < 200 && running.unsafePoll() === null; i++) yield* TestClock.adjust("1 minute")
      const done = yield* Fiber.join(running)
      const submitted = { id: done.id }
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

  it.effect(
    "a shard the API refuses over the enqueued-token limit is requeued and goes once capacity frees; not an attempt",
    () =>
      Effect.gen(function* () {
        const jobs = yield* Jobs.Jobs
        const sim = yield* Simulator.Simulator
        // each line ≈ 19 tokens: a shard of 50 ≈ 950; two do not fit under 1,500
        const submitted = yield* jobs.submit([input("a.jsonl", 0, 150)], { maxRequests: 50 })
        yield* jobs.start(submitted.id)
        const done = yield* finish(submitted.id)
        expect(done.requests).toMatchObject({ total: 150, succeeded: 150 })
        const lines = Chunk.toArray(yield* Stream.runCollect(jobs.results(submitted.id)))
        expect(lines.every((l) => l.attempts === 1)).toBe(true)
        const batches = yield* sim.batches
        const refused = batches.filter((b) => b.status === "failed")
        expect(refused.length).toBeGreaterThan(0)
        expect(refused[0]?.errors).toMatchObject({ data: [{ code: "token_limit_exceeded" }] })
        expect(batches.filter((b) => b.status === "completed").length).toBe(3)
        expect(done.batches).toMatchObject({ completed: 3 })
      }).pipe(Effect.provide(layer({ enqueuedTokenLimits: { "gpt-4o-mini": 1500 } })))
  )

  it.effect("with maxEnqueuedTokens the shards wait for room and none is refused", () =>
    Effect.gen(function* () {
      const jobs = yield* Jobs.Jobs
      const sim = yield* Simulator.Simulator
      const submitted = yield* jobs.submit([input("a.jsonl", 0, 150)], {
        maxRequests: 50,
        maxEnqueuedTokens: 1500
      })
      yield* jobs.start(submitted.id)
      const done = yield* finish(submitted.id)
      expect(done.requests.succeeded).toBe(150)
      expect((yield* sim.batches).map((b) => b.status)).toEqual(["completed", "completed", "completed"])
    }).pipe(Effect.provide(layer({ enqueuedTokenLimits: { "gpt-4o-mini": 1500 } })))
  )

  it.effect(
    "an expired batch's finished results are kept and the rest retried; a job cancelled keeps what came back",
    () =>
      Effect.gen(function* () {
        const jobs = yield* Jobs.Jobs
        // 300 requests at 10 a second take 30 s: the 20 s window closes on them
        const expiring = yield* jobs.submit([input("a.jsonl", 0, 300)], { retries: 1 })
        yield* jobs.start(expiring.id)
        const done = yield* finish(expiring.id)
        const lines = Chunk.toArray(yield* Stream.runCollect(jobs.results(expiring.id)))
        expect(lines.length).toBe(300)
        expect(lines[0]).toMatchObject({ outcome: "succeeded", attempts: 1 })
        expect(lines.at(-1)).toMatchObject({ attempts: 2 })
        expect(done.requests.expired + done.requests.succeeded).toBe(300)
        expect(done.requests.succeeded).toBeGreaterThan(100)
      }).pipe(Effect.provide(layer({ completionWindow: "20 seconds", validationDelay: "1 second" })))
  )

  it.effect(
    "a cancelled job cancels its batches, keeps their partial results and writes a line per request",
    () =>
      Effect.gen(function* () {
        const jobs = yield* Jobs.Jobs
        const submitted = yield* jobs.submit([input("a.jsonl", 0, 600)], { maxRequests: 200, concurrency: 1 })
        yield* jobs.start(submitted.id)
        yield* TestClock.adjust("15 seconds")
        yield* jobs.cancel(submitted.id)
        const done = yield* finish(submitted.id)
        expect(done.status).toBe("cancelled")
        const lines = Chunk.toArray(yield* Stream.runCollect(jobs.results(submitted.id)))
        expect(lines.length).toBe(600)
        expect(lines.some((l) => l.outcome === "succeeded")).toBe(true)
        expect(lines.some((l) => l.outcome === "cancelled")).toBe(true)
        expect(lines.every((l) => l.outcome === "succeeded" || l.outcome === "cancelled")).toBe(true)
        const sim = yield* Simulator.Simulator
        expect((yield* sim.batches).every((b) => b.status === "cancelled" || b.status === "completed")).toBe(
          true
        )
      }).pipe(Effect.provide(layer()))
  )

  it.effect("planning reports every problem with its file and line and records nothing", () =>
    Effect.gen(function* () {
      const jobs = yield* Jobs.Jobs
      const bad = {
        name: "b.jsonl",
        bytes: Stream.succeed(new TextEncoder().encode(`${line(1)}\n{oops\n${line(5)}\n`))
      }
      const error = yield* Effect.flip(jobs.submit([input("a.jsonl", 0, 3), bad]))
      expect(error._tag).toBe("PlanError")
      expect(error.message).toContain(
        `b.jsonl:1: custom_id "req-1" is used more than once (first at a.jsonl:2)`
      )
      expect(error.message).toContain("b.jsonl:2: not valid JSON")
      expect(yield* jobs.list).toEqual([])
      const sim = yield* Simulator.Simulator
      expect(yield* sim.requests).toEqual([])
    }).pipe(Effect.provide(layer()))
  )
})
