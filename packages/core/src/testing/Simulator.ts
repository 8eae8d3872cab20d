/**
 * An in-memory Batch and Files API for tests: batches move through the real lifecycle on the
 * Effect `Clock`, so a test drives them with `TestClock.adjust` and never sleeps.
 *
 * The simulator answers HTTP-shaped requests, and `layer` runs the real `BatchService` and
 * `FileService` over it through an in-memory `HttpClient`: a test exercises the same validation,
 * retries and decoding as production, and the emulator in `@batchkit/node` serves the very same
 * engine over real HTTP.
 *
 * @since 0.1.0
 * @example
 * ```ts
 * import { BatchService, FileService } from "@batchkit/core"
 * import { Simulator } from "@batchkit/core/testing"
 * import * as Effect from "effect/Effect"
 * import * as TestClock from "effect/TestClock"
 *
 * const test = Effect.gen(function* () {
 *   const files = yield* FileService.FileService
 *   const batches = yield* BatchService.BatchService
 *   const file = yield* files.upload(FileService.fromBytes("in.jsonl", jsonl))
 *   const batch = yield* batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions" })
 *   yield* TestClock.adjust("1 hour")
 *   const done = yield* batches.retrieve(batch.id) // completed
 * }).pipe(Effect.provide(Simulator.layer()))
 * ```
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as BatchConfig from "../BatchConfig.js"
import * as BatchService from "../BatchService.js"
import * as FileService from "../FileService.js"
import * as Engine from "./internal/engine.js"
import * as Provider from "../Provider.js"
import * as Responder from "./Responder.js"

/**
 * An operation faults can be aimed at.
 *
 * @since 0.1.0
 * @category models
 */
export type Operation = Engine.Operation

/**
 * Every operation, for tables of tests.
 *
 * @since 0.1.0
 * @category constants
 */
export const operations = Engine.operations

/**
 * The tag of every fault, for tables of tests and for checking fault rules from outside.
 *
 * @since 0.2.0
 * @category constants
 */
export const faultTags = Engine.faultTags

/**
 * A fault: a 429 (with a delay, or for quota), a 5xx, a reset before or after the server acted,
 * a slow answer, or a body cut in the middle.
 *
 * @since 0.1.0
 * @category faults
 */
export type Fault = Engine.Fault

/**
 * A fault aimed at the next `times` calls of an operation (`"*"`: any operation).
 *
 * @since 0.1.0
 * @category faults
 */
export type FaultRule = Engine.FaultRule

/**
 * @since 0.1.0
 * @category faults
 */
export const rateLimited = (options?: {
  readonly retryAfter?: Duration.DurationInput
  readonly quota?: boolean
}): Fault => ({
  _tag: "RateLimited",
  ...(options?.retryAfter !== undefined
    ? { retryAfterMillis: Duration.toMillis(Duration.decode(options.retryAfter)) }
    : {}),
  ...(options?.quota ? { quota: true } : {})
})

/**
 * A webhook delivery signed with the wrong secret (aim it at `webhooks.deliver`).
 *
 * @since 0.2.0
 * @category faults
 */
export const badSignature: Fault = { _tag: "BadSignature" }

/**
 * A webhook delivery that never arrives (aim it at `webhooks.deliver`).
 *
 * @since 0.2.0
 * @category faults
 */
export const lostDelivery: Fault = { _tag: "Lost" }

/**
 * @since 0.1.0
 * @category faults
 */
export const serverError = (status = 500): Fault => ({ _tag: "ServerError", status })

/**
 * The connection drops before the server does anything.
 *
 * @since 0.1.0
 * @category faults
 */
export const resetBefore: Fault = { _tag: "ResetBefore" }

/**
 * The server does the work, then the connection drops before the answer.
 *
 * @since 0.1.0
 * @category faults
 */
export const resetAfter: Fault = { _tag: "ResetAfter" }

/**
 * The server acts at once but its answer comes after `delay` (on the Clock: a test moves it
 * with `TestClock.adjust`).
 *
 * @since 0.1.0
 * @category faults
 */
export const slow = (delay: Duration.DurationInput): Fault => ({
  _tag: "Slow",
  delayMillis: Duration.toMillis(Duration.decode(delay))
})

/**
 * A 2xx whose body is cut in the middle.
 *
 * @since 0.1.0
 * @category faults
 */
