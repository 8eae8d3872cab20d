/**
 * An `HttpClient` over undici with as little per-request machinery as the interface allows.
 *
 * `NodeHttpClient.layerUndici` of @effect/platform-node reads every body through `Effect.cached`
 * (a fiber and a deferred per response) and wraps each call in further effects; on a loopback
 * retrieve that was a third of batchkit's time per request. This client keeps everything
 * `HttpClient.make` gives (the span, interruption through the `AbortSignal`, the typed errors)
 * and talks to undici directly: one promise per request, one per body.
 */
import * as Cookies from "@effect/platform/Cookies"
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as UrlParams from "@effect/platform/UrlParams"
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as Undici from "@effect/platform-node/Undici"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"

type Body = string | Uint8Array | FormData | Undici.FormData | AsyncIterable<Uint8Array> | null

const requestBody = (
  request: HttpClientRequest.HttpClientRequest
): Body | Effect.Effect<AsyncIterable<Uint8Array>> => {
  const body = request.body
  switch (body._tag) {
    case "Empty":
      return null
    case "Uint8Array":
      return body.body
    case "Raw":
      return body.body as Body
    case "FormData":
      return toUndiciForm(body.formData)
    case "Stream":
      // pulled by undici as the socket drains, so an upload holds a few chunks at a time
      return Effect.map(Effect.runtime<never>(), (runtime) =>
        Stream.toAsyncIterableRuntime(body.stream as Stream.Stream<Uint8Array>, runtime)
      )
  }
}

/**
 * undici encodes only its own `FormData` class (the global one is Node's bundled copy), so the
 * entries move across: the same values and files, still read lazily, with the length known.
 */
const toUndiciForm = (form: FormData): Undici.FormData => {
  const out = new Undici.FormData()
  form.forEach((value, name) => {
    if (typeof value === "string") out.append(name, value)
    else out.append(name, value, value.name)
  })
  return out
}

/** Wraps a promise without `Effect.tryPromise`'s extras: no signal, no span. */
const fromPromise = <A, E>(evaluate: () => Promise<A>, onError: (cause: unknown) => E) =>
  Effect.async<A, E>((resume) => {
    evaluate().then(
      (value) => resume(Effect.succeed(value)),
      (cause) => resume(Effect.fail(onError(cause)))
    )
  })

const noop = () => {}

/**
 * What undici needs of an `AbortSignal` (it takes any `EventTarget`-like object): `aborted`,
 * `reason` and one `abort` listener. A real `AbortController` per request, with its
 * `EventTarget` machinery, cost more than the rest of the request's setup together.
 */
class Abort {
  aborted = false
  reason: unknown = undefined
  private listener: (() => void) | null = null
  addEventListener(_type: "abort", listener: () => void) {
    this.listener = listener
  }
  removeEventListener(_type: "abort", listener: () => void) {
    if (this.listener === listener) this.listener = null
  }
  abort() {
    if (this.aborted) return
    this.aborted = true
    this.reason = new Error("The operation was aborted")
    const listener = this.listener
    this.listener = null
    listener?.()
  }
}

/**
 * A promise as an effect whose interruption aborts the exchange (an unanswered request, or a
 * body still arriving).
 */
const abortable = <A, E>(
  evaluate: () => Promise<A>,
  onError: (cause: unknown) => E,
  signal: Abort | undefined
) =>
  signal === undefined
    ? fromPromise(evaluate, onError)
    : Effect.async<A, E>((resume) => {
        evaluate().then(
          (value) => resume(Effect.succeed(value)),
          (cause) => resume(Effect.fail(onError(cause)))
        )
        return Effect.sync(() => signal.abort())
      })

/** How much of a response body undici buffers before it stops reading the socket. */
const bodyBuffer = 1024 * 1024

class Response extends Inspectable.Class implements HttpClientResponse.HttpClientResponse {
  readonly [HttpIncomingMessage.TypeId]: HttpIncomingMessage.TypeId = HttpIncomingMessage.TypeId
  readonly [HttpClientResponse.TypeId]: HttpClientResponse.TypeId = HttpClientResponse.TypeId
  private cachedHeaders: Headers.Headers | undefined
  private cachedCookies: Cookies.Cookies | undefined
  private textPromise: Promise<string> | undefined
  private arrayBufferPromise: Promise<ArrayBuffer> | undefined
  private formDataPromise: Promise<FormData> | undefined

  constructor(
    readonly request: HttpClientRequest.HttpClientRequest,
    private readonly source: Undici.Dispatcher.ResponseData,
    /** Aborts the exchange when a read of the body is interrupted (the lean path's own). */
    private readonly signal?: Abort | undefined
  ) {
    super()
    // a body that fails after nobody reads it must not become an unhandled 'error' event
    source.body.on("error", noop)
  }

  get status() {
    return this.source.statusCode
  }

