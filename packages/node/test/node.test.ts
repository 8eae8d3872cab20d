import { BatchService, FileService } from "@batchkit/core"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Chunk, ConfigProvider, Effect, Exit, Fiber, Layer, Schedule, Stream, Tracer } from "effect"
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer, type RequestListener, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Responder, Simulator } from "@batchkit/core/testing"
import { Emulator, NodeBatch, NodeFileSource } from "../src/index.js"
import * as NodeHttp from "../src/internal/httpClient.js"
import * as Undici from "@effect/platform-node/Undici"

const apiKey = "sk-node-SECRET-9876543210"
let server: Awaited<ReturnType<typeof Emulator.start>>
let dir: string

beforeAll(async () => {
  // 100× the wall clock: validation takes 0.1 s, ten requests a second become a thousand
  server = await Emulator.start({
    apiKey,
    speed: 100,
    responder: Responder.failing((line) => line.body.fail === true)
  })
  dir = mkdtempSync(join(tmpdir(), "batchkit-node-"))
})
afterAll(() => server.close())

const sim = <A>(effect: (s: Simulator.Service) => Effect.Effect<A>) =>
  Effect.suspend(() => effect(server.simulator))
const storedFile = (id: string) =>
  sim((s) => Effect.map(s.files, (files) => files.find((f) => f.id === id) as { bytes: number } | undefined))
const batchCount = sim((s) => Effect.map(s.batches, (b) => b.length))

const fast = Schedule.spaced("20 millis")

/** Runs a program against the server with configuration read from the environment, as users do. */
const run = <A, E>(
  program: Effect.Effect<A, E, BatchService.BatchService | FileService.FileService>,
  env: Record<string, string> = {}
) =>
  program.pipe(
    Effect.provide(NodeBatch.layerConfig()),
    Effect.withConfigProvider(
      ConfigProvider.fromMap(
        new Map(Object.entries({ OPENAI_API_KEY: apiKey, OPENAI_BASE_URL: server.url, ...env }))
      )
    )
  )

const services = Effect.all({ batches: BatchService.BatchService, files: FileService.FileService })

