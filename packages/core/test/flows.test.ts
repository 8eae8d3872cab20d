import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, Schedule, Stream, TestClock } from "effect"
import { BatchService, FileService } from "../src/index.js"
import {
  batchJson,
  errorJson,
  type Handler,
  makeFakeApi,
  makeMock,
  type Reply,
  servicesLayer
} from "./support/mock.js"

const withServices = <A, E>(
  handle: Handler,
  f: (s: { batches: BatchService.Service; files: FileService.Service }) => Effect.Effect<A, E>,
  options: Parameters<typeof servicesLayer>[1] = {}
) => {
  const mock = makeMock(handle)
  return Effect.gen(function* () {
    const result = yield* f({
      batches: yield* BatchService.BatchService,
      files: yield* FileService.FileService
    })
    return { result, requests: mock.requests }
  }).pipe(Effect.provide(servicesLayer(mock, options)))
}

const params = { input_file_id: "file-1", endpoint: "/v1/chat/completions" } as const

/** A batch created in the fake API directly, as if by an earlier client. */
const seedBatch = (fake: ReturnType<typeof makeFakeApi>) =>
  fake.handle({
    method: "POST",
    path: "/v1/batches",
    query: {},
    headers: {},
    body: JSON.stringify(params),
    at: 0
  })

describe("idempotent create", () => {
  /** The server acts on the first create, then the answer is lost in the way given. */
  const losesFirstAnswer = (loss: Reply) => {
    const fake = makeFakeApi()
    let creates = 0
    const handle: Handler = (r) => {
      if (r.method === "POST" && r.path === "/v1/batches" && creates++ === 0) {
        fake.handle(r)
        return loss
      }
      return fake.handle(r)
    }
    return { fake, handle }
  }

  for (const [name, loss] of [
    ["a reset", { reset: "after" }],
    ["a 500", { status: 500, json: errorJson("The server had an error", "server_error") }],
    ["a timeout", { hang: true }]
  ] as Array<[string, Reply]>) {
    it.effect(
      `after ${name} that came after the server made the batch, the retry finds it and makes no second`,
      () =>
        Effect.gen(function* () {
          const { fake, handle } = losesFirstAnswer(loss)
          const fiber = yield* withServices(handle, ({ batches }) => batches.create(params), {
            timeout: "10 seconds"
          }).pipe(Effect.fork)
          yield* TestClock.adjust("1 minute")
          const { result, requests } = yield* Fiber.join(fiber)
          expect(fake.batches.length).toBe(1)
          expect(result.id).toBe(fake.batches[0]?.id)
          expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([
            "POST /v1/batches",
            "GET /v1/batches"
          ])
          expect(result.metadata?.[BatchService.idempotencyMetadataKey]).toBeTypeOf("string")
        })
    )
  }

  it.effect("when the server never got the request, the retry creates exactly one", () =>
    Effect.gen(function* () {
      const fake = makeFakeApi()
      let creates = 0
      const handle: Handler = (r) =>
        r.method === "POST" && r.path === "/v1/batches" && creates++ === 0
          ? { reset: "before" }
          : fake.handle(r)
      const fiber = yield* withServices(handle, ({ batches }) => batches.create(params)).pipe(Effect.fork)
      yield* TestClock.adjust("1 minute")
      const { requests } = yield* Fiber.join(fiber)
      expect(fake.batches.length).toBe(1)
      expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        "POST /v1/batches",
        "GET /v1/batches",
        "POST /v1/batches"
      ])
    })
  )

  it.effect("with no retries left, a lost answer is still found rather than reported as a failure", () =>
    Effect.gen(function* () {
      const { fake, handle } = losesFirstAnswer({ reset: "after" })
      const { result } = yield* withServices(handle, ({ batches }) => batches.create(params), {
        maxRetries: 0
      })
      expect(result.id).toBe(fake.batches[0]?.id)
      expect(fake.batches.length).toBe(1)
    })
  )

  it.effect("a caller's own key finds a batch made by an earlier run", () =>
    Effect.gen(function* () {
      const fake = makeFakeApi()
      const first = yield* withServices(fake.handle, ({ batches }) =>
        batches.create(params, { idempotencyKey: "nightly-2026-11-25" })
      )
      expect(first.result.metadata?.batchkit_idempotency_key).toBe("nightly-2026-11-25")
      expect(fake.batches.length).toBe(1)
    })
  )

  it.effect("a rate-limited create is retried without a lookup (the server did not act)", () =>
    Effect.gen(function* () {
      const fake = makeFakeApi()
      let creates = 0
      const handle: Handler = (r) =>
        r.method === "POST" && creates++ === 0
          ? { status: 429, json: errorJson("slow", "requests"), headers: { "retry-after-ms": "10" } }
          : fake.handle(r)
      const fiber = yield* withServices(handle, ({ batches }) => batches.create(params)).pipe(Effect.fork)
      yield* TestClock.adjust("1 second")
      const { requests } = yield* Fiber.join(fiber)
      expect(requests.map((r) => r.method)).toEqual(["POST", "POST"])
      expect(fake.batches.length).toBe(1)
    })
  )

  it.effect(
    "switched off, a retry after a lost answer makes a second batch (what the official SDKs do)",
    () =>
      Effect.gen(function* () {
        const { fake, handle } = losesFirstAnswer({ reset: "after" })
        const fiber = yield* withServices(handle, ({ batches }) => batches.create(params), {
          idempotentCreate: false
        }).pipe(Effect.fork)
        yield* TestClock.adjust("1 minute")
        yield* Fiber.join(fiber)
        expect(fake.batches.length).toBe(2)
      })
  )
})

