/**
 * The fault matrix: each operation × each fault, against the emulator over real HTTP, to the
 * outcome the retry policy promises: success after retry, or the right typed error, in bounded
 * time, never a hang and never an untyped defect; and no message holding the key.
 * Delays are scaled down (10 ms backoff, a 300 ms timeout) so the whole table runs in seconds.
 */
import { BatchService, FileService, RetryPolicy } from "@batchkit/core"
import { Simulator } from "@batchkit/core/testing"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Schedule, Stream } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Emulator, NodeBatch, NodeFileSource } from "../src/index.js"

const apiKey = "sk-faults-SECRET-4242424242"
let server: Awaited<ReturnType<typeof Emulator.start>>

beforeAll(async () => {
  server = await Emulator.start({ apiKey, speed: 200 })
})
afterAll(() => server.close())

const sim = <A>(f: (s: Simulator.Service) => Effect.Effect<A>) => Effect.suspend(() => f(server.simulator))
const services = Effect.all({ batches: BatchService.BatchService, files: FileService.FileService })
const fast = Schedule.spaced("20 millis")

const provide = <A, E>(effect: Effect.Effect<A, E, BatchService.BatchService | FileService.FileService>) =>
  Effect.suspend(() =>
    Effect.provide(
      effect,
      NodeBatch.layer({
        apiKey,
        baseUrl: server.url,
        timeout: "300 millis",
        retry: RetryPolicy.make({ maxRetries: 2, initialDelay: "10 millis", maxDelay: "50 millis" })
      })
    )
  )

const jsonl = (n: number) =>
  `${Array.from({ length: n }, (_, i) => JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body: { model: "gpt-4o-mini", messages: [] } })).join("\n")}\n`

const submit = (n: number) =>
  Effect.gen(function* () {
    const { batches, files } = yield* services
    const file = yield* files.upload(FileService.fromBytes("in.jsonl", jsonl(n)))
    return yield* batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions" })
  })

const batchCount = sim((s) => Effect.map(s.batches, (b) => b.length))
const fileCount = sim((s) => Effect.map(s.files, (f) => f.length))

type Check = (result: unknown) => Effect.Effect<void>

interface Operation {
  readonly name: string
  readonly target: Simulator.Operation
  /** Runs before the fault is armed. */
  readonly setup: Effect.Effect<unknown, unknown, BatchService.BatchService | FileService.FileService>
  readonly run: (
    setup: never
  ) => Effect.Effect<unknown, unknown, BatchService.BatchService | FileService.FileService>
  /** What must hold after a success (e.g. exactly one batch). */
  readonly after?: (before: { batches: number; files: number }) => Check
}

const operations: ReadonlyArray<Operation> = [
  {
    name: "create",
    target: "batches.create",
    setup: Effect.flatMap(FileService.FileService, (f) =>
      f.upload(FileService.fromBytes("in.jsonl", jsonl(2)))
    ),
    run: (file: { id: string }) =>
      Effect.flatMap(BatchService.BatchService, (b) =>
        b.create({ input_file_id: file.id, endpoint: "/v1/chat/completions" })
      ),
    after: (before) => () =>
      Effect.map(batchCount, (n) => expect(n, "exactly one new batch").toBe(before.batches + 1))
  },
  {
    name: "retrieve",
    target: "batches.retrieve",
    setup: submit(1),
    run: (batch: { id: string }) => Effect.flatMap(BatchService.BatchService, (b) => b.retrieve(batch.id))
  },
  {
    name: "list/stream",
    target: "batches.list",
    setup: Effect.all([submit(1), submit(1), submit(1)]),
    run: () => Effect.flatMap(BatchService.BatchService, (b) => Stream.runCount(b.stream({ limit: 1 }))),
    after: () => (count) => Effect.sync(() => expect(count).toBeGreaterThanOrEqual(3))
  },
  {
    name: "cancel",
    target: "batches.cancel",
    setup: submit(5000),
    run: (batch: { id: string }) => Effect.flatMap(BatchService.BatchService, (b) => b.cancel(batch.id))
  },
  {
    name: "upload",
    target: "files.upload",
    setup: Effect.void,
    run: () =>
      Effect.flatMap(FileService.FileService, (f) => f.upload(FileService.fromBytes("up.jsonl", jsonl(3))))
  },
  {
    // from disk: sent as FormData over a Blob opened for each attempt
    name: "upload from a path",
    target: "files.upload",
    setup: Effect.sync(() => {
      const path = join(mkdtempSync(join(tmpdir(), "batchkit-faults-")), "up.jsonl")
      writeFileSync(path, jsonl(3))
      return path
    }),
    run: (path: string) =>
      Effect.flatMap(FileService.FileService, (f) => Effect.flatMap(NodeFileSource.fromPath(path), f.upload)),
    after: () => (file) => Effect.sync(() => expect((file as { bytes: number }).bytes).toBe(jsonl(3).length))
  },
  {
    name: "content/results",
    target: "files.content",
    setup: Effect.flatMap(submit(20), (batch) =>
      Effect.flatMap(BatchService.BatchService, (b) => b.await(batch.id, { schedule: fast }))
    ),
    run: (batch: never) => Effect.flatMap(FileService.FileService, (f) => Stream.runCount(f.results(batch))),
    after: () => (count) => Effect.sync(() => expect(count).toBe(20))
  },
  {
    name: "watch",
    target: "batches.retrieve",
    setup: submit(1),
    run: (batch: { id: string }) =>
      Effect.flatMap(BatchService.BatchService, (b) => b.await(batch.id, { schedule: fast })),
    after: () => (batch) => Effect.sync(() => expect((batch as { status: string }).status).toBe("completed"))
  }
]