const writeInput = (name: string, lines: number, failing: ReadonlyArray<number> = []) => {
  const path = join(dir, name)
  const text = Array.from({ length: lines }, (_, i) =>
    JSON.stringify({
      custom_id: `req-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: `hi ${i}` }],
        ...(failing.includes(i) ? { fail: true } : {})
      }
    })
  ).join("\n")
  writeFileSync(path, `${text}\n`)
  return path
}

const submit = (lines = 10, failing: ReadonlyArray<number> = []) =>
  Effect.gen(function* () {
    const { batches, files } = yield* services
    const source = yield* NodeFileSource.fromPath(
      writeInput(`in-${lines}-${Math.random().toString(36).slice(2)}.jsonl`, lines, failing)
    )
    const file = yield* files.upload(source)
    return yield* batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      metadata: { suite: "node" }
    })
  })

/** A plain HTTP server on 127.0.0.1 for the scope of a test; gives its port. */
/**
 * Interrupts a fiber that holds a request open and waits for the server to see the connection
 * close. Bounded: a request that went on in the background would keep its socket open.
 */
const interruptCloses = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, closed: () => boolean) =>
  Effect.gen(function* () {
    yield* Effect.sleep("100 millis")
    expect(closed()).toBe(false)
    const exit = yield* Fiber.interrupt(fiber).pipe(Effect.timeout("2 seconds"))
    expect(Exit.isInterrupted(exit)).toBe(true)
    yield* Effect.sleep("20 millis").pipe(Effect.repeat({ until: closed }), Effect.timeout("2 seconds"))
    expect(closed()).toBe(true)
  })

const loopback = (handler: RequestListener) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.async<Server>((resume) => {
        const server = createServer(handler)
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.sync(() => {
          server.closeAllConnections()
          server.close()
        })
    ),
    (server) => (server.address() as AddressInfo).port
  )

describe("@batchkit/node over loopback HTTP", () => {
  it.live("uploads, creates, retrieves, watches to completed and streams typed results", () =>
    run(
      Effect.gen(function* () {
        const { batches, files } = yield* services
        // 500 lines stay in_progress for half a second of wall time at 100×: the watcher sees it
        const source = yield* NodeFileSource.fromPath(writeInput("flow.jsonl", 500, [3, 17]))
        const file = yield* files.upload(source)
        expect(file.purpose).toBe("batch")
        expect(file.bytes).toBe(source.size)
        expect((yield* storedFile(file.id))?.bytes).toBe(source.size)

        const created = yield* batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions" })
        expect(created.status).toBe("validating")
        const again = yield* batches.retrieve(created.id)
        expect(again.id).toBe(created.id)

        const snapshots = yield* Stream.runCollect(batches.watch(created.id, { schedule: fast }))
        const statuses = Chunk.toArray(snapshots).map((b) => b.status)
        expect(statuses.at(-1)).toBe("completed")
        expect(statuses).toContain("in_progress")

        const outcomes = Chunk.toArray(yield* Stream.runCollect(files.results(Chunk.unsafeLast(snapshots))))
        expect(outcomes.length).toBe(500)
        expect(new Set(outcomes.map((o) => o.customId)).size).toBe(500)
        expect(outcomes.filter((o) => o._tag === "Succeeded").length).toBe(498)
        const failed = outcomes.filter((o) => o._tag === "Failed")
        expect(failed.map((o) => o.customId).sort()).toEqual(["req-17", "req-3"])
      })
    )
  )

  it.live("streams every batch across three or more pages, once each", () =>
    run(
      Effect.gen(function* () {
        const { batches } = yield* services
        for (let i = 0; i < 5; i++) yield* submit(2)
        const expected = (yield* sim((s) => s.batches)).map((b) => b.id as string)
        const streamed = Chunk.toArray(yield* Stream.runCollect(batches.stream({ limit: 2 }))).map(
          (b) => b.id
        )
        expect(streamed.length).toBe(expected.length)
        expect(streamed.sort()).toEqual(expected.sort())
        const pages = (yield* sim((s) => s.requests)).filter(
          (r) => r.path === "/v1/batches" && r.query.startsWith("limit=2")
        )
        expect(pages.length).toBeGreaterThanOrEqual(3)
      })
    )
  )

  it.live("cancels a running batch; its unfinished lines come back as cancelled", () =>
    run(
      Effect.gen(function* () {
        const { batches, files } = yield* services
        // 3,000 lines run for 3 s of wall time at 100×: long enough to cancel midway
        const batch = yield* submit(3000)
        yield* batches.watch(batch.id, { schedule: fast }).pipe(
          Stream.takeUntil((b) => (b.request_counts?.completed ?? 0) > 0),
          Stream.runDrain
        )
        const cancelling = yield* batches.cancel(batch.id)
        expect(cancelling.status).toBe("cancelling")
        const ended = yield* batches.await(batch.id, { schedule: fast })
        expect(ended.status).toBe("cancelled")
        const outcomes = Chunk.toArray(yield* Stream.runCollect(files.results(ended)))
        expect(outcomes.length).toBe(3000)
        const succeeded = outcomes.filter((o) => o._tag === "Succeeded").length
        expect(succeeded).toBeGreaterThan(0)
        expect(outcomes.filter((o) => o._tag === "Cancelled").length).toBe(3000 - succeeded)
        const conflict = yield* Effect.flip(batches.cancel(batch.id))
        expect(conflict._tag).toBe("Conflict")
      })
    )
  )

  it.live("fails with the right tag on 401, 404, 409 and a quota 429, and the key is in none of them", () =>
    Effect.gen(function* () {
      const wrongKey = yield* run(Effect.flip(Effect.flatMap(BatchService.BatchService, (b) => b.list())), {
        OPENAI_API_KEY: "sk-wrong-key-123456"
      })
      expect(wrongKey._tag).toBe("AuthenticationError")
      const requestsBefore = (yield* sim((s) => s.requests)).length
      const errors = yield* run(
        Effect.gen(function* () {
          const { batches } = yield* services
          const notFound = yield* Effect.flip(batches.retrieve("batch_missing"))
          const done = yield* submit(1)
          yield* batches.await(done.id, { schedule: fast })
          const conflict = yield* Effect.flip(batches.cancel(done.id))
          yield* sim((s) => s.inject("batches.list", Simulator.rateLimited({ quota: true })))
          const quota = yield* Effect.flip(batches.list())
          return { notFound, conflict, quota }
        })
      )
      expect(errors.notFound._tag).toBe("NotFound")
      expect(errors.notFound._tag === "NotFound" && errors.notFound.requestId).toMatch(/^req_/)
      expect(errors.conflict._tag).toBe("Conflict")
      expect(errors.quota._tag === "RateLimited" && errors.quota.isQuota).toBe(true)
      // the quota 429 and the 409 were each sent once
      const cancels = (yield* sim((s) => s.requests))
        .slice(requestsBefore)
        .filter((r) => r.path.endsWith("/cancel"))
      expect(cancels.length).toBe(1)
      for (const e of [wrongKey, ...Object.values(errors)]) {
        for (const text of [e.message, String(e), JSON.stringify(e)]) expect(text).not.toContain(apiKey)
      }
    })
  )

  it.live("succeeds through a 429 with retry-after, 500, 503 and resets", () =>
    run(
      Effect.gen(function* () {
        const { batches } = yield* services
        const batch = yield* submit(1)
        yield* sim((s) => s.inject("batches.retrieve", Simulator.rateLimited({ retryAfter: "30 millis" })))
        yield* sim((s) => s.inject("batches.retrieve", Simulator.serverError(500)))
        const before = (yield* sim((s) => s.requests)).length
        expect((yield* batches.retrieve(batch.id)).id).toBe(batch.id)
        expect((yield* sim((s) => s.requests)).length - before).toBe(3)
        yield* sim((s) => s.inject("batches.retrieve", Simulator.serverError(503)))
        yield* sim((s) => s.inject("batches.retrieve", Simulator.resetBefore))
        expect((yield* batches.retrieve(batch.id)).id).toBe(batch.id)
      })
    )
  )

  it.live("leaves exactly one batch when the connection drops after the server created it", () =>
    run(
      Effect.gen(function* () {
        const { batches, files } = yield* services
        const file = yield* files.upload(yield* NodeFileSource.fromPath(writeInput("once.jsonl", 3)))
        const before = yield* batchCount
        yield* sim((s) => s.inject("batches.create", Simulator.resetAfter))
        const batch = yield* batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions" })
        expect(yield* batchCount).toBe(before + 1)
        expect((yield* sim((s) => s.batches)).some((b) => b.id === batch.id)).toBe(true)
      })
    )
  )

  it.live("an upload retried after a reset re-reads the file from disk", () =>
    run(
      Effect.gen(function* () {
        const { files } = yield* services
        const source = yield* NodeFileSource.fromPath(writeInput("retry.jsonl", 50))
        yield* sim((s) => s.inject("files.upload", Simulator.resetBefore))
        const file = yield* files.upload(source)
        expect((yield* storedFile(file.id))?.bytes).toBe(source.size)
      })
    )
  )

  it.live("uploads the same bytes from a byte stream (no Blob), retried after a reset", () =>
    run(
      Effect.gen(function* () {
        const { files } = yield* services
        const path = writeInput("streamed.jsonl", 500)
        const source = { ...(yield* NodeFileSource.fromPath(path)), blob: undefined }
        yield* sim((s) => s.inject("files.upload", Simulator.resetBefore))
        const file = yield* files.upload(source)
        const stored = yield* Stream.runCollect(files.content(file.id)).pipe(
          Effect.map((c) => Buffer.concat(Chunk.toArray(c)))
        )
        expect(stored.equals(readFileSync(path))).toBe(true)
      })
    )
  )

  it.live("uploads a file as it is when sent, and a file gone by then is an InvalidRequest", () =>
    run(
      Effect.gen(function* () {
        const { files } = yield* services
        const path = writeInput("changed.jsonl", 2)
        const source = yield* NodeFileSource.fromPath(path)
        appendFileSync(path, readFileSync(path))
        const file = yield* files.upload(source)
        expect(file.bytes).toBe(readFileSync(path).length)
        const gone = writeInput("gone.jsonl", 2)
        const later = yield* NodeFileSource.fromPath(gone)
        rmSync(gone)
        const error = yield* Effect.flip(files.upload(later))
        expect([error._tag, error.message]).toEqual(["InvalidRequest", `file: ${gone}: no such file`])
      })
    )
  )

  it.live("a missing file and a missing key are caught before any request", () =>
    Effect.gen(function* () {
      const missing = yield* Effect.flip(NodeFileSource.fromPath(join(dir, "nope.jsonl")))
      expect(missing._tag).toBe("InvalidRequest")
      expect(missing.message).toContain("no such file")
      const noKey = yield* Effect.flip(
        Effect.flatMap(BatchService.BatchService, (b) => b.list()).pipe(
          Effect.provide(NodeBatch.layerConfig()),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["OPENAI_BASE_URL", server.url]])))
        )
      )
      expect(String(noKey)).toContain("OPENAI_API_KEY")
    })
  )

  it.live("sends OpenAI-Organization and OpenAI-Project from the environment", () =>
    run(
      Effect.gen(function* () {
        yield* Effect.flatMap(BatchService.BatchService, (b) => b.list({ limit: 1 }))
        const last = (yield* sim((s) => s.requests)).at(-1)!
        expect(last.headers["openai-organization"]).toBe("org-9")
        expect(last.headers["openai-project"]).toBe("proj-9")
      }),
      { OPENAI_ORG_ID: "org-9", OPENAI_PROJECT_ID: "proj-9" }
    )
  )

  it.live("interrupting a request in flight aborts it on the wire at once", () =>
    Effect.gen(function* () {
      // a server that never answers and notes when the client goes away
      let closed = false
      const port = yield* loopback((req) => req.on("close", () => (closed = true)))
      // the services outlive the request, so only the interruption can close its connection
      const context = yield* Layer.build(
        NodeBatch.layer({ apiKey, baseUrl: `http://127.0.0.1:${port}/v1`, timeout: "30 seconds" })
      )
      const fiber = yield* Effect.flatMap(BatchService.BatchService, (b) => b.retrieve("batch_1")).pipe(
        Effect.provide(context),
        Effect.fork
      )
      yield* interruptCloses(fiber, () => closed)
    }).pipe(Effect.scoped)
  )
})