describe("stream", () => {
  it.effect("returns every batch across pages exactly once, using the last id as the cursor", () =>
    Effect.gen(function* () {
      const fake = makeFakeApi()
      for (let i = 0; i < 250; i++) seedBatch(fake)
      const { result, requests } = yield* withServices(fake.handle, ({ batches }) =>
        Stream.runCollect(batches.stream({ limit: 100 }))
      )
      const ids = Chunk.toArray(result).map((b) => b.id)
      expect(ids.length).toBe(250)
      expect(new Set(ids).size).toBe(250)
      expect(requests.map((r) => r.query)).toEqual([
        { limit: "100" },
        { limit: "100", after: ids[99] },
        { limit: "100", after: ids[199] }
      ])
    })
  )

  it.effect("fails with a typed error when the cursor does not advance", () =>
    Effect.gen(function* () {
      const page = {
        object: "list",
        data: [batchJson("batch_a"), batchJson("batch_b")],
        first_id: "batch_a",
        last_id: "batch_b",
        has_more: true
      }
      const { result, requests } = yield* withServices(
        () => ({ status: 200, json: page }),
        ({ batches }) => Effect.flip(Stream.runDrain(batches.stream()))
      )
      expect(result._tag).toBe("ResponseDecodeError")
      expect(result.message).toContain("did not advance")
      expect(requests.length).toBe(2)
    })
  )

  it.effect("fails on a cursor cycle", () =>
    Effect.gen(function* () {
      const pages: Record<string, unknown> = {
        start: { object: "list", data: [batchJson("batch_a")], has_more: true },
        batch_a: { object: "list", data: [batchJson("batch_b")], has_more: true },
        batch_b: { object: "list", data: [batchJson("batch_a")], has_more: true }
      }
      const { result, requests } = yield* withServices(
        (r) => ({ status: 200, json: pages[r.query.after ?? "start"] }),
        ({ batches }) => Effect.flip(Stream.runDrain(batches.stream()))
      )
      expect(result._tag).toBe("ResponseDecodeError")
      expect(requests.length).toBe(3)
    })
  )
})

