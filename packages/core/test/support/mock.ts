/**
 * A recording mock `HttpClient` and a small in-memory API behind it, for unit tests.
 * Every request is recorded with its method, path, query, headers and body text.
 */
import { HttpClient, HttpClientError, type HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { Clock, Effect, Layer, Stream } from "effect"
import { BatchConfig, BatchService, FileService } from "../../src/index.js"

export interface Recorded {
  readonly method: string
  readonly path: string
  readonly query: Record<string, string>
  readonly headers: Record<string, string>
  readonly body: string
  /** When the request was sent, by the Effect clock (TestClock in unit tests). */
  readonly at: number
}

export type Reply =
  | {
      readonly status: number
      readonly json?: unknown
      readonly text?: string
      readonly headers?: Record<string, string>
    }
  | { readonly reset: "before" | "after" }
  | { readonly hang: true }
  | {
      readonly status: number
      readonly body: ReadableStream<Uint8Array>
      readonly headers?: Record<string, string>
    }

export type Handler = (request: Recorded) => Reply | undefined

// one encoding per FormData, so the boundary in the body and in the content type agree
const encodings = new WeakMap<FormData, Response>()
const encodeForm = (form: FormData) => {
  let encoded = encodings.get(form)
  if (encoded === undefined) {
    encoded = new Response(form)
    encodings.set(form, encoded)
  }
  return encoded
}

const bodyText = (request: HttpClientRequest.HttpClientRequest): Effect.Effect<string> => {
  const body = request.body
  switch (body._tag) {
    case "Uint8Array":
      return Effect.succeed(new TextDecoder().decode(body.body))
    case "Raw":
      return Effect.succeed(typeof body.body === "string" ? body.body : JSON.stringify(body.body))
    case "Stream":
      return body.stream.pipe(Stream.decodeText(), Stream.mkString, Effect.orDie)
    case "FormData":
      // what a client sends for it: the encoded parts (the boundary is in `formContentType`)
      return Effect.promise(() => encodeForm(body.formData).text())
    default:
      return Effect.succeed("")
  }
}

/** A mock client: `handle` answers each recorded request; unanswered requests get a 404. */
export const makeMock = (handle: Handler) => {
  const requests: Array<Recorded> = []
  const client = HttpClient.make((request, url) =>
    Effect.gen(function* () {
      const recorded: Recorded = {
        method: request.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: {
          ...request.headers,
          ...(request.body._tag === "FormData"
            ? { "content-type": encodeForm(request.body.formData).headers.get("content-type") ?? "" }
            : {})
        },
        body: yield* bodyText(request),
        at: yield* Clock.currentTimeMillis
      }
      requests.push(recorded)
      const reply = handle(recorded) ?? {
        status: 404,
        json: { error: { message: "no route", type: "invalid_request_error", param: null, code: null } }
      }
      if ("reset" in reply) {
        return yield* Effect.fail(
          new HttpClientError.RequestError({
            request,
            reason: "Transport",
            cause: new Error(`socket hang up (${reply.reset})`)
          })
        )
      }
      if ("hang" in reply) return yield* Effect.never
      if ("body" in reply) {
        return HttpClientResponse.fromWeb(
          request,
          new Response(reply.body, { status: reply.status, headers: reply.headers ?? {} })
        )
      }
      const text = reply.text ?? (reply.json === undefined ? "" : JSON.stringify(reply.json))
      return HttpClientResponse.fromWeb(
        request,
        new Response(text === "" && reply.status === 204 ? null : text, {
          status: reply.status,
          headers: { "content-type": "application/json", ...reply.headers }
        })
      )
    })
  )
  return { requests, layer: Layer.succeed(HttpClient.HttpClient, client) }
}

export const testKey = "sk-test-SECRET-0123456789abcdef"

export const servicesLayer = (
  mock: { readonly layer: Layer.Layer<HttpClient.HttpClient> },
  options: Partial<BatchConfig.Options> = {}
) =>
  Layer.mergeAll(BatchService.layer, FileService.layer).pipe(
    Layer.provide(mock.layer),
    Layer.provide(BatchConfig.layer({ apiKey: testKey, baseUrl: "https://api.test/v1", ...options }))
  )

export const batchJson = (id: string, overrides: Record<string, unknown> = {}) => ({
  id,
  object: "batch",
  endpoint: "/v1/chat/completions",
  errors: null,
  input_file_id: "file-abc123",
  completion_window: "24h",
  status: "validating",
  output_file_id: null,
  error_file_id: null,
  created_at: 1711471533,
  in_progress_at: null,
  expires_at: null,
  finalizing_at: null,
  completed_at: null,
  failed_at: null,
  expired_at: null,
  cancelling_at: null,
  cancelled_at: null,
  request_counts: { total: 0, completed: 0, failed: 0 },
  metadata: null,
  ...overrides
})

export const errorJson = (
  message: string,
  type = "invalid_request_error",
  code: string | null = null,
  param: string | null = null
) => ({
  error: { message, type, param, code }
})

/**
 * A tiny stateful batch API over the mock: create stores the batch (with metadata), list pages
 * newest first with `after`, retrieve and cancel work on the store.
 */
export const makeFakeApi = (options: { readonly now?: () => number } = {}) => {
  const batches: Array<Record<string, unknown>> = []
  let seq = 0
  const now = options.now ?? (() => Math.floor(Date.now() / 1000))
  const handle: Handler = (request) => {
    if (request.method === "POST" && request.path === "/v1/batches") {
      const body = JSON.parse(request.body) as Record<string, unknown>
      const batch = batchJson(`batch_${String(++seq).padStart(4, "0")}`, {
        input_file_id: body.input_file_id,
        endpoint: body.endpoint,
        metadata: body.metadata ?? null,
        created_at: now()
      })
      batches.unshift(batch)
      return { status: 200, json: batch, headers: { "x-request-id": `req_create_${seq}` } }
    }
    if (request.method === "GET" && request.path === "/v1/batches") {
      const limit = Number(request.query.limit ?? 20)
      const start =
        request.query.after === undefined ? 0 : batches.findIndex((b) => b.id === request.query.after) + 1
      const data = batches.slice(start, start + limit)
      return {
        status: 200,
        json: {
          object: "list",
          data,
          first_id: data[0]?.id ?? null,
          last_id: data.at(-1)?.id ?? null,
          has_more: start + limit < batches.length
        }
      }
    }
    const m = /^\/v1\/batches\/([^/]+)(\/cancel)?$/.exec(request.path)
    if (m) {
      const batch = batches.find((b) => b.id === m[1])
      if (!batch)
        return {
          status: 404,
          json: errorJson(`No batch found with id '${m[1]}'.`),
          headers: { "x-request-id": "req_404" }
        }
      if (m[2]) {
        if (["completed", "failed", "expired", "cancelled"].includes(batch.status as string)) {
          return {
            status: 409,
            json: errorJson(`Cannot cancel a batch with status '${batch.status}'.`),
            headers: { "x-request-id": "req_409" }
          }
        }
        batch.status = "cancelling"
      }
      return { status: 200, json: batch }
    }
    return undefined
  }
  return { batches, handle }
}
