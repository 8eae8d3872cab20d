import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Stream, TestClock } from "effect"
import { HttpClient } from "@effect/platform"
import { BatchConfig, BatchLine, BatchService, FileService } from "../src/index.js"
import { Responder, Simulator } from "../src/testing/index.js"

const line = (i: number, overrides: Record<string, unknown> = {}) =>
  JSON.stringify({
    custom_id: `request-${i}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "gpt-4o-mini", messages: [{ role: "user", content: `question ${i}` }] },
    ...overrides
  })

const jsonl = (n: number) => `${Array.from({ length: n }, (_, i) => line(i)).join("\n")}\n`

const services = Effect.all({
  batches: BatchService.BatchService,
  files: FileService.FileService,
  sim: Simulator.Simulator
})

/** Uploads `text` and creates a batch from it. */
const submit = (text: string, endpoint: `/v1/${string}` = "/v1/chat/completions") =>
  Effect.gen(function* () {
    const { batches, files } = yield* services
    const file = yield* files.upload(FileService.fromBytes("input.jsonl", text))
    return yield* batches.create({ input_file_id: file.id, endpoint })
  })

const outcomes = (batch: FileService.ResultsOf) =>
  Effect.flatMap(FileService.FileService, (files) => Stream.runCollect(files.results(batch))).pipe(
    Effect.map(Chunk.toArray)
  )

describe("Simulator, driven by TestClock", () => {
  it.effect("takes an upload sent as form data (a Blob source) like one sent as a stream", () =>
    Effect.gen(function* () {
      const { files } = yield* services
      const text = jsonl(3)
      const file = yield* files.upload({
        filename: "blob.jsonl",
        stream: Stream.die("the Blob is sent instead"),
        blob: Effect.succeed(new Blob([text]))
      })
      expect([file.filename, file.bytes, file.purpose]).toEqual(["blob.jsonl", text.length, "batch"])
      const stored = yield* Stream.runCollect(files.content(file.id)).pipe(
        Effect.map((c) => Buffer.concat(Chunk.toArray(c)).toString())
      )
      expect(stored).toBe(text)
    }).pipe(Effect.provide(Simulator.layer()))
  )

  it.effect("a 10,000-line batch runs to completed and every line comes back typed", () =>
    Effect.gen(function* () {
      const { batches } = yield* services
      const created = yield* submit(jsonl(10_000))
      expect(created.status).toBe("validating")
      yield* TestClock.adjust("2 hours")
      const done = yield* batches.retrieve(created.id)
      expect(done.status).toBe("completed")
      expect(done.request_counts).toEqual({ total: 10_000, completed: 10_000, failed: 0 })
      expect(done.usage?.total_tokens).toBeGreaterThan(0)
      const all = yield* outcomes(done)
      expect(all.length).toBe(10_000)
      expect(new Set(all.map((o) => o.customId)).size).toBe(10_000)
      expect(all.every((o) => o._tag === "Succeeded")).toBe(true)
      // the output file is not in input order, as the API warns
      expect(all.slice(0, 5).map((o) => o.customId)).not.toEqual([
        "request-0",
        "request-1",
        "request-2",
        "request-3",
        "request-4"
      ])
    }).pipe(Effect.provide(Simulator.layer({ requestsPerSecond: 50 })))
  )

  it.effect(
    "goes validating → in_progress (counts advancing) → finalizing → completed with a batch_output file",
    () =>
      Effect.gen(function* () {
        const { batches, files } = yield* services
        const created = yield* submit(jsonl(100))
        const seen: Array<string> = []
        for (let t = 0; t < 40; t++) {
          const b = yield* batches.retrieve(created.id)
          seen.push(`${b.status}:${b.request_counts?.completed}`)
          yield* TestClock.adjust("1 second")
        }
        const statuses = [...new Set(seen.map((s) => s.split(":")[0]))]
        expect(statuses).toEqual(["validating", "in_progress", "finalizing", "completed"])
        expect(seen).toContain("in_progress:50")
        const done = yield* batches.retrieve(created.id)
        expect(done.in_progress_at).toBeTypeOf("number")
        expect(done.expires_at).toBe(done.created_at + 86400)
        expect(done.finalizing_at).toBeTypeOf("number")
        expect(done.completed_at).toBeTypeOf("number")
        expect(done.error_file_id).toBeNull()
        const output = yield* files.retrieve(done.output_file_id!)
        expect(output.purpose).toBe("batch_output")
      }).pipe(Effect.provide(Simulator.layer()))
  )

  it.effect("files.stream returns every file across pages, once each", () =>
    Effect.gen(function* () {
      const { files } = yield* services
      for (let i = 0; i < 5; i++) yield* files.upload(FileService.fromBytes(`f${i}.jsonl`, jsonl(1)))
      const ids = Chunk.toArray(yield* Stream.runCollect(files.stream({ limit: 2, order: "asc" }))).map(
        (f) => f.filename
      )
      expect(ids).toEqual(["f0.jsonl", "f1.jsonl", "f2.jsonl", "f3.jsonl", "f4.jsonl"])
    }).pipe(Effect.provide(Simulator.layer()))
  )

  it.effect("validation failures end the batch failed with errors.data naming each line", () =>
    Effect.gen(function* () {
      const { batches } = yield* services
      const cases: Array<[string, string, number | null]> = [
        [`${line(0)}\n{not json\n`, "invalid_json_line", 2],
        [`${line(0)}\n${line(0)}\n`, "duplicate_custom_id", 2],
        [`${line(0)}\n${line(1, { url: "/v1/embeddings" })}\n`, "url_mismatch", 2],
        [`${line(0)}\n${line(1, { body: { model: "gpt-4o", messages: [] } })}\n`, "model_mismatch", 2],
        ["", "empty_file", null],
        [`${line(0)}\n\n${line(1)}\n`, "invalid_json_line", 2],
        [`\uFEFF${line(0)}\n`, "invalid_json_line", 1],
        [`${line(0)}\r\n${line(1, { url: "/v1/embeddings" })}\r\n`, "url_mismatch", 2]
      ]
      for (const [text, code, lineNo] of cases) {
        const created = yield* submit(text)
        yield* TestClock.adjust("1 minute")
        const failed = yield* batches.retrieve(created.id)
        expect(failed.status).toBe("failed")
        expect(failed.failed_at).toBeTypeOf("number")
        expect(failed.errors?.data?.[0]?.code).toBe(code)
        expect(failed.errors?.data?.[0]?.line ?? null).toBe(lineNo)
        expect(failed.output_file_id ?? null).toBeNull()
      }
    }).pipe(Effect.provide(Simulator.layer()))
  )

  it.effect("more than 50,000 lines fail validation with too_many_tasks", () =>
    Effect.gen(function* () {
      const { batches } = yield* services
      const text = `${Array.from({ length: 50_001 }, (_, i) => `{"custom_id":"r${i}","method":"POST","url":"/v1/embeddings","body":{"model":"e","input":"x"}}`).join("\n")}\n`
      const created = yield* submit(text, "/v1/embeddings")
      yield* TestClock.adjust("1 minute")
      const failed = yield* batches.retrieve(created.id)
      expect(failed.status).toBe("failed")
      expect(failed.errors?.data?.map((e) => e.code)).toEqual(["too_many_tasks"])
    }).pipe(Effect.provide(Simulator.layer()))
  )

  it.effect("lines the responder fails land in the error file with their status and error body", () =>
    Effect.gen(function* () {
      const { batches } = yield* services
      const created = yield* submit(jsonl(20))
      yield* TestClock.adjust("1 hour")
      const done = yield* batches.retrieve(created.id)
      expect(done.request_counts).toEqual({ total: 20, completed: 18, failed: 2 })
      const all = yield* outcomes(done)
      const failed = all.filter((o): o is BatchLine.Failed => o._tag === "Failed")
      expect(failed.map((o) => o.customId).sort()).toEqual(["request-3", "request-7"])
      expect(failed[0]?.statusCode).toBe(400)
      expect(failed[0]?.error?.param).toBe("max_tokens")
    }).pipe(
      Effect.provide(
        Simulator.layer({
          responder: Responder.failing(["request-3", "request-7"], {
            error: {
              message: "max_tokens is too large",
              type: "invalid_request_error",
              param: "max_tokens",
              code: "invalid_value"
            }
          })
        })
      )
    )
  )

  it.effect(
    "when every line fails, the batch completes with output_file_id null and only an error file",
    () =>
      Effect.gen(function* () {
        const { batches } = yield* services
        const created = yield* submit(jsonl(5))
        yield* TestClock.adjust("1 hour")
        const done = yield* batches.retrieve(created.id)
        expect(done.status).toBe("completed")
        expect(done.output_file_id).toBeNull()
        expect(done.error_file_id).toBeTypeOf("string")
        const all = yield* outcomes(done)
        expect(all.map((o) => o._tag)).toEqual(["Failed", "Failed", "Failed", "Failed", "Failed"])
        expect(all.every((o) => o._tag === "Failed" && o.statusCode === 500)).toBe(true)
      }).pipe(Effect.provide(Simulator.layer({ responder: Responder.failing(() => true, { status: 500 }) })))
  )

  it.effect("cancel: cancelling, then cancelled; finished lines kept, the rest batch_cancelled", () =>
    Effect.gen(function* () {
      const { batches } = yield* services
      const created = yield* submit(jsonl(100))
      yield* TestClock.adjust("15 seconds") // validated at 10 s, 10 lines a second: 50 done
      const cancelling = yield* batches.cancel(created.id)
      expect(cancelling.status).toBe("cancelling")
      expect(cancelling.cancelling_at).toBeTypeOf("number")
      yield* TestClock.adjust("1 minute")
      const cancelled = yield* batches.retrieve(created.id)
      expect(cancelled.status).toBe("cancelled")
      expect(cancelled.cancelled_at).toBeTypeOf("number")
      const all = yield* outcomes(cancelled)
      expect(all.length).toBe(100)
      expect(all.filter((o) => o._tag === "Succeeded").length).toBe(50)
      expect(all.filter((o) => o._tag === "Cancelled").length).toBe(50)
      const conflict = yield* Effect.flip(batches.cancel(created.id))
      expect(conflict._tag).toBe("Conflict")
      expect(conflict.message).toBe("Cannot cancel a batch with status 'cancelled'.")
    }).pipe(Effect.provide(Simulator.layer()))
  )

  it.effect(
    "a batch still running after 24 h ends expired: finished results kept, the rest batch_expired",
    () =>
      Effect.gen(function* () {
        const { batches } = yield* services
        const created = yield* submit(jsonl(1000))
        yield* TestClock.adjust("23 hours")
        expect((yield* batches.retrieve(created.id)).status).toBe("in_progress")
        yield* TestClock.adjust("2 hours")
        const expired = yield* batches.retrieve(created.id)
        expect(expired.status).toBe("expired")
        expect(expired.expired_at).toBe(expired.created_at + 86400)
        const all = yield* outcomes(expired)
        expect(all.length).toBe(1000)
        const kept = all.filter((o) => o._tag === "Succeeded").length
        expect(kept).toBe(Math.floor((86400 - 10) / 100)) // one line per 100 s after 10 s of validation
        expect(all.filter((o) => o._tag === "Expired").length).toBe(1000 - kept)
        expect(expired.request_counts?.completed).toBe(kept)
      }).pipe(Effect.provide(Simulator.layer({ requestsPerSecond: 0.01 })))
  )

  it.effect("faults: a 429 with a delay is waited out; a quota 429 is not retried", () =>
    Effect.gen(function* () {
      const { batches, sim } = yield* services
      const created = yield* submit(jsonl(1))
      yield* sim.inject("batches.retrieve", Simulator.rateLimited({ retryAfter: "3 seconds" }))
      const fiber = yield* Effect.fork(batches.retrieve(created.id))
      yield* TestClock.adjust("3 seconds")
      expect((yield* Fiber.join(fiber)).id).toBe(created.id)
      yield* sim.inject("batches.list", Simulator.rateLimited({ quota: true }))
      const quota = yield* Effect.flip(batches.list())
      expect(quota._tag === "RateLimited" && quota.isQuota).toBe(true)
      const requests = yield* sim.requests
      expect(requests.filter((r) => r.path === "/v1/batches").length).toBe(2) // the create and the one list
    }).pipe(Effect.provide(Simulator.layer()))
  )

  it.effect("faults: a reset after the server acted leaves exactly one batch", () =>
    Effect.gen(function* () {
      const { batches, files, sim } = yield* services
      const file = yield* files.upload(FileService.fromBytes("input.jsonl", jsonl(3)))
      yield* sim.inject("batches.create", Simulator.resetAfter)
      const fiber = yield* Effect.fork(
        batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions" })
      )
      yield* TestClock.adjust("10 seconds")
      const batch = yield* Fiber.join(fiber)
      const all = yield* sim.batches
      expect(all.map((b) => b.id)).toEqual([batch.id])
    }).pipe(Effect.provide(Simulator.layer()))
  )

  it.effect("faults: 5xx bursts, resets before, slow answers and cut bodies", () =>
    Effect.gen(function* () {
      const { batches, sim } = yield* services
      const created = yield* submit(jsonl(1))
      // two 503s are within the default budget of two retries
      yield* sim.inject("batches.retrieve", Simulator.serverError(503), 2)
      const f1 = yield* Effect.fork(batches.retrieve(created.id))
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(f1)).id).toBe(created.id)
      // three are not
      yield* sim.inject("batches.retrieve", Simulator.serverError(503), 3)
      const f2 = yield* Effect.fork(Effect.flip(batches.retrieve(created.id)))
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(f2))._tag).toBe("ServerError")
      yield* sim.inject("batches.retrieve", Simulator.resetBefore)
      const f3 = yield* Effect.fork(batches.retrieve(created.id))
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(f3)).id).toBe(created.id)
      // slower than the 30 s timeout: the attempt times out and the retry succeeds
      yield* sim.inject("batches.retrieve", Simulator.slow("1 minute"))
      const f4 = yield* Effect.fork(batches.retrieve(created.id))
      yield* TestClock.adjust("31 seconds")
      expect((yield* Fiber.join(f4)).id).toBe(created.id)
      // a body cut midway is a transport failure, retried like one
      yield* sim.inject("batches.retrieve", Simulator.truncatedBody)
      const f5 = yield* Effect.fork(batches.retrieve(created.id))
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(f5)).id).toBe(created.id)
      yield* sim.inject("batches.retrieve", Simulator.truncatedBody, 3)
      const f6 = yield* Effect.fork(Effect.flip(batches.retrieve(created.id)))
      yield* TestClock.adjust("10 seconds")
      const cut = yield* Fiber.join(f6)
      expect(cut._tag === "TransportError" && cut.reason).toBe("Body")
    }).pipe(Effect.provide(Simulator.layer({ config: { timeout: "30 seconds" } })))
  )

  it.effect("a wrong key is a 401, and the simulator's layer pieces compose by hand", () =>
    Effect.gen(function* () {
      const client = Layer.effect(
        HttpClient.HttpClient,
        Effect.map(Simulator.Simulator, Simulator.httpClient)
      )
      const wrongKey = BatchService.layer.pipe(
        Layer.provide(client),
        Layer.provide(BatchConfig.layer({ apiKey: "sk-wrong", baseUrl: "http://sim.invalid/v1" })),
        Layer.provide(Simulator.layerSimulator({ apiKey: "sk-right" }))
      )
      const error = yield* Effect.flip(Effect.flatMap(BatchService.BatchService, (b) => b.list())).pipe(
        Effect.provide(wrongKey)
      )
      expect(error._tag).toBe("AuthenticationError")
      expect(error.message).not.toContain("sk-wrong")
    })
  )
})

describe("watchMany over the simulator", () => {
  it.effect(
    "follows a set from list pages, retrieves the ones pages do not reach, and ends when all have ended",
    () =>
      Effect.gen(function* () {
        const { batches, sim } = yield* services
        const old = yield* submit(jsonl(3))
        yield* TestClock.adjust("1 second")
        // 110 newer batches push `old` past the first page: it is retrieved, the rest are listed
        const newer: Array<string> = []
        for (let i = 0; i < 110; i++) newer.push((yield* submit(jsonl(1 + (i % 4)))).id)
        const watched = [old.id, ...newer.slice(-30)]
        const before = (yield* sim.requests).length
        const fiber = yield* Effect.fork(Stream.runCollect(batches.watchMany(watched)))
        yield* TestClock.adjust("1 hour")
        const snapshots = Chunk.toArray(yield* Fiber.join(fiber))
        const final = new Map(snapshots.map((b) => [b.id, b.status]))
        expect([...final.keys()].sort()).toEqual([...watched].sort())
        expect(new Set(final.values())).toEqual(new Set(["completed"]))
        const traffic = (yield* sim.requests).slice(before)
        const retrieves = traffic.filter((r) => r.path.startsWith("/v1/batches/")).map((r) => r.path)
        // ⌈31/100⌉ = 1 list page a cycle covers the 30 newest; `old`, 111th newest, is retrieved
        expect(new Set(retrieves)).toEqual(new Set([`/v1/batches/${old.id}`]))
        const one = yield* batches.snapshots([newer.at(-1)!, old.id])
        expect(one.batches.map((b) => b.id)).toEqual([newer.at(-1), old.id])
        expect([one.listRequests, one.retrieveRequests]).toEqual([1, 1])
      }).pipe(Effect.provide(Simulator.layer())),
    { timeout: 60_000 }
  )

  it.effect("'unfinished' watches every batch not yet ended", () =>
    Effect.gen(function* () {
      const { batches } = yield* services
      const done = yield* submit(jsonl(1))
      yield* TestClock.adjust("1 hour")
      const running = [yield* submit(jsonl(2)), yield* submit(jsonl(3))]
      const fiber = yield* Effect.fork(Stream.runCollect(batches.watchMany("unfinished")))
      yield* TestClock.adjust("1 hour")
      const ids = new Set(Chunk.toArray(yield* Fiber.join(fiber)).map((b) => b.id))
      expect(ids).toEqual(new Set(running.map((b) => b.id)))
      expect(ids.has(done.id)).toBe(false)
    }).pipe(Effect.provide(Simulator.layer()))
  )
})

describe("what jobs meet: token limits, transient failures, usage", () => {
  it.effect(
    "a batch over its model's enqueued-token limit fails with token_limit_exceeded; one fits once the others end",
    () =>
      Effect.gen(function* () {
        const { batches } = yield* services
        // each line is about 19 tokens (75 characters / 4): 30 lines ≈ 570
        const first = yield* submit(jsonl(30))
        yield* TestClock.adjust("11 seconds")
        const second = yield* submit(jsonl(30))
        yield* TestClock.adjust("11 seconds")
        const refused = yield* batches.retrieve(second.id)
        expect(refused.status).toBe("failed")
        expect(refused.errors?.data?.[0]).toMatchObject({ code: "token_limit_exceeded", line: null })
        expect(refused.errors?.data?.[0]?.message).toContain("Enqueued token limit reached for gpt-4o-mini")
        expect(refused.request_counts).toEqual(expect.objectContaining({ total: 0, completed: 0 }))
        yield* TestClock.adjust("1 minute")
        expect((yield* batches.retrieve(first.id)).status).toBe("completed")
        const third = yield* submit(jsonl(30))
        yield* TestClock.adjust("1 minute")
        expect((yield* batches.retrieve(third.id)).status).toBe("completed")
      }).pipe(Effect.provide(Simulator.layer({ enqueuedTokenLimits: { "gpt-4o-mini": 1000 } })))
  )

  it.effect("a transient line fails on its first attempt only; usage sums the lines' usage", () =>
    Effect.gen(function* () {
      const { batches } = yield* services
      const once = yield* submit(jsonl(5))
      yield* TestClock.adjust("1 minute")
      const done = yield* batches.retrieve(once.id)
      const firstRun = yield* outcomes(done)
      expect(
        firstRun
          .filter((o) => o._tag === "Failed")
          .map((o) => [o.customId, (o as BatchLine.Failed).statusCode])
      ).toEqual([["request-3", 500]])
      const tokens = firstRun
        .filter((o): o is BatchLine.Succeeded => o._tag === "Succeeded")
        .map((o) => BatchLine.tokenUsage(o.body))
      expect(done.usage?.input_tokens).toBe(tokens.reduce((n, t) => n + t.input, 0))
      expect(done.usage?.output_tokens).toBe(tokens.reduce((n, t) => n + t.output, 0))
      const again = yield* submit(jsonl(5))
      yield* TestClock.adjust("1 minute")
      const secondRun = yield* outcomes(yield* batches.retrieve(again.id))
      expect(secondRun.every((o) => o._tag === "Succeeded")).toBe(true)
    }).pipe(Effect.provide(Simulator.layer({ responder: Responder.transient(["request-3"]) })))
  )
})