interface Fault {
  readonly name: string
  readonly fault: Simulator.Fault
  readonly times: number
}

const faults: ReadonlyArray<Fault> = [
  { name: "429 with retry-after", fault: Simulator.rateLimited({ retryAfter: "20 millis" }), times: 1 },
  { name: "429 quota", fault: Simulator.rateLimited({ quota: true }), times: 1 },
  { name: "500", fault: Simulator.serverError(500), times: 1 },
  { name: "503 burst past the retry budget", fault: Simulator.serverError(503), times: 3 },
  { name: "reset before the server acts", fault: Simulator.resetBefore, times: 1 },
  { name: "reset after the server acts", fault: Simulator.resetAfter, times: 1 },
  { name: "answer slower than the timeout", fault: Simulator.slow("1 second"), times: 1 },
  { name: "JSON body cut midway", fault: Simulator.truncatedBody, times: 1 }
]

/** The outcome the policy promises: "success", or the tag of the typed error. */
const expected = (op: Operation, fault: Fault): string => {
  if (fault.name === "429 quota") return "RateLimited"
  if (fault.name === "503 burst past the retry budget") return op.name === "watch" ? "success" : "ServerError"
  // a download cut midway is not resumed: the stream fails with a typed error
  if (fault.name === "JSON body cut midway" && op.name === "content/results") return "TransportError"
  return "success"
}

describe("the fault matrix against the emulator", { timeout: 20_000 }, () => {
  for (const op of operations) {
    for (const fault of faults) {
      const want = expected(op, fault)
      it.live(`${op.name} × ${fault.name} → ${want}`, () =>
        provide(
          Effect.gen(function* () {
            yield* sim((s) => s.clearFaults)
            const prepared = yield* op.setup
            const before = { batches: yield* batchCount, files: yield* fileCount }
            yield* sim((s) => s.inject(op.target, fault.fault, fault.times))
            const exit = yield* op.run(prepared as never).pipe(Effect.timeout("10 seconds"), Effect.exit)
            yield* sim((s) => s.clearFaults)
            if (Exit.isSuccess(exit)) {
              expect("success", `${op.name} × ${fault.name}`).toBe(want)
              if (op.after) yield* op.after(before)(exit.value)
              return
            }
            // never a defect, never an interruption: a typed failure
            expect(Cause.isFailType(exit.cause) || Cause.failureOption(exit.cause)._tag === "Some").toBe(true)
            expect(Cause.isDie(exit.cause)).toBe(false)
            const error = Cause.failureOption(exit.cause)
            if (error._tag === "None") throw new Error("no failure")
            const e = error.value as { _tag: string; message: string; isQuota?: boolean }
            expect(e._tag, `${op.name} × ${fault.name}: ${e.message}`).toBe(want)
            if (want === "RateLimited") expect(e.isQuota).toBe(true)
            for (const text of [e.message, String(e), JSON.stringify(e)]) expect(text).not.toContain(apiKey)
          })
        )
      )
    }
  }

  it.live(
    "create under a reset after the server acted leaves exactly one batch, even with no retries left",
    () =>
      Effect.gen(function* () {
        const file = yield* provide(
          Effect.flatMap(FileService.FileService, (f) =>
            f.upload(FileService.fromBytes("in.jsonl", jsonl(2)))
          )
        )
        const before = yield* batchCount
        yield* sim((s) => s.inject("batches.create", Simulator.resetAfter, 1))
        const batch = yield* Effect.flatMap(BatchService.BatchService, (b) =>
          b.create({ input_file_id: file.id, endpoint: "/v1/chat/completions" })
        ).pipe(Effect.provide(NodeBatch.layer({ apiKey, baseUrl: server.url, maxRetries: 0 })))
        expect(yield* batchCount).toBe(before + 1)
        expect((yield* sim((s) => s.batches)).some((b) => b.id === batch.id)).toBe(true)
      })
  )

  it.live("watch survives ten consecutive transient failures and still reports the terminal status", () =>
    provide(
      Effect.gen(function* () {
        const batch = yield* submit(1)
        // alternate 503s and resets: ten in a row, more than one poll's own retry budget of two
        for (let i = 0; i < 5; i++) {
          yield* sim((s) => s.inject("batches.retrieve", Simulator.serverError(503), 1))
          yield* sim((s) => s.inject("batches.retrieve", Simulator.resetBefore, 1))
        }
        const ended = yield* Effect.flatMap(BatchService.BatchService, (b) =>
          b.await(batch.id, { schedule: fast })
        ).pipe(Effect.timeout("15 seconds"))
        expect(ended.status).toBe("completed")
        expect(yield* sim((s) => s.pendingFaults)).toEqual([])
      })
    )
  )
})
