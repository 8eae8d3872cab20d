/**
 * Batch webhooks: OpenAI sends `batch.completed`, `batch.failed`, `batch.expired` and
 * `batch.cancelled` events, signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature`: HMAC-SHA256 over `id.timestamp.body` with the `whsec_` secret, any one of
 * the space-separated `v1,…` signatures matching, within 300 s of now).
 *
 * `verify` checks and decodes one delivery; `receiver` is an HTTP app that answers deliveries
 * and publishes their events to `Events`, which `BatchService.watch` and `watchMany` listen to:
 * a batch whose event arrives is looked at at once, and polling becomes the slower fallback.
 *
 * @since 0.2.0
 * @example
 * ```ts
 * import { Webhooks } from "@batchkit/core"
 * import * as Effect from "effect/Effect"
 * import * as Redacted from "effect/Redacted"
 *
 * const secret = Redacted.make(process.env.OPENAI_WEBHOOK_SECRET!)
 * const event = Webhooks.verify(secret, headers, rawBody) // Effect<Webhooks.Event, Webhooks.WebhookError>
 * ```
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

const eventFields = {
  id: Schema.String,
  object: Schema.optional(Schema.String),
  created_at: Schema.Number,
  data: Schema.Struct({ id: Schema.String })
}

/**
 * @since 0.2.0
 * @category events
 */
export class BatchCompleted extends Schema.Class<BatchCompleted>("@batchkit/core/Webhooks/BatchCompleted")({
  ...eventFields,
  type: Schema.Literal("batch.completed")
}) {}

/**
 * @since 0.2.0
 * @category events
 */
export class BatchFailed extends Schema.Class<BatchFailed>("@batchkit/core/Webhooks/BatchFailed")({
  ...eventFields,
  type: Schema.Literal("batch.failed")
}) {}

/**
 * @since 0.2.0
 * @category events
 */
export class BatchExpired extends Schema.Class<BatchExpired>("@batchkit/core/Webhooks/BatchExpired")({
  ...eventFields,
  type: Schema.Literal("batch.expired")
}) {}

/**
 * @since 0.2.0
 * @category events
 */
export class BatchCancelled extends Schema.Class<BatchCancelled>("@batchkit/core/Webhooks/BatchCancelled")({
  ...eventFields,
  type: Schema.Literal("batch.cancelled")
}) {}

/**
 * An event of another kind (`response.completed`, …): acknowledged, and of no use to a watcher.
 *
 * @since 0.2.0
 * @category events
 */
export class OtherEvent extends Schema.Class<OtherEvent>("@batchkit/core/Webhooks/OtherEvent")({
  id: Schema.String,
  type: Schema.String,
  created_at: Schema.optional(Schema.Number),
  data: Schema.optional(Schema.Unknown)
}) {}

/**
 * @since 0.2.0
 * @category events
 */
export type BatchEvent = BatchCompleted | BatchFailed | BatchExpired | BatchCancelled

/**
 * @since 0.2.0
 * @category events
 */
export type Event = BatchEvent | OtherEvent

/**
 * @since 0.2.0
 * @category schemas
 */
export const Event: Schema.Schema<Event, unknown> = Schema.Union(
  BatchCompleted,
  BatchFailed,
  BatchExpired,
  BatchCancelled,
  OtherEvent
) as never

/**
 * Whether an event is about a batch (and which).
 *
 * @since 0.2.0
 * @category events
 */
export const isBatchEvent = (event: Event): event is BatchEvent =>
  event.type === "batch.completed" ||
  event.type === "batch.failed" ||
  event.type === "batch.expired" ||
  event.type === "batch.cancelled"

/**
 * A delivery that is not a genuine, fresh, well-formed event: `reason` says which check failed.
 *
 * @since 0.2.0
 * @category errors
 */
export class WebhookError extends Schema.TaggedError<WebhookError>("@batchkit/core/WebhookError")(
  "WebhookError",
  {
    reason: Schema.Literal("MissingHeaders", "BadSignature", "StaleTimestamp", "MalformedBody", "TooLarge"),
    message: Schema.String
  }
) {}

const fail = (reason: WebhookError["reason"], message: string) =>
  Effect.fail(new WebhookError({ reason, message }))

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

const fromBase64 = (text: string): Uint8Array | undefined => {
  try {
    const raw = atob(text)
    const bytes = new Uint8Array(raw.length)
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i)
    return bytes
  } catch {
    return undefined
  }
}

const toBase64 = (bytes: Uint8Array) => {
  let raw = ""
  for (const b of bytes) raw += String.fromCharCode(b)
  return btoa(raw)
}

/** The key bytes of a `whsec_…` secret (base64 after the prefix; a secret without it is used as text). */
const keyBytes = (secret: Redacted.Redacted<string>): Uint8Array => {
  const value = Redacted.value(secret)
  if (value.startsWith("whsec_")) return fromBase64(value.slice("whsec_".length)) ?? encoder.encode(value)
  return encoder.encode(value)
}

const hmac = (secret: Redacted.Redacted<string>, content: Uint8Array) =>
  Effect.promise(async () => {
    const key = await globalThis.crypto.subtle.importKey(
      "raw",
      keyBytes(secret) as Uint8Array<ArrayBuffer>,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"]
    )
    return new Uint8Array(
      await globalThis.crypto.subtle.sign("HMAC", key, content as Uint8Array<ArrayBuffer>)
    )
  })

const signedContent = (id: string, timestamp: string, body: Uint8Array) => {
  const head = encoder.encode(`${id}.${timestamp}.`)
  const out = new Uint8Array(head.length + body.length)
  out.set(head)
  out.set(body, head.length)
  return out
}

/** Compares in time independent of where the first difference is. */
const equal = (a: Uint8Array, b: Uint8Array) => {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}