describe("watch", () => {
  const lifecycle = (steps: Array<Reply | Record<string, unknown>>) => {
    let n = 0
    return (() => {
      const step = steps[Math.min(n++, steps.length - 1)]!
      return "reset" in step || ("status" in step && typeof step.status === "number")
        ? (step as Reply)
        : { status: 200, json: batchJson("batch_1", step) }
    }) as Handler
  }
  const running = (completed: number) => ({
    status: "in_progress",
    request_counts: { total: 10, completed, failed: 0 }
  })
  const done = {
    status: "completed",
    output_file_id: "file-out",
    request_counts: { total: 10, completed: 10, failed: 0 }
  }

  it.effect("emits on every change of status or counts and ends after the terminal snapshot", () =>
    Effect.gen(function* () {
      const handle = lifecycle([
        { status: "validating" },
        { status: "validating" },
        running(0),
        running(5),
        running(5),
        { status: "finalizing", request_counts: { total: 10, completed: 10, failed: 0 } },
        done
      ])
      const fiber = yield* withServices(handle, ({ batches }) =>
        Stream.runCollect(batches.watch("batch_1"))
      ).pipe(Effect.fork)
      yield* TestClock.adjust("10 minutes")
      const { result, requests } = yield* Fiber.join(fiber)
      const snapshots = Chunk.toArray(result).map((b) => `${b.status}:${b.request_counts?.completed ?? 0}`)
      expect(snapshots).toEqual([
        "validating:0",
        "in_progress:0",
        "in_progress:5",
        "finalizing:10",
        "completed:10"
      ])
      expect(requests.length).toBe(7)
    })
  )

  it.effect(
    "polls at once, then about every second, backing off while nothing changes, never slower than a minute",
    () =>
      Effect.gen(function* () {
        const steps: Array<Record<string, unknown>> = [
          ...Array.from({ length: 20 }, () => running(1)),
          running(2),
          done
        ]
        const fiber = yield* withServices(lifecycle(steps), ({ batches }) => batches.await("batch_1")).pipe(
          Effect.fork
        )
        yield* TestClock.adjust("2 hours")
        const { result, requests } = yield* Fiber.join(fiber)
        expect(result.status).toBe("completed")
        const gaps = requests.slice(1).map((r, i) => r.at - requests[i]!.at)
        expect(requests[0]?.at).toBe(0)
        expect(gaps[0]).toBe(1000)
        expect(gaps[1]).toBeGreaterThan(1000)
        expect(Math.max(...gaps)).toBe(60_000)
        // the change at request 21 resets the cadence to a second
        expect(gaps[20]).toBe(1000)
      })
  )

  it.effect("takes a caller's Schedule", () =>
    Effect.gen(function* () {
      const fiber = yield* withServices(lifecycle([running(1), running(2), done]), ({ batches }) =>
        Stream.runCollect(batches.watch("batch_1", { schedule: Schedule.spaced("5 seconds") }))
      ).pipe(Effect.fork)
      yield* TestClock.adjust("1 minute")
      const { requests } = yield* Fiber.join(fiber)
      expect(requests.map((r) => r.at)).toEqual([0, 5000, 10000])
    })
  )

  it.effect("outlives ten transient failures in a row and still reports the terminal status", () =>
    Effect.gen(function* () {
      const failures: Array<Reply> = Array.from({ length: 10 }, (_, i) =>
        i % 2 === 0 ? { status: 503, text: "" } : { reset: "before" }
      )
      const fiber = yield* withServices(lifecycle([running(1), ...failures, done]), ({ batches }) =>
        batches.await("batch_1")
      ).pipe(Effect.fork)
      yield* TestClock.adjust("1 hour")
      const { result } = yield* Fiber.join(fiber)
      expect(result.status).toBe("completed")
    })
  )

  it.effect("tells onRetry of each retried poll: the error, which retry of how many, and when", () =>
    Effect.gen(function* () {
      // a server down for three polls (each with the request's own two retries)
      const failures: Array<Reply> = Array.from({ length: 3 * 3 }, () => ({ status: 503, text: "" }))
      const told: Array<string> = []
      const fiber = yield* withServices(lifecycle([running(1), ...failures, done]), ({ batches }) =>
        batches.await("batch_1", {
          onRetry: (r) =>
            Effect.sync(() => told.push(`${r.error._tag} ${r.attempt}/${r.of} ${Duration.toMillis(r.delay)}`))
        })
      ).pipe(Effect.fork)
      yield* TestClock.adjust("1 hour")
      const { result } = yield* Fiber.join(fiber)
      expect(result.status).toBe("completed")
      expect(told).toEqual(["ServerError 1/8 1000", "ServerError 2/8 2000", "ServerError 3/8 4000"])
    })
  )

  it.effect("fails with the typed error when the batch does not exist", () =>
    Effect.gen(function* () {
      const fiber = yield* withServices(
        () => ({ status: 404, json: errorJson("No batch") }),
        ({ batches }) => Effect.flip(batches.await("batch_x"))
      ).pipe(Effect.fork)
      yield* TestClock.adjust("1 minute")
      const { result, requests } = yield* Fiber.join(fiber)
      expect(result._tag).toBe("NotFound")
      expect(requests.length).toBe(1)
    })
  )

  it.effect("a cancel whose first answer was lost, retried into a 409, returns the batch it cancelled", () =>
    Effect.gen(function* () {
      const fake = makeFakeApi()
      seedBatch(fake)
      const id = fake.batches[0]!.id as string
      let cancels = 0
      const handle: Handler = (r) => {
        if (r.path.endsWith("/cancel") && cancels++ === 0) {
          fake.handle(r)
          // the server cancelled; before the retry arrives the batch has ended
          fake.batches[0]!.status = "cancelled"
          return { reset: "after" }
        }
        return fake.handle(r)
      }
      const fiber = yield* withServices(handle, ({ batches }) => batches.cancel(id)).pipe(Effect.fork)
      yield* TestClock.adjust("1 minute")
      const { result, requests } = yield* Fiber.join(fiber)
      expect(result.status).toBe("cancelled")
      expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        `POST /v1/batches/${id}/cancel`,
        `POST /v1/batches/${id}/cancel`,
        `GET /v1/batches/${id}`
      ])
    })
  )

  it.effect("cancel of an ended batch is one request and a Conflict", () =>
    Effect.gen(function* () {
      const fiber = yield* withServices(
        () => ({ status: 409, json: errorJson("Cannot cancel a batch with status 'completed'.") }),
        ({ batches }) => Effect.flip(batches.cancel("batch_1"))
      ).pipe(Effect.fork)
      yield* TestClock.adjust("1 minute")
      const { result, requests } = yield* Fiber.join(fiber)
      expect(result._tag).toBe("Conflict")
      expect(result.message).toContain("completed")
      expect(requests.length).toBe(1)
    })
  )
})