  get headers(): Headers.Headers {
    if (this.cachedHeaders === undefined) {
      this.cachedHeaders = Headers.fromInput(
        this.source.headers as Record<string, string | ReadonlyArray<string> | undefined>
      )
    }
    return this.cachedHeaders
  }

  get cookies(): Cookies.Cookies {
    if (this.cachedCookies !== undefined) return this.cachedCookies
    const header = this.source.headers["set-cookie"]
    this.cachedCookies =
      header === undefined ? Cookies.empty : Cookies.fromSetCookie(Array.isArray(header) ? header : [header])
    return this.cachedCookies
  }

  get remoteAddress() {
    return Option.none<string>()
  }

  private error = (cause: unknown) =>
    new HttpClientError.ResponseError({ request: this.request, response: this, reason: "Decode", cause })

  /**
   * The body as it arrives: each pull takes every chunk the body has buffered (up to
   * {@link bodyBuffer}), through persistent listeners rather than a promise per chunk, so a
   * 200 MB download costs a few thousand cheap pulls. A consumer that stops early destroys the
   * body, which closes the download.
   */
  get stream(): Stream.Stream<Uint8Array, HttpClientError.ResponseError> {
    return NodeStream.fromReadable<HttpClientError.ResponseError, Uint8Array>(
      () => this.source.body,
      this.error
    )
  }

  get text(): Effect.Effect<string, HttpClientError.ResponseError> {
    return abortable(() => (this.textPromise ??= this.source.body.text()), this.error, this.signal)
  }

  get json(): Effect.Effect<unknown, HttpClientError.ResponseError> {
    return Effect.flatMap(this.text, (text) =>
      Effect.try({ try: () => (text === "" ? null : JSON.parse(text)), catch: this.error })
    )
  }

  get arrayBuffer(): Effect.Effect<ArrayBuffer, HttpClientError.ResponseError> {
    return abortable(
      () => (this.arrayBufferPromise ??= this.source.body.arrayBuffer()),
      this.error,
      this.signal
    )
  }

  get formData(): Effect.Effect<FormData, HttpClientError.ResponseError> {
    return fromPromise(
      () => (this.formDataPromise ??= this.source.body.formData() as Promise<FormData>),
      this.error
    )
  }

  get urlParamsBody(): Effect.Effect<UrlParams.UrlParams, HttpClientError.ResponseError> {
    return Effect.flatMap(this.text, (text) =>
      Effect.try({ try: () => UrlParams.fromInput(new URLSearchParams(text)), catch: this.error })
    )
  }

  toJSON(): unknown {
    return HttpIncomingMessage.inspect(this, {
      _id: "@effect/platform/HttpClientResponse",
      request: this.request.toJSON(),
      status: this.status
    }) as object
  }
}

/**
 * Marks a client that makes no span of its own under Effect's built-in tracer and sends no
 * `traceparent`: @batchkit/core then leaves out its own wrappers for both (a `FiberRef` change
 * each, per request).
 *
 * @internal
 */
export const leanClient = Symbol.for("@batchkit/HttpClient/lean")

/**
 * A whole exchange as one effect, for a request whose answer is read whole (JSON): the head
 * and the body as text, the timeout (`timeoutMillis`, 0 for none) kept by a timer of its own
 * around both. An interruption or the timer aborts the exchange on the wire. What
 * @batchkit/core's requests use under Effect's built-in tracer and live clock, in place of
 * `execute`, `text` and a fiber for the timeout.
 *
 * @internal
 */
export const leanExchange = Symbol.for("@batchkit/HttpClient/exchange")

/** @internal */
export interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  readonly text: string
}

/** @internal */
export class ExchangeTimeout {
  readonly _tag = "ExchangeTimeout"
}

/** The tracer every Effect runtime starts with: its spans go nowhere unless a program reads them. */
const nativeTracer = Effect.runSync(Effect.tracer)

/**
 * The client over one undici dispatcher. `bodyIdleMillis` bounds the wait for each next piece of
 * a body (0: no bound): a download that stalls midway fails instead of hanging.
 *
 * Under a tracer of the program's own (OpenTelemetry and the like) every request goes through
 * `HttpClient.make`, which makes its span (method, URL, status, headers redacted). Under Effect's
 * built-in tracer nobody would see that span, and the request takes the lean path: no span, no
 * `AbortController` (a small signal of ours instead), no finalization registry entry; an
 * interruption still aborts the exchange, before its head or while its body arrives. Neither
 * path sends a `traceparent` (the OpenAI API has no use for it).
 */
