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
    private readonly source: Undici.Dispatcher.ResponseData
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
    return fromPromise(() => (this.textPromise ??= this.source.body.text()), this.error)
  }

  get json(): Effect.Effect<unknown, HttpClientError.ResponseError> {
    return Effect.flatMap(this.text, (text) =>
      Effect.try({ try: () => (text === "" ? null : JSON.parse(text)), catch: this.error })
    )
  }

  get arrayBuffer(): Effect.Effect<ArrayBuffer, HttpClientError.ResponseError> {
    return fromPromise(() => (this.arrayBufferPromise ??= this.source.body.arrayBuffer()), this.error)
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
 * The client over one undici dispatcher. `bodyIdleMillis` bounds the wait for each next piece of
 * a body (0: no bound): a download that stalls midway fails instead of hanging.
 */
export const make = (dispatcher: Undici.Dispatcher, bodyIdleMillis = 0): HttpClient.HttpClient =>
  HttpClient.make((request, url, signal) => {
    const send = (body: Body) =>
      fromPromise(
        (): Promise<Undici.Dispatcher.ResponseData> =>
          dispatcher.request({
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
          }),
        (cause): HttpClientError.HttpClientError =>
          new HttpClientError.RequestError({ request, reason: "Transport", cause })
      ).pipe(Effect.map((response): HttpClientResponse.HttpClientResponse => new Response(request, response)))
    const body = requestBody(request)
    return Effect.isEffect(body) ? Effect.flatMap(body, send) : send(body)
  })

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