/**
 * The `webhook-signature` header value for a delivery: what a sender (the emulator, a test) puts
 * on it.
 *
 * @since 0.2.0
 * @category signing
 */
export const sign = (
  secret: Redacted.Redacted<string>,
  id: string,
  timestamp: number,
  body: Uint8Array | string
): Effect.Effect<string> =>
  Effect.map(
    hmac(
      secret,
      signedContent(id, String(timestamp), typeof body === "string" ? encoder.encode(body) : body)
    ),
    (mac) => `v1,${toBase64(mac)}`
  )

/**
 * @since 0.2.0
 * @category models
 */
export interface VerifyOptions {
  /** How far a delivery's timestamp may be from now, either way. Default 300 s. */
  readonly tolerance?: Duration.DurationInput | undefined
}

const decodeEvent = Schema.decodeUnknownEither(Event)

/**
 * Verifies a delivery (headers with lower-case names, and the raw body as received), then
 * decodes its event. The signature is checked before the body is parsed.
 *
 * @since 0.2.0
 * @category verifying
 */
export const verify = (
  secret: Redacted.Redacted<string>,
  headers: Readonly<Record<string, string | undefined>>,
  body: Uint8Array | string,
  options?: VerifyOptions
): Effect.Effect<Event, WebhookError> =>
  Effect.gen(function* () {
    const id = headers["webhook-id"]
    const timestamp = headers["webhook-timestamp"]
    const signatures = headers["webhook-signature"]
    if (id === undefined || timestamp === undefined || signatures === undefined)
      return yield* fail("MissingHeaders", "webhook-id, webhook-timestamp and webhook-signature are required")
    const seconds = Number(timestamp)
    const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    const tolerance = Duration.toSeconds(Duration.decode(options?.tolerance ?? "300 seconds"))
    if (!/^\d+$/.test(timestamp) || Math.abs(now - seconds) > tolerance)
      return yield* fail("StaleTimestamp", "the webhook-timestamp is not within the tolerance of now")
    const bytes = typeof body === "string" ? encoder.encode(body) : body
    const expected = yield* hmac(secret, signedContent(id, timestamp, bytes))
    const matches = signatures
      .split(" ")
      .map((s) => s.trim())
      .filter((s) => s.startsWith("v1,"))
      .some((s) => {
        const given = fromBase64(s.slice(3))
        return given !== undefined && equal(given, expected)
      })
    if (!matches) return yield* fail("BadSignature", "no webhook-signature matches the secret")
    let json: unknown
    try {
      json = JSON.parse(decoder.decode(bytes))
    } catch {
      return yield* fail("MalformedBody", "the body is not JSON")
    }
    const event = decodeEvent(json)
    if (Either.isLeft(event)) return yield* fail("MalformedBody", "the body is not a webhook event")
    return event.right
  })

/**
 * Where verified events go: the receiver publishes, watchers subscribe.
 *
 * @since 0.2.0
 * @category models
 */
export interface Service {
  readonly publish: (event: Event) => Effect.Effect<void>
  /** Events from now on, for the life of the scope. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event>, never, Scope.Scope>
}

/**
 * @since 0.2.0
 * @category tags
 */
export class Events extends Context.Tag("@batchkit/core/Webhooks/Events")<Events, Service>() {}

/**
 * An in-process event hub. `BatchService.watch` and `watchMany` find it in their context.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerEvents: Layer.Layer<Events> = Layer.effect(
  Events,
  Effect.map(PubSub.unbounded<Event>(), (hub) => ({
    publish: (event) => Effect.asVoid(PubSub.publish(hub, event)),
    subscribe: PubSub.subscribe(hub)
  }))
)

/**
 * @since 0.2.0
 * @category models
 */
export interface ReceiverOptions extends VerifyOptions {
  readonly secret: Redacted.Redacted<string>
  /** Larger bodies are refused before they are read whole. Default 64 KiB (events are small). */
  readonly maxBodyBytes?: number | undefined
}

const badRequest = HttpServerResponse.empty({ status: 400 })

/**
 * The receiving end, as an HTTP app: a delivery whose body stays within `maxBodyBytes`, whose
 * signature matches and whose timestamp is fresh is published to `Events` and answered 200;
 * anything else gets a bare 400, with nothing that would help a forger.
 *
 * @since 0.2.0
 * @category receiving
 */
export const receiver = (
  options: ReceiverOptions
): Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  never,
  HttpServerRequest.HttpServerRequest | Events
> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const events = yield* Events
    const max = options.maxBodyBytes ?? 64 * 1024
    if (request.method !== "POST") return HttpServerResponse.empty({ status: 405 })
    const declared = Number(request.headers["content-length"] ?? "0")
    if (!Number.isFinite(declared) || declared > max) return badRequest
    const chunks: Array<Uint8Array> = []
    let size = 0
    const read = yield* request.stream.pipe(
      Stream.runForEachWhile((chunk) =>
        Effect.sync(() => {
          size += chunk.byteLength
          if (size <= max) chunks.push(chunk)
          return size <= max
        })
      ),
      Effect.either
    )
    if (Either.isLeft(read) || size > max) return badRequest
    const body = new Uint8Array(size)
    let at = 0
    for (const c of chunks) {
      body.set(c, at)
      at += c.byteLength
    }
    const headers: Record<string, string | undefined> = {}
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"])
      headers[name] = Headers.get(request.headers, name).pipe((o) =>
        o._tag === "Some" ? o.value : undefined
      )
    return yield* verify(options.secret, headers, body, options).pipe(
      Effect.flatMap((event) => events.publish(event)),
      Effect.as(HttpServerResponse.empty({ status: 200 })),
      Effect.catchAll(() => Effect.succeed(badRequest))
    )
  })