describe("results", () => {
  const out =
    '{"id":"r1","custom_id":"a","response":{"status_code":200,"request_id":"q1","body":{"ok":1}},"error":null}\n'
  const err =
    '{"id":"r2","custom_id":"b","response":{"status_code":400,"request_id":"q2","body":{"error":{"message":"bad","type":"invalid_request_error","param":"x","code":null}}},"error":null}\n' +
    '{"id":"r3","custom_id":"c","response":null,"error":{"code":"batch_expired","message":"expired"}}\n'
  const files: Handler = (r) =>
    r.path === "/v1/files/file-out/content"
      ? { status: 200, text: out }
      : r.path === "/v1/files/file-err/content"
        ? { status: 200, text: err }
        : undefined

  const names = (batch: FileService.ResultsOf, handle: Handler = files) =>
    withServices(handle, ({ files }) => Stream.runCollect(files.results(batch))).pipe(
      Effect.map(({ result, requests }) => ({
        outcomes: Chunk.toArray(result).map((o) => `${o.customId}:${o._tag}`),
        requests
      }))
    )

  it.effect("merges the output and the error file", () =>
    Effect.gen(function* () {
      const { outcomes } = yield* names({ output_file_id: "file-out", error_file_id: "file-err" })
      expect(outcomes).toEqual(["a:Succeeded", "b:Failed", "c:Expired"])
    })
  )

  it.effect("either file may be null, missing or empty", () =>
    Effect.gen(function* () {
      expect((yield* names({ output_file_id: null, error_file_id: "file-err" })).outcomes).toEqual([
        "b:Failed",
        "c:Expired"
      ])
      expect((yield* names({ output_file_id: "file-out", error_file_id: "" })).outcomes).toEqual([
        "a:Succeeded"
      ])
      const none = yield* names({})
      expect(none.outcomes).toEqual([])
      expect(none.requests).toEqual([])
    })
  )

  it.effect("takes a batch id and looks the batch up", () =>
    Effect.gen(function* () {
      const handle: Handler = (r) =>
        r.path === "/v1/batches/batch_1"
          ? {
              status: 200,
              json: batchJson("batch_1", {
                status: "completed",
                output_file_id: "file-out",
                error_file_id: "file-err"
              })
            }
          : files(r)
      const { outcomes } = yield* names("batch_1", handle)
      expect(outcomes.length).toBe(3)
    })
  )

  it.effect(
    "parses tens of MB of output in flat memory",
    () =>
      Effect.gen(function* () {
        const line = (i: number) =>
          `${JSON.stringify({ id: `batch_req_${i}`, custom_id: `request-${i}`, response: { status_code: 200, request_id: `req_${i}`, body: { object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: "x".repeat(400) } }] } }, error: null })}\n`
        const target = 80 * 1024 * 1024
        const encoder = new TextEncoder()
        const lineBytes = encoder.encode(line(0)).byteLength
        const lines = Math.ceil(target / lineBytes)
        const body = () => {
          let i = 0
          return new ReadableStream<Uint8Array>({
            pull(controller) {
              if (i >= lines) return controller.close()
              let text = ""
              for (let k = 0; k < 100 && i < lines; k++) text += line(i++)
              controller.enqueue(encoder.encode(text))
            }
          })
        }
        // --expose-gc is set in vitest.config.ts: collecting before each sample measures what is
        // retained, not the garbage V8 has not got round to yet
        const gc = (globalThis as { gc?: () => void }).gc
        if (gc === undefined) throw new Error("run with --expose-gc")
        gc()
        const before = process.memoryUsage().heapUsed
        let peak = before
        let count = 0
        yield* withServices(
          (r) => (r.path.endsWith("/content") ? { status: 200, body: body() } : undefined),
          ({ files }) =>
            files.results({ output_file_id: "file-big" }).pipe(
              Stream.runForEach((o) =>
                Effect.sync(() => {
                  count++
                  if (o._tag !== "Succeeded") throw new Error(`line ${count} is ${o._tag}`)
                  if (count % 10000 === 0) {
                    gc()
                    peak = Math.max(peak, process.memoryUsage().heapUsed)
                  }
                })
              )
            )
        )
        expect(count).toBe(lines)
        const growthMb = (peak - before) / 1024 / 1024
        // the whole file as a string would be 160 MB of heap
        expect(growthMb).toBeLessThan(16)
      }),
    60_000
  )
})