export const truncatedBody: Fault = { _tag: "TruncatedBody" }

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How long a batch stays `validating`. Default 10 s. */
  readonly validationDelay?: Duration.DurationInput | undefined
  /** How fast requests finish once `in_progress`. Default 10 per second. */
  readonly requestsPerSecond?: number | undefined
  /** How long a batch stays `finalizing`. Default 10 s. */
  readonly finalizingDelay?: Duration.DurationInput | undefined
  /** How long a batch stays `cancelling`. Default 5 s. */
  readonly cancellingDelay?: Duration.DurationInput | undefined
  /** The completion window. Default 24 h. */
  readonly completionWindow?: Duration.DurationInput | undefined
  /** The answer to each request. Default {@link Responder.plausible}. */
  readonly responder?: Responder.Responder | undefined
  /** The only key accepted. By default any non-empty key is. */
  readonly apiKey?: string | undefined
  /** Faults armed from the start. */
  readonly faults?: ReadonlyArray<FaultRule> | undefined
  /** The time in ms. Default `Clock.currentTimeMillis` (so `TestClock` drives it). */
  readonly now?: Effect.Effect<number> | undefined
  /**
   * The time shown in answers (`created_at` and the rest) for a time of `now`'s clock. Default:
   * the same. The emulator runs batches faster than the wall clock and maps its times back here.
   */
  readonly stamp?: ((simulated: number) => number) | undefined
  /** Makes the ids it hands out repeatable. By default every simulator has ids of its own. */
  readonly seed?: string | undefined
  /**
   * The organisation's enqueued-token limit per model: a batch that would take the tokens of its
   * model's running batches (`validating` done, not yet ended) over it fails validation with
   * `token_limit_exceeded`, as the API's do. Tokens are `BatchLine.estimateTokens`. Default: none.
   */
  readonly enqueuedTokenLimits?: Readonly<Record<string, number>> | undefined
  /**
   * Whose batch API it plays: the endpoints and `completion_window`s a create may name and the
   * requests a batch may hold (`Provider.azure`: `/chat/completions`, 100,000 requests). Paths,
   * authentication and error bodies are the HTTP layer's: the emulator's `provider`. Default
   * `Provider.openai`.
   */
  readonly provider?: Provider.Profile | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Answers one HTTP-shaped request (what the emulator serves). */
  readonly handle: (request: Engine.Request) => Effect.Effect<Engine.Reply>
  /** Arms a fault for the next `times` calls of an operation. */
  readonly inject: (operation: Operation | "*", fault: Fault, times?: number) => Effect.Effect<void>
  readonly clearFaults: Effect.Effect<void>
  readonly pendingFaults: Effect.Effect<ReadonlyArray<FaultRule>>
  /** Every batch as the API would show it now, newest first (plain JSON objects). */
  readonly batches: Effect.Effect<ReadonlyArray<Record<string, unknown>>>
  /** Every stored file (plain JSON objects). */
  readonly files: Effect.Effect<ReadonlyArray<Record<string, unknown>>>
  /** Every request the simulator saw, in order (headers without `authorization`). */
  readonly requests: Effect.Effect<ReadonlyArray<Engine.SeenRequest>>
  /**
   * The batches that have ended since the last call, each once: what a sender of webhooks (the
   * emulator) delivers events for.
   */
  readonly takeEnded: Effect.Effect<ReadonlyArray<Engine.EndedBatch>>
  /** The fault armed for the next webhook delivery (`inject("webhooks.deliver", …)`), if any. */
  readonly deliveryFault: Effect.Effect<Fault | undefined>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Simulator extends Context.Tag("@batchkit/core/testing/Simulator")<Simulator, Service>() {}

const millis = (d: Duration.DurationInput | undefined, fallback: Duration.DurationInput) =>
  Duration.toMillis(Duration.decode(d ?? fallback))

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service> =>
  Effect.gen(function* () {
    const rate = options.requestsPerSecond ?? 10
    if (!(rate > 0)) return yield* Effect.dieMessage("Simulator: requestsPerSecond must be above 0")
    const engine = yield* Engine.make({
      validationMillis: millis(options.validationDelay, "10 seconds"),
      requestsPerSecond: rate,
      finalizingMillis: millis(options.finalizingDelay, "10 seconds"),
      cancellingMillis: millis(options.cancellingDelay, "5 seconds"),
      windowMillis: millis(options.completionWindow, "24 hours"),
      responder: options.responder ?? Responder.plausible,
      apiKey: options.apiKey,
      now: options.now ?? Clock.currentTimeMillis,
      stamp: options.stamp,
      seed: options.seed,
      tokenLimits: options.enqueuedTokenLimits,
      provider: options.provider ?? Provider.openai
    })
    for (const rule of options.faults ?? []) yield* engine.inject(rule)
    return {
      handle: engine.handle,
      inject: (operation, fault, times = 1) => engine.inject({ operation, fault, times }),
      clearFaults: engine.clearFaults,
      pendingFaults: engine.pendingFaults,
      batches: engine.batches,
      files: engine.files,
      requests: engine.requests,
      takeEnded: engine.takeEnded,
      deliveryFault: engine.deliveryFault
    }
  })

