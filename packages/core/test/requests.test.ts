import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel, Stream, Tracer } from "effect"
import { BatchService, FileService } from "../src/index.js"
import { batchJson, makeMock, type Recorded, servicesLayer, testKey } from "./support/mock.js"

const fileJson = (id: string) => ({
  id,
  object: "file",
  bytes: 10,
  created_at: 1,
  filename: "in.jsonl",
  purpose: "batch"
})

const answer = (r: Recorded) => {
  if (r.path === "/v1/batches" && r.method === "GET")
    return { status: 200, json: { object: "list", data: [batchJson("batch_1")], has_more: false } }
  if (r.path.startsWith("/v1/batches")) return { status: 200, json: batchJson("batch_1") }
  if (r.path === "/v1/files" && r.method === "GET")
    return {
      status: 200,
      json: {
        object: "list",
        data: [fileJson("file-1")],
        first_id: "file-1",
        last_id: "file-1",
        has_more: false
      }
    }
  if (r.path === "/v1/files/file-1" && r.method === "DELETE")
    return { status: 200, json: { id: "file-1", object: "file", deleted: true } }
  if (r.path === "/v1/files/file-1/content") return { status: 200, text: "abc" }
  if (r.path.startsWith("/v1/files")) return { status: 200, json: fileJson("file-1") }
  return undefined
}

const run = <A, E>(
  options: Parameters<typeof servicesLayer>[1],
  f: (s: { batches: BatchService.Service; files: FileService.Service }) => Effect.Effect<A, E>
) => {
  const mock = makeMock(answer)
  return Effect.gen(function* () {
    const batches = yield* BatchService.BatchService
    const files = yield* FileService.FileService
    yield* f({ batches, files })
    return mock.requests
  }).pipe(
    Effect.provide(
      servicesLayer(mock, options) as Layer.Layer<BatchService.BatchService | FileService.FileService>
    )
  )
}