export const make = (dispatcher: Undici.Dispatcher, bodyIdleMillis = 0): HttpClient.HttpClient => {
  const options = (
    request: HttpClientRequest.HttpClientRequest,
    url: URL,
    body: Body,
    signal: AbortSignal | Abort
  ): Undici.Dispatcher.RequestOptions => ({
    signal,
    method: request.method,
    headers: request.headers,
    origin: url.origin,
    path: url.pathname + url.search + url.hash,
    // undici also takes an AsyncIterable body (its types leave it out)
    body: body as NonNullable<Undici.Dispatcher.RequestOptions["body"]> | null,
    highWaterMark: bodyBuffer,
    // waiting for the head is bounded around the whole exchange by batchkit
    headersTimeout: 0,
    bodyTimeout: bodyIdleMillis
  })
  const send = (request: HttpClientRequest.HttpClientRequest, url: URL, signal: AbortSignal | Abort) => {
    const lean = signal instanceof Abort ? signal : undefined
    const go = (body: Body) =>
      Effect.map(
        abortable(
          (): Promise<Undici.Dispatcher.ResponseData> =>
            dispatcher.request(options(request, url, body, signal)),
          (cause): HttpClientError.HttpClientError =>
            new HttpClientError.RequestError({ request, reason: "Transport", cause }),
          lean
        ),
        (response): HttpClientResponse.HttpClientResponse => new Response(request, response, lean)
      )
    const body = requestBody(request)
    return Effect.isEffect(body) ? Effect.flatMap(body, go) : go(body)
  }
  const traced = HttpClient.withTracerPropagation(
    HttpClient.make((request, url, signal) => send(request, url, signal)),
    false
  )
  const leanSend = (request: HttpClientRequest.HttpClientRequest) => {
    const url = UrlParams.makeUrl(request.url, request.urlParams, request.hash)
    return Either.isLeft(url)
      ? Effect.fail(new HttpClientError.RequestError({ request, reason: "InvalidUrl", cause: url.left }))
      : send(request, url.right, new Abort())
  }
  const exchange = (
    request: HttpClientRequest.HttpClientRequest,
    timeoutMillis: number
  ): Effect.Effect<Answer, HttpClientError.HttpClientError | ExchangeTimeout> => {
    const url = UrlParams.makeUrl(request.url, request.urlParams, request.hash)
    if (Either.isLeft(url))
      return Effect.fail(new HttpClientError.RequestError({ request, reason: "InvalidUrl", cause: url.left }))
    const body = requestBody(request)
    if (Effect.isEffect(body))
      return Effect.die(new Error("a streamed request body has no place in a whole exchange"))
    return Effect.async<Answer, HttpClientError.HttpClientError | ExchangeTimeout>((resume) => {
      const signal = new Abort()
      let timedOut = false
      const timer =
        timeoutMillis > 0
          ? setTimeout(() => {
              timedOut = true
              signal.abort()
            }, timeoutMillis)
          : undefined
      const end = (effect: Effect.Effect<Answer, HttpClientError.HttpClientError | ExchangeTimeout>) => {
        if (timer !== undefined) clearTimeout(timer)
        resume(timedOut ? Effect.fail(new ExchangeTimeout()) : effect)
      }
      dispatcher.request(options(request, url.right, body, signal)).then(
        (source) => {
          // a body that fails after nobody reads it must not become an unhandled 'error' event
          source.body.on("error", noop)
          return source.body.text().then(
            (text) => end(Effect.succeed({ status: source.statusCode, headers: source.headers, text })),
            (cause) =>
              end(
                Effect.fail(
                  new HttpClientError.ResponseError({
                    request,
                    response: new Response(request, source),
                    reason: "Decode",
                    cause
                  })
                )
              )
          )
        },
        (cause) => end(Effect.fail(new HttpClientError.RequestError({ request, reason: "Transport", cause })))
      )
      return Effect.sync(() => {
        if (timer !== undefined) clearTimeout(timer)
        signal.abort()
      })
    })
  }
  const client = HttpClient.makeWith(
    (effect: Effect.Effect<HttpClientRequest.HttpClientRequest>) =>
      Effect.flatMap(effect, (request) =>
        Effect.tracerWith((tracer) => (tracer === nativeTracer ? leanSend(request) : traced.execute(request)))
      ),
    Effect.succeed
  )
  return Object.assign(client, { [leanClient]: true, [leanExchange]: exchange })
}

/** An `HttpClient` over an undici `Agent` of its own, closed with the layer. */
export const layer = (options?: {
  readonly bodyIdleTimeout?: Duration.Duration | undefined
}): Layer.Layer<HttpClient.HttpClient> =>
  Layer.scoped(
    HttpClient.HttpClient,
    Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => new Undici.Agent()),
        (agent) => Effect.promise(() => agent.destroy())
      ),
      (agent) => make(agent, idleMillis(options?.bodyIdleTimeout))
    )
  )

const idleMillis = (timeout: Duration.Duration | undefined) =>
  timeout === undefined || !Duration.isFinite(timeout)
    ? 0
    : Math.min(Math.max(1, Math.ceil(Duration.toMillis(timeout))), 2 ** 31 - 1)