describe("the HTTP client's two paths", () => {
  // a server that answers every retrieve with the same batch and notes each request's headers
  const batch = JSON.parse(
    readFileSync(new URL("../../core/test/fixtures/batch.retrieve.response.json", import.meta.url), "utf8")
  )
  const recording = () => {
    const heads: Array<Record<string, string | Array<string> | undefined>> = []
    const handler: RequestListener = (req, res) => {
      heads.push(req.headers)
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify(batch))
    }
    return { heads, handler }
  }

  it.live("under Effect's own tracer: the request inside a span of the program's sends no traceparent", () =>
    Effect.gen(function* () {
      const { handler, heads } = recording()
      const port = yield* loopback(handler)
      const got = yield* Effect.flatMap(BatchService.BatchService, (b) => b.retrieve(batch.id)).pipe(
        Effect.withSpan("user.operation"),
        Effect.provide(NodeBatch.layer({ apiKey, baseUrl: `http://127.0.0.1:${port}/v1` }))
      )
      expect(got.id).toBe(batch.id)
      expect(heads).toHaveLength(1)
      expect(heads[0]?.traceparent).toBeUndefined()
      expect(heads[0]?.authorization).toBe(`Bearer ${apiKey}`)
    }).pipe(Effect.scoped)
  )

  it.live(
    "under a tracer of the program's own: a client span with the URL and status, the key redacted, no traceparent",
    () =>
      Effect.gen(function* () {
        const { handler, heads } = recording()
        const port = yield* loopback(handler)
        const native = yield* Effect.tracer
        const spans: Array<Tracer.Span> = []
        const own = Tracer.make({
          span: (...args) => {
            const span = native.span(...args)
            spans.push(span)
            return span
          },
          context: (f) => f()
        })
        yield* Effect.flatMap(BatchService.BatchService, (b) => b.retrieve(batch.id)).pipe(
          Effect.withSpan("user.operation"),
          Effect.provide(NodeBatch.layer({ apiKey, baseUrl: `http://127.0.0.1:${port}/v1` })),
          Effect.withTracer(own)
        )
        const client = spans.filter((s) => s.kind === "client")
        expect(client).toHaveLength(1)
        expect(client[0]?.attributes.get("url.full")).toBe(`http://127.0.0.1:${port}/v1/batches/${batch.id}`)
        expect(client[0]?.attributes.get("http.response.status_code")).toBe(200)
        expect(client[0]?.parent._tag === "Some" && client[0].parent.value).toMatchObject({
          name: "user.operation"
        })
        expect(JSON.stringify([...(client[0]?.attributes ?? new Map())])).not.toContain(apiKey)
        expect(heads[0]?.traceparent).toBeUndefined()
      }).pipe(Effect.scoped)
  )

  it.live(
    "the timeout covers the whole exchange: no head, or a body that stops, fails with Timeout and closes the connection",
    () =>
      Effect.gen(function* () {
        for (const stall of ["head", "body"] as const) {
          let closed = false
          const port = yield* loopback((req, res) => {
            req.on("close", () => (closed = true))
            if (stall === "body") {
              res.writeHead(200, { "content-type": "application/json", "content-length": "1000" })
              res.write('{"id":')
            }
          })
          const started = Date.now()
          const error = yield* Effect.flatMap(BatchService.BatchService, (b) => b.retrieve("batch_1")).pipe(
            Effect.provide(
              NodeBatch.layer({
                apiKey,
                baseUrl: `http://127.0.0.1:${port}/v1`,
                timeout: "300 millis",
                maxRetries: 0
              })
            ),
            Effect.flip,
            Effect.timeout("5 seconds")
          )
          expect([stall, error._tag, error._tag === "TransportError" && error.reason]).toEqual([
            stall,
            "TransportError",
            "Timeout"
          ])
          expect(error.message).toContain("no answer within")
          expect(Date.now() - started).toBeLessThan(3000)
          yield* Effect.sleep("20 millis").pipe(
            Effect.repeat({ until: () => closed }),
            Effect.timeout("2 seconds")
          )
        }
      }).pipe(Effect.scoped)
  )

  it.live("interrupting a read of the body aborts the exchange at once", () =>
    Effect.gen(function* () {
      // a server that sends the head and a first piece of the body, then nothing
      let closed = false
      const port = yield* loopback((req, res) => {
        req.on("close", () => (closed = true))
        res.writeHead(200, { "content-type": "application/json", "content-length": "1000" })
        res.write('{"id":')
      })
      const agent = yield* Effect.acquireRelease(
        Effect.sync(() => new Undici.Agent()),
        (agent) => Effect.promise(() => agent.destroy())
      )
      const http = NodeHttp.make(agent)
      const response = yield* http.get(`http://127.0.0.1:${port}/v1/batches/b`)
      expect(response.status).toBe(200)
      const fiber = yield* Effect.fork(response.text)
      yield* interruptCloses(fiber, () => closed)
    }).pipe(Effect.scoped)
  )
})