describe("the wire shape of every operation", () => {
  it.effect("fields the API adds later survive decoding, so the API's JSON can be given back whole", () =>
    Effect.gen(function* () {
      const mock = makeMock(() => ({
        status: 200,
        json: batchJson("batch_1", { brand_new: { nested: [1, 2] } })
      }))
      const batch = yield* Effect.flatMap(BatchService.BatchService, (s) => s.retrieve("batch_1")).pipe(
        Effect.provide(servicesLayer(mock))
      )
      expect(JSON.parse(JSON.stringify(batch))).toEqual(
        batchJson("batch_1", { brand_new: { nested: [1, 2] } })
      )
    })
  )

  it.effect("create posts the body with completion_window, metadata and the idempotency key", () =>
    Effect.gen(function* () {
      const [req] = yield* run({}, ({ batches }) =>
        batches.create(
          {
            input_file_id: "file-1",
            endpoint: "/v1/chat/completions",
            metadata: { team: "a" },
            output_expires_after: { anchor: "created_at", seconds: 3600 }
          },
          { idempotencyKey: "key-1" }
        )
      )
      expect(req?.method).toBe("POST")
      expect(req?.path).toBe("/v1/batches")
      expect(req?.headers["content-type"]).toBe("application/json")
      expect(JSON.parse(req?.body ?? "")).toEqual({
        input_file_id: "file-1",
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
        metadata: { team: "a", batchkit_idempotency_key: "key-1" },
        output_expires_after: { anchor: "created_at", seconds: 3600 }
      })
    })
  )

  it.effect("create without idempotency sends the metadata as given", () =>
    Effect.gen(function* () {
      const [req] = yield* run({ idempotentCreate: false }, ({ batches }) =>
        batches.create({ input_file_id: "file-1", endpoint: "/v1/embeddings" })
      )
      expect(JSON.parse(req?.body ?? "")).toEqual({
        input_file_id: "file-1",
        endpoint: "/v1/embeddings",
        completion_window: "24h"
      })
    })
  )

  it.effect("retrieve, list, cancel", () =>
    Effect.gen(function* () {
      const reqs = yield* run({}, ({ batches }) =>
        Effect.all([
          batches.retrieve("batch_1"),
          batches.list({ limit: 5, after: "batch_0" }),
          batches.list(),
          batches.cancel("batch_1")
        ])
      )
      expect(reqs.map((r) => [r.method, r.path, r.query, r.body])).toEqual([
        ["GET", "/v1/batches/batch_1", {}, ""],
        ["GET", "/v1/batches", { limit: "5", after: "batch_0" }, ""],
        ["GET", "/v1/batches", {}, ""],
        ["POST", "/v1/batches/batch_1/cancel", {}, ""]
      ])
    })
  )

  it.effect("files: retrieve, list, delete, content", () =>
    Effect.gen(function* () {
      let content = ""
      const reqs = yield* run({}, ({ files }) =>
        Effect.gen(function* () {
          yield* files.retrieve("file-1")
          yield* files.list({ purpose: "batch", limit: 10000, order: "asc", after: "file-0" })
          yield* files.delete("file-1")
          content = yield* files.content("file-1").pipe(Stream.decodeText(), Stream.mkString)
        })
      )
      expect(content).toBe("abc")
      expect(reqs.map((r) => [r.method, r.path, r.query])).toEqual([
        ["GET", "/v1/files/file-1", {}],
        ["GET", "/v1/files", { purpose: "batch", limit: "10000", order: "asc", after: "file-0" }],
        ["DELETE", "/v1/files/file-1", {}],
        ["GET", "/v1/files/file-1/content", {}]
      ])
      expect(reqs[3]?.headers.accept).toBe("application/binary")
    })
  )

  it.effect("upload sends a multipart body with purpose and the file", () =>
    Effect.gen(function* () {
      const [req] = yield* run({}, ({ files }) =>
        files.upload(FileService.fromBytes("in.jsonl", '{"a":1}\n'), {
          expiresAfter: { anchor: "created_at", seconds: 7200 }
        })
      )
      expect(req?.method).toBe("POST")
      expect(req?.path).toBe("/v1/files")
      const type = req?.headers["content-type"] ?? ""
      const boundary = /boundary=(.+)$/.exec(type)?.[1]
      expect(type.startsWith("multipart/form-data; boundary=")).toBe(true)
      expect(req?.body).toBe(
        `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="expires_after[anchor]"\r\n\r\ncreated_at\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="expires_after[seconds]"\r\n\r\n7200\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n{"a":1}\n\r\n--${boundary}--\r\n`
      )
      expect(Number(req?.headers["content-length"])).toBe(new TextEncoder().encode(req?.body).byteLength)
    })
  )

  it.effect("upload sends a Blob source as form data with the same parts, typed application/jsonl", () =>
    Effect.gen(function* () {
      const text = '{"a":1}\n'
      const [req] = yield* run({}, ({ files }) =>
        files.upload({
          ...FileService.fromBytes("in.jsonl", text),
          stream: Stream.die("unused"),
          blob: Effect.succeed(new Blob([text]))
        })
      )
      const type = req?.headers["content-type"] ?? ""
      expect(type.startsWith("multipart/form-data; boundary=")).toBe(true)
      const form = yield* Effect.promise(() =>
        new Response(req?.body, { headers: { "content-type": type } }).formData()
      )
      expect(form.get("purpose")).toBe("batch")
      const file = form.get("file") as File
      expect([file.name, file.type]).toEqual(["in.jsonl", "application/jsonl"])
      expect(yield* Effect.promise(() => file.text())).toBe(text)
    })
  )

  it.effect("a Blob source larger than 200 MB, or one that cannot be opened, fails before any request", () =>
    Effect.gen(function* () {
      const huge = { size: 201 * 1024 * 1024, type: "", slice: () => huge } as unknown as Blob
      const errors: Array<string> = []
      const reqs = yield* run({}, ({ files }) =>
        Effect.all([
          files.upload({ filename: "x.jsonl", stream: Stream.empty, blob: Effect.succeed(huge) }),
          files.upload({ filename: "y.jsonl", stream: Stream.empty, blob: Effect.fail(new Error("EACCES")) })
        ]).pipe(
          Effect.flip,
          Effect.tap((e) => Effect.sync(() => errors.push(`${e._tag}: ${e.message}`))),
          Effect.zipRight(
            files
              .upload({ filename: "y.jsonl", stream: Stream.empty, blob: Effect.fail(new Error("EACCES")) })
              .pipe(
                Effect.flip,
                Effect.tap((e) => Effect.sync(() => errors.push(`${e._tag}: ${e.message}`)))
              )
          )
        )
      )
      expect(errors).toEqual([
        "InvalidRequest: file: x.jsonl is 210763776 bytes; a batch input file may be at most 200 MB",
        "InvalidRequest: file: y.jsonl: EACCES"
      ])
      expect(reqs).toEqual([])
    })
  )

  it.effect("under a tracer of the program's own, each request is a client span, the key redacted", () =>
    Effect.gen(function* () {
      const native = yield* Effect.tracer
      const spans: Array<Tracer.Span> = []
      const recording = Tracer.make({
        span: (...args) => {
          const span = native.span(...args)
          spans.push(span)
          return span
        },
        context: native.context
      })
      yield* Effect.withSpan(
        run({}, ({ batches }) => batches.retrieve("batch_1")),
        "user.operation"
      ).pipe(Effect.provide(Layer.setTracer(recording)))
      const http = spans.filter((s) => s.kind === "client")
      expect(http.map((s) => s.name)).toEqual(["http.client GET"])
      const [span] = http
      expect(span?.attributes.get("url.full")).toBe("https://api.test/v1/batches/batch_1")
      expect(span?.attributes.get("http.response.status_code")).toBe(200)
      expect(span?.parent._tag === "Some" && span.parent.value).toMatchObject({ name: "user.operation" })
      expect(JSON.stringify([...(span?.attributes ?? new Map())])).not.toContain(testKey)
    })
  )

  it.live("a failed request logs nothing of its own, even at debug level", () =>
    Effect.gen(function* () {
      const logged: Array<string> = []
      const capture = Logger.make(({ message }) => logged.push(String(message)))
      // every request answered 404
      const mock = makeMock(() => undefined)
      const error = yield* Effect.flatMap(BatchService.BatchService, (b) => b.retrieve("batch_1")).pipe(
        Effect.provide(servicesLayer(mock, {}) as Layer.Layer<BatchService.BatchService>),
        Effect.flip,
        Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
        Logger.withMinimumLogLevel(LogLevel.All)
      )
      expect(error._tag).toBe("NotFound")
      expect(logged).toEqual([])
    })
  )

  it.effect("the key goes only in Authorization; organization and project when set", () =>
    Effect.gen(function* () {
      const reqs = yield* run({ organization: "org-1", project: "proj-1" }, ({ batches, files }) =>
        Effect.all([
          batches.retrieve("batch_1"),
          batches.list(),
          files.retrieve("file-1"),
          batches.create({ input_file_id: "file-1", endpoint: "/v1/embeddings" })
        ])
      )
      for (const r of reqs) {
        expect(r.headers.authorization).toBe(`Bearer ${testKey}`)
        expect(r.headers["openai-organization"]).toBe("org-1")
        expect(r.headers["openai-project"]).toBe("proj-1")
        const elsewhere = JSON.stringify({ ...r, headers: { ...r.headers, authorization: undefined } })
        expect(elsewhere).not.toContain(testKey)
      }
      const plain = yield* run({}, ({ batches }) => batches.retrieve("batch_1"))
      expect(plain[0]?.headers["openai-organization"]).toBeUndefined()
      expect(plain[0]?.headers["openai-project"]).toBeUndefined()
    })
  )
})