const concat = (chunks: Chunk.Chunk<Uint8Array>) => {
  const out = new Uint8Array(Chunk.reduce(chunks, 0, (n, c) => n + c.byteLength))
  let offset = 0
  for (const c of chunks) {
    out.set(c, offset)
    offset += c.byteLength
  }
  return out
}

const bodyBytes = (
  request: HttpClientRequest.HttpClientRequest
): Effect.Effect<
  Uint8Array | { readonly bytes: Uint8Array; readonly contentType: string | undefined },
  unknown
> => {
  const body = request.body
  switch (body._tag) {
    case "Uint8Array":
      return Effect.succeed(body.body)
    case "Raw":
      return Effect.succeed(
        typeof body.body === "string"
          ? new TextEncoder().encode(body.body)
          : new TextEncoder().encode(JSON.stringify(body.body))
      )
    case "Stream":
      return Effect.map(Stream.runCollect(body.stream), concat)
    case "FormData":
      // encoded once: the boundary in the content type must be the one in the bytes
      return Effect.promise(async () => {
        const encoded = new Response(body.formData)
        return {
          bytes: new Uint8Array(await encoded.arrayBuffer()),
          contentType: encoded.headers.get("content-type") ?? undefined
        }
      })
    default:
      return Effect.succeed(new Uint8Array())
  }
}

/**
 * An `HttpClient` whose every request is answered by the simulator, in memory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const httpClient = (simulator: Service): HttpClient.HttpClient =>
  HttpClient.make((request, url) =>
    Effect.gen(function* () {
      const transport = (message: string, cause?: unknown) =>
        new HttpClientError.RequestError({ request, reason: "Transport", cause: cause ?? new Error(message) })
      const read = yield* Effect.mapError(bodyBytes(request), (cause) =>
        transport("reading the request body failed", cause)
      )
      const body = read instanceof Uint8Array ? read : read.bytes
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries(request.headers)) headers[k.toLowerCase()] = v
      if (!(read instanceof Uint8Array)) {
        headers["content-type"] = read.contentType ?? ""
      } else if (
        request.body._tag !== "Empty" &&
        request.body.contentType !== undefined &&
        headers["content-type"] === undefined
      ) {
        headers["content-type"] = request.body.contentType
      }
      const reply = yield* simulator.handle({
        method: request.method,
        path: url.pathname,
        query: url.searchParams,
        headers,
        body
      })
      if (reply._tag === "Reset")
        return yield* Effect.fail(transport("socket hang up (simulated connection reset)"))
      const payload = reply.truncate
        ? (() => {
            // the first half arrives, then the connection drops (an error in the same turn
            // would discard what was queued: the client would see nothing of the body)
            let sent = false
            return new ReadableStream<Uint8Array<ArrayBuffer>>({
              pull(controller) {
                if (sent) return controller.error(new Error("other side closed (simulated truncated body)"))
                sent = true
                controller.enqueue(
                  reply.body.slice(0, Math.floor(reply.body.byteLength / 2)) as Uint8Array<ArrayBuffer>
                )
              }
            })
          })()
        : (reply.body as Uint8Array<ArrayBuffer>)
      return HttpClientResponse.fromWeb(
        request,
        new Response(payload, { status: reply.status, headers: reply.headers })
      )
    })
  )

/**
 * The simulator alone.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSimulator = (options?: Options): Layer.Layer<Simulator> =>
  Layer.effect(Simulator, make(options))

/**
 * The simulator with `BatchService` and `FileService` running over it: one line in a test.
 * `config` sets the client's side (retry policy, timeout, idempotent create); the key and base
 * URL are the simulator's own.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options & { readonly config?: Partial<BatchConfig.Options> | undefined } = {}
): Layer.Layer<Simulator | BatchService.BatchService | FileService.FileService> => {
  const client = Layer.effect(HttpClient.HttpClient, Effect.map(Simulator, httpClient))
  const azure = options.provider?.name === "azure"
  const config = BatchConfig.layer({
    // the client speaks to the provider the simulator plays (Azure: its paths, api-version, api-key)
    provider: options.provider ?? Provider.openai,
    ...(azure ? { apiVersion: "2024-10-21" } : {}),
    ...options.config,
    apiKey: options.apiKey ?? "sk-simulator",
    baseUrl: azure ? "http://simulator.batchkit.invalid/openai" : "http://simulator.batchkit.invalid/v1"
  })
  const services = Layer.mergeAll(BatchService.layer, FileService.layer).pipe(
    Layer.provide(client),
    Layer.provide(config)
  )
  return Layer.provideMerge(services, layerSimulator(options))
}