describe("a download that stalls midway", () => {
  it.live("fails with a typed error after the timeout instead of hanging", () =>
    Effect.gen(function* () {
      // headers and the first line at once, then nothing more, the connection left open
      const port = yield* loopback((_req, res) => {
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": "100000" })
        res.write('{"custom_id":"a","response":{"status_code":200,"body":{}},"error":null}\n')
      })
      const seen: Array<string> = []
      const error = yield* Effect.flatMap(FileService.FileService, (files) =>
        Stream.runForEach(files.results({ output_file_id: "file-out" }), (o) =>
          Effect.sync(() => seen.push(o.customId))
        )
      ).pipe(
        Effect.provide(
          NodeBatch.layer({
            apiKey,
            baseUrl: `http://127.0.0.1:${port}/v1`,
            timeout: "300 millis",
            maxRetries: 0
          })
        ),
        Effect.flip,
        Effect.timeout("3 seconds")
      )
      expect(seen).toEqual(["a"])
      expect([error._tag, (error as { reason?: string }).reason]).toEqual(["TransportError", "Body"])
      expect(String(error)).not.toContain(apiKey)
    }).pipe(Effect.scoped)
  )
})

describe("the undici HttpClient", () => {
  const get = (path: string) =>
    HttpClientRequest.get(`${server.url}${path}`).pipe(HttpClientRequest.bearerToken(apiKey))
  const client = HttpClient.HttpClient

  it.live("reads a body as text, then as JSON from the same response; headers and cookies", () =>
    Effect.gen(function* () {
      const http = yield* client
      const response = yield* http.execute(get("/batches?limit=1"))
      expect(response.status).toBe(200)
      expect(response.headers["content-type"]).toContain("application/json")
      expect(Object.keys(response.cookies.cookies)).toEqual([])
      const text = yield* response.text
      expect(JSON.parse(text).object).toBe("list")
      expect(yield* response.json).toEqual(JSON.parse(text))
      expect(yield* response.text).toBe(text)
      expect(response.toJSON()).toMatchObject({ _id: "@effect/platform/HttpClientResponse", status: 200 })
    }).pipe(Effect.provide(NodeHttp.layer()))
  )

  it.live("streams a body and reads one as bytes", () =>
    Effect.gen(function* () {
      const http = yield* client
      const streamed = yield* http.execute(get("/batches?limit=2")).pipe(
        Effect.flatMap((r) => Stream.runCollect(r.stream)),
        Effect.map((chunks) => Buffer.concat(Chunk.toArray(chunks)).toString())
      )
      const bytes = yield* http.execute(get("/batches?limit=2")).pipe(Effect.flatMap((r) => r.arrayBuffer))
      expect(JSON.parse(Buffer.from(bytes).toString()).data).toEqual(JSON.parse(streamed).data)
    }).pipe(Effect.provide(NodeHttp.layer()))
  )

  it.live("a refused connection is a RequestError, not a defect", () =>
    Effect.gen(function* () {
      const http = yield* client
      const error = yield* Effect.flip(http.execute(HttpClientRequest.get("http://127.0.0.1:9/v1/batches")))
      expect(error._tag).toBe("RequestError")
    }).pipe(Effect.provide(NodeHttp.layer()))
  )
})
