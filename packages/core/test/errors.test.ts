import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { readFileSync } from "node:fs"
import { BatchError, BatchService, FileService } from "../src/index.js"
import { errorJson, makeMock, type Reply, servicesLayer, testKey } from "./support/mock.js"

const withReply = (reply: Reply) => {
  const mock = makeMock(() => reply)
  return { mock, layer: servicesLayer(mock, { retry: undefined, maxRetries: 0 }) }
}

const retrieveFails = (reply: Reply) => {
  const { mock, layer } = withReply(reply)
  return BatchService.BatchService.pipe(
    Effect.flatMap((s) => Effect.flip(s.retrieve("batch_1"))),
    Effect.provide(layer),
    Effect.map((error) => ({ error, requests: mock.requests }))
  )
}

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8"))

describe("statuses become tagged errors", () => {
  it.effect("the spec-shaped error bodies decode into their errors", () =>
    Effect.gen(function* () {
      for (const [status, name, tag] of [
        [400, "error.400.json", "BadRequest"],
        [401, "error.401.json", "AuthenticationError"],
        [404, "error.404.json", "NotFound"]
      ] as const) {
        const body = fixture(name) as {
          error: { message: string; type: string; param: string | null; code: string | null }
        }
        const { error } = yield* retrieveFails({ status, json: body })
        expect(error._tag).toBe(tag)
        if (!BatchError.isApiError(error)) throw new Error("not an API error")
        expect(error.message).toBe(body.error.message)
        expect(error.type).toBe(body.error.type)
        expect(error.param ?? null).toBe(body.error.param)
        expect(error.code ?? null).toBe(body.error.code)
      }
    })
  )

  const cases: Array<[number, string]> = [
    [400, "BadRequest"],
    [422, "BadRequest"],
    [401, "AuthenticationError"],
    [403, "PermissionDenied"],
    [404, "NotFound"],
    [409, "Conflict"],
    [429, "RateLimited"],
    [500, "ServerError"],
    [502, "ServerError"],
    [503, "ServerError"],
    [408, "UnexpectedStatus"],
    [418, "UnexpectedStatus"]
  ]
  for (const [status, tag] of cases) {
    it.effect(`${status} is ${tag} with the request id and the API's fields`, () =>
      Effect.gen(function* () {
        const { error } = yield* retrieveFails({
          status,
          json: errorJson(`problem ${status}`, "invalid_request_error", "some_code", "some_param"),
          headers: { "x-request-id": `req_${status}` }
        })
        expect(error._tag).toBe(tag)
        if (!BatchError.isApiError(error)) throw new Error("not an API error")
        expect(error.status).toBe(status)
        expect(error.message).toBe(`problem ${status}`)
        expect(error.type).toBe("invalid_request_error")
        expect(error.code).toBe("some_code")
        expect(error.param).toBe("some_param")
        expect(error.requestId).toBe(`req_${status}`)
      })
    )
  }

  it.effect("a 429 with insufficient_quota is a quota error; a plain 429 is not", () =>
    Effect.gen(function* () {
      const quota = yield* retrieveFails({
        status: 429,
        json: errorJson("You exceeded your current quota", "insufficient_quota", "insufficient_quota")
      })
      expect(quota.error._tag === "RateLimited" && quota.error.isQuota).toBe(true)
      const limited = yield* retrieveFails({
        status: 429,
        json: errorJson("Rate limit reached", "requests", "rate_limit_exceeded"),
        headers: { "retry-after": "3" }
      })
      expect(
        limited.error._tag === "RateLimited" &&
          !limited.error.isQuota &&
          limited.error.retryAfterMillis === 3000
      ).toBe(true)
    })
  )

  it.effect("a body that is not the error shape still gives the status and a message", () =>
    Effect.gen(function* () {
      const { error } = yield* retrieveFails({ status: 502, text: "<html>bad gateway</html>" })
      expect(error._tag).toBe("ServerError")
      expect(error.message).toContain("bad gateway")
      const empty = yield* retrieveFails({ status: 503, text: "" })
      expect(empty.error.message).toBe("503 Service Unavailable from GET /batches/batch_1")
    })
  )

  it.effect("a 2xx that does not match the schema is a ResponseDecodeError", () =>
    Effect.gen(function* () {
      const bad = yield* retrieveFails({
        status: 200,
        json: { id: "batch_1", object: "batch" },
        headers: { "x-request-id": "req_d" }
      })
      expect(bad.error._tag).toBe("ResponseDecodeError")
      expect(bad.error._tag === "ResponseDecodeError" && bad.error.requestId).toBe("req_d")
      const notJson = yield* retrieveFails({ status: 200, text: '{"id": "batch_1", "obj' })
      expect(notJson.error._tag).toBe("ResponseDecodeError")
      expect(notJson.requests.length).toBe(1)
    })
  )

  it.effect("a reset is a TransportError naming the request, not its URL or headers", () =>
    Effect.gen(function* () {
      const { error } = yield* retrieveFails({ reset: "before" })
      expect(error._tag).toBe("TransportError")
      expect(error._tag === "TransportError" && error.request).toBe("GET /batches/batch_1")
    })
  )

  it.effect("the key never appears in a message, String(error) or JSON, even when the server echoes it", () =>
    Effect.gen(function* () {
      const replies: Array<Reply> = [
        {
          status: 401,
          json: errorJson(
            `Incorrect API key provided: ${testKey}.`,
            "invalid_request_error",
            "invalid_api_key"
          )
        },
        { status: 500, text: `crash with ${testKey}` },
        { status: 200, json: { leaked: testKey } },
        { reset: "after" }
      ]
      for (const reply of replies) {
        const { error } = yield* retrieveFails(reply)
        for (const text of [
          error.message,
          String(error),
          JSON.stringify(error),
          error.toString(),
          String((error as Error).stack)
        ]) {
          expect(text).not.toContain(testKey)
        }
      }
      const auth = yield* retrieveFails(replies[0]!)
      expect(auth.error.message).toBe("Incorrect API key provided: <redacted>.")
    })
  )
})

describe("local validation sends nothing", () => {
  const rejects = <A, E>(
    f: (s: { batches: BatchService.Service; files: FileService.Service }) => Effect.Effect<A, E>
  ) =>
    Effect.gen(function* () {
      const { mock, layer } = withReply({ status: 200, json: {} })
      const error = yield* Effect.gen(function* () {
        return yield* Effect.flip(
          f({ batches: yield* BatchService.BatchService, files: yield* FileService.FileService })
        )
      }).pipe(Effect.provide(layer))
      expect(mock.requests).toEqual([])
      expect((error as { _tag: string })._tag).toBe("InvalidRequest")
      return error as BatchError.InvalidRequest
    })

  it.effect("limit 0 and 101", () =>
    Effect.gen(function* () {
      for (const limit of [0, 101, 1.5]) {
        const error = yield* rejects(({ batches }) => batches.list({ limit }))
        expect(error.field).toBe("limit")
        expect(error.message).toContain("limit")
      }
      const streamed = yield* rejects(({ batches }) => Stream.runDrain(batches.stream({ limit: 0 })))
      expect(streamed.field).toBe("limit")
      const files = yield* rejects(({ files }) => files.list({ limit: 10001 }))
      expect(files.field).toBe("limit")
    })
  )

  it.effect("ids with /, ?, #, .. or nothing at all", () =>
    Effect.gen(function* () {
      for (const id of ["batch/1", "../files", "batch_1?x=1", "batch#1", "", "batch 1", "%2e%2e"]) {
        const error = yield* rejects(({ batches }) => batches.retrieve(id))
        expect(error.field).toBe("batch_id")
        yield* rejects(({ batches }) => batches.cancel(id))
        yield* rejects(({ batches }) => Stream.runDrain(batches.watch(id)))
        const file = yield* rejects(({ files }) => files.retrieve(id))
        expect(file.field).toBe("file_id")
        yield* rejects(({ files }) => files.delete(id))
        yield* rejects(({ files }) => Stream.runDrain(files.content(id)))
      }
      const after = yield* rejects(({ batches }) => batches.list({ after: "a/b" }))
      expect(after.field).toBe("after")
    })
  )

  it.effect("17 metadata pairs, and 16 when idempotent create keeps one", () =>
    Effect.gen(function* () {
      const pairs = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]))
      const error = yield* rejects(({ batches }) =>
        batches.create(
          { input_file_id: "file-1", endpoint: "/v1/embeddings", metadata: pairs(17) },
          { idempotent: false }
        )
      )
      expect(error.field).toBe("metadata")
      expect(error.message).toContain("16")
      const sixteen = yield* rejects(({ batches }) =>
        batches.create({ input_file_id: "file-1", endpoint: "/v1/embeddings", metadata: pairs(16) })
      )
      expect(sixteen.message).toContain("at most 15 pairs")
      expect(sixteen.message).toContain("idempotent")
    })
  )

  it.effect("bad create params name their field", () =>
    Effect.gen(function* () {
      const bad: Array<[unknown, string]> = [
        [
          { input_file_id: "file-1", endpoint: "/v1/embeddings", completion_window: "1h" },
          "completion_window"
        ],
        [{ input_file_id: "file/1", endpoint: "/v1/embeddings" }, "input_file_id"],
        [{ input_file_id: "file-1", endpoint: "embeddings" }, "endpoint"],
        [
          {
            input_file_id: "file-1",
            endpoint: "/v1/embeddings",
            output_expires_after: { anchor: "created_at", seconds: 60 }
          },
          "output_expires_after.seconds"
        ],
        [
          { input_file_id: "file-1", endpoint: "/v1/embeddings", metadata: { k: "v".repeat(600) } },
          "metadata.k"
        ]
      ]
      for (const [params, field] of bad) {
        const error = yield* rejects(({ batches }) => batches.create(params as never))
        expect(error.field).toBe(field)
      }
    })
  )

  it.effect("uploads that the API would refuse", () =>
    Effect.gen(function* () {
      const notJsonl = yield* rejects(({ files }) => files.upload(FileService.fromBytes("input.csv", "a,b")))
      expect(notJsonl.message).toContain(".jsonl")
      const huge = yield* rejects(({ files }) =>
        files.upload({ filename: "x.jsonl", size: 201 * 1024 * 1024, stream: Stream.empty })
      )
      expect(huge.message).toContain("200 MB")
    })
  )
})
