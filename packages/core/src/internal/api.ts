import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import { identity } from "effect/Function"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import {
  type ApiError,
  AuthenticationError,
  BadRequest,
  type BatchError,
  Conflict,
  ErrorResponse,
  NotFound,
  PermissionDenied,
  RateLimited,
  type RequestError,
  ResponseDecodeError,
  ServerError,
  TransportError,
  UnexpectedStatus
} from "../BatchError.js"
import { BatchConfig, type Service as Config } from "../BatchConfig.js"
import type { Decoder } from "./fast.js"

const decodeErrorResponse = Schema.decodeUnknownOption(ErrorResponse)

/** Parses `retry-after-ms`, else `retry-after` as seconds or as an HTTP date. */
export const retryAfterMillis = (headers: Headers.Headers, now: number): number | undefined => {
  const ms = Headers.get(headers, "retry-after-ms")
  if (Option.isSome(ms)) {
    const value = Number.parseFloat(ms.value)
    if (Number.isFinite(value)) return value
  }
  const after = Headers.get(headers, "retry-after")
  if (Option.isNone(after)) return undefined
  const seconds = Number.parseFloat(after.value)
  if (Number.isFinite(seconds) && /^\s*[\d.]+\s*$/.test(after.value)) return seconds * 1000
  const date = Date.parse(after.value)
  return Number.isNaN(date) ? undefined : date - now
}

/** The API's key must never reach a message, so anything the server says is scrubbed of it. */
export const scrubber = (key: Redacted.Redacted<string>) => {
  const secret = Redacted.value(key)
  return (text: string): string => (secret.length >= 4 ? text.split(secret).join("<redacted>") : text)
}

const statusText: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  409: "Conflict",
  422: "Unprocessable Entity",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout"
}

export interface Api {
  readonly config: Config
  /** `METHOD /path` for messages: never the host, the query or a header. */
  readonly describe: (request: HttpClientRequest.HttpClientRequest) => string
  readonly request: (method: "GET" | "POST" | "DELETE", path: string) => HttpClientRequest.HttpClientRequest
  /** One attempt: the answer's JSON decoded with `schema`, or a typed error. */
  readonly once: <A>(
    request: HttpClientRequest.HttpClientRequest,
    decode: Decoder<A>
  ) => Effect.Effect<A, RequestError>
  /** {@link once} under the configured retry policy. */
  readonly json: <A>(
    request: HttpClientRequest.HttpClientRequest,
    decode: Decoder<A>
  ) => Effect.Effect<A, RequestError>
  /** Retries until a 2xx's headers arrive, then streams its body (a cut body fails, unretried). */
  readonly bytes: (request: HttpClientRequest.HttpClientRequest) => Stream.Stream<Uint8Array, RequestError>
  /** Runs `attempt` under the configured retry policy. */
  readonly retry: <A, E extends BatchError, R>(attempt: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export const make: Effect.Effect<Api, never, BatchConfig | HttpClient.HttpClient> = Effect.gen(function* () {
  const config = yield* BatchConfig
  const client = yield* HttpClient.HttpClient
  // @batchkit/node's client makes no idle span and sends no traceparent itself (see
  // `leanClient` there): the wrappers below would only cost a FiberRef change each per request
  const lean = (client as unknown as Record<symbol, unknown>)[leanClient] === true
  const exchange = (client as unknown as Record<symbol, Exchange | undefined>)[leanExchange]
  // OpenAI has no use for our trace ids: do not send them a traceparent header
  const http = lean ? client : HttpClient.withTracerPropagation(client, false)
  const idle = lean ? identity : withoutIdleSpan
  const scrub = scrubber(config.apiKey)
  const base = new URL(`${config.baseUrl}/`)
  const basePath = base.pathname.replace(/\/$/, "")

  const describe = (request: HttpClientRequest.HttpClientRequest) => {
    let path = request.url
    try {
      path = new URL(request.url).pathname
    } catch {}
    return `${request.method} ${path.startsWith(basePath) ? path.slice(basePath.length) || "/" : path}`
  }

  // the headers every request carries, built once (Headers redact `authorization` when shown)
  const headers = Headers.fromInput({
    ...config.headers,
    ...(config.auth === "api-key"
      ? { "api-key": Redacted.value(config.apiKey) }
      : { authorization: `Bearer ${Redacted.value(config.apiKey)}` }),
    accept: "application/json",
    ...(Option.isSome(config.organization) ? { "openai-organization": config.organization.value } : {}),
    ...(Option.isSome(config.project) ? { "openai-project": config.project.value } : {})
  })
  // the query every request carries (Azure's api-version); callers append theirs to it
  const query = Object.entries(config.query)
  const request = (method: "GET" | "POST" | "DELETE", path: string) => {
    const made = HttpClientRequest.setHeaders(
      HttpClientRequest.make(method)(`${config.baseUrl}${path}`),
      headers
    )
    return query.length === 0 ? made : HttpClientRequest.setUrlParams(made, query)
  }

  const transport = (
    request: HttpClientRequest.HttpClientRequest,
    reason: "Transport" | "Timeout" | "Body" | "InvalidUrl",
    cause: unknown
  ) => {
    const detail = causeMessage(cause)
    return new TransportError({ reason, request: describe(request), message: scrub(detail) })
  }

  const fromClientError =
    (request: HttpClientRequest.HttpClientRequest) => (error: HttpClientError.HttpClientError) =>
      error._tag === "RequestError"
        ? transport(
            request,
            error.reason === "InvalidUrl" ? "InvalidUrl" : "Transport",
            error.cause ?? error.reason
          )
        : transport(request, "Body", error.cause ?? error.reason)

  const apiError = (
    request: HttpClientRequest.HttpClientRequest,
    response: { readonly status: number; readonly headers: Headers.Headers },
    text: string,
    now: number
  ): ApiError => {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {}
    const body = Option.getOrUndefined(decodeErrorResponse(json))?.error
    const status = response.status
    const fallback = text.trim() !== "" && text.length < 300 && body === undefined ? text.trim() : undefined
    const message = scrub(
      body?.message ?? fallback ?? `${status} ${statusText[status] ?? "error"} from ${describe(request)}`
    )
    const requestId = Option.getOrUndefined(Headers.get(response.headers, "x-request-id"))
    const shouldRetryHeader = Option.getOrUndefined(Headers.get(response.headers, "x-should-retry"))
    const retryAfter = retryAfterMillis(response.headers, now)
    const fields = {
      status,
      message,
      ...(body?.type != null ? { type: scrub(body.type) } : {}),
      ...(body?.code != null ? { code: scrub(body.code) } : {}),
      ...(body?.param != null ? { param: scrub(body.param) } : {}),
      ...(requestId !== undefined ? { requestId } : {}),
      ...(shouldRetryHeader === "true"
        ? { shouldRetry: true }
        : shouldRetryHeader === "false"
          ? { shouldRetry: false }
          : {}),
      ...(retryAfter !== undefined ? { retryAfterMillis: retryAfter } : {})
    }
    if (status === 400 || status === 422) return new BadRequest(fields)
    if (status === 401) return new AuthenticationError(fields)
    if (status === 403) return new PermissionDenied(fields)
    if (status === 404) return new NotFound(fields)
    if (status === 409) return new Conflict(fields)
    if (status === 429)
      return new RateLimited({
        ...fields,
        isQuota: body?.code === "insufficient_quota" || body?.type === "insufficient_quota"
      })
    if (status >= 500) return new ServerError(fields)
    return new UnexpectedStatus(fields)
  }

  /** With a token provider, each request asks it for its bearer token as it goes. */
  const authorized: (
    request: HttpClientRequest.HttpClientRequest
  ) => Effect.Effect<HttpClientRequest.HttpClientRequest, TransportError> = Option.match(
    config.tokenProvider,
    {
      onNone: () => Effect.succeed,
      onSome: (provider) => (request) =>
        Effect.mapBoth(provider, {
          onFailure: (cause) =>
            transport(request, "Transport", `the Entra ID token provider failed: ${causeMessage(cause)}`),
          onSuccess: (token) =>
            HttpClientRequest.setHeader(request, "authorization", `Bearer ${Redacted.value(token)}`)
        })
    }
  )

  /** Sends and waits for the answer's head; a non-2xx is read and turned into its error. */
  const head = (request: HttpClientRequest.HttpClientRequest) =>
    Effect.flatMap(authorized(request), (request) =>
      idle(
        config.auth === "api-key"
          ? // Azure's key header is redacted like authorization wherever headers are shown (spans)
            Effect.locallyWith(http.execute(request), Headers.currentRedactedNames, (names) => [
              ...names,
              "api-key"
            ])
          : http.execute(request)
      ).pipe(
        Effect.mapError(fromClientError(request)),
        Effect.flatMap((response) =>
          response.status >= 200 && response.status < 300
            ? Effect.succeed(response)
            : response.text.pipe(
                Effect.orElseSucceed(() => ""),
                Effect.zipWith(Clock.currentTimeMillis, (text, now) =>
                  apiError(request, response, text, now)
                ),
                Effect.flatMap(Effect.fail)
              )
        )
      )
    )

  const timeoutMillis = Duration.toMillis(config.timeout)
  const withTimeout = <A, E, R>(
    request: HttpClientRequest.HttpClientRequest,
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | TransportError, R> => {
    const onTimeout = () => timedOut(request)
    if (!Duration.isFinite(config.timeout)) return effect
    return Effect.clockWith((clock) =>
      clock instanceof LiveClock && timeoutMillis <= maxTimerMillis
        ? liveTimeout(effect, timeoutMillis, onTimeout)
        : Effect.timeoutFail(effect, { duration: config.timeout, onTimeout })
    )
  }

  /** A 2xx answer's text, parsed and decoded with `decode`. */
  const decoded = <A>(
    request: HttpClientRequest.HttpClientRequest,
    headers: Headers.Headers | (() => Headers.Headers),
    text: string,
    decode: Decoder<A>
  ): Effect.Effect<A, ResponseDecodeError> => {
    const fail = (message: string) => {
      const requestId = Option.getOrUndefined(
        Headers.get(typeof headers === "function" ? headers() : headers, "x-request-id")
      )
      return Effect.fail(
        new ResponseDecodeError({
          message: scrub(message),
          request: describe(request),
          ...(requestId !== undefined ? { requestId } : {})
        })
      )
    }
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      return fail(`the answer is not JSON: ${(e as Error).message}`)
    }
    const result = decode(json)
    return Either.isRight(result)
      ? Effect.succeed(result.right)
      : fail(`the answer does not match the API: ${ParseResult.TreeFormatter.formatErrorSync(result.left)}`)
  }

  const slowOnce = <A>(request: HttpClientRequest.HttpClientRequest, decode: Decoder<A>) =>
    withTimeout(
      request,
      head(request).pipe(
        Effect.flatMap((response) =>
          response.text.pipe(
            Effect.mapError(fromClientError(request)),
            Effect.flatMap((text) => decoded(request, response.headers, text, decode))
          )
        )
      )
    )

  const timedOut = (request: HttpClientRequest.HttpClientRequest) =>
    new TransportError({
      reason: "Timeout",
      request: describe(request),
      message: `no answer within ${Duration.format(config.timeout)}`
    })

  /**
   * One exchange of a lean client (see `leanExchange` in @batchkit/node): head, body and
   * timeout in one effect, where the other path takes a fiber for the timeout and an effect for
   * each step.
   */
  const leanOnce = <A>(
    exchange: Exchange,
    request: HttpClientRequest.HttpClientRequest,
    decode: Decoder<A>
  ): Effect.Effect<A, RequestError> =>
    Effect.flatMap(authorized(request), (request) =>
      Effect.matchEffect(exchange(request, Duration.isFinite(config.timeout) ? timeoutMillis : 0), {
        onFailure: (error) =>
          Effect.fail(error._tag === "ExchangeTimeout" ? timedOut(request) : fromClientError(request)(error)),
        onSuccess: (answer): Effect.Effect<A, RequestError> => {
          if (answer.status >= 200 && answer.status < 300)
            return decoded(request, () => Headers.fromInput(answer.headers), answer.text, decode)
          const response = { status: answer.status, headers: Headers.fromInput(answer.headers) }
          return Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.fail(apiError(request, response, answer.text, now))
          )
        }
      })
    )

  // the lean path needs what it replaces to be unobservable: no span of a tracer of the
  // program's own (the HTTP client's), no clock but the live one (a TestClock drives timeouts)
  const once = <A>(
    request: HttpClientRequest.HttpClientRequest,
    decode: Decoder<A>
  ): Effect.Effect<A, RequestError> =>
    exchange === undefined ||
    request.body._tag === "Stream" ||
    (Duration.isFinite(config.timeout) && timeoutMillis > maxTimerMillis)
      ? slowOnce(request, decode)
      : Effect.clockWith((clock) =>
          clock instanceof LiveClock
            ? Effect.tracerWith((tracer) =>
                tracer === nativeTracer ? leanOnce(exchange, request, decode) : slowOnce(request, decode)
              )
            : slowOnce(request, decode)
        )

  // `Effect.retry`, minus its per-attempt bookkeeping: the first attempt costs one `catchAll`
  const retry = <A, E extends BatchError, R>(attempt: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.catchAll(attempt, (first) =>
      Effect.flatMap(Schedule.driver(config.retry), (driver) => {
        const next = (error: E): Effect.Effect<A, E, R> =>
          Effect.matchEffect(driver.next(error), {
            onFailure: () => Effect.fail(error),
            onSuccess: () => Effect.catchAll(attempt, next)
          })
        return next(first)
      })
    )

  const bytes = (request: HttpClientRequest.HttpClientRequest) =>
    retry(withTimeout(request, head(request))).pipe(
      Effect.map((response) => Stream.mapError(response.stream, fromClientError(request))),
      Stream.unwrap
    )

  return {
    config,
    describe,
    request,
    once,
    json: (request, decode) => retry(once(request, decode)),
    bytes,
    retry
  } satisfies Api
})

/** Marks an `HttpClient` that skips its span under the built-in tracer and sends no `traceparent`. */
const leanClient = Symbol.for("@batchkit/HttpClient/lean")

/** A lean client's whole exchange (see @batchkit/node's `leanExchange`). */
const leanExchange = Symbol.for("@batchkit/HttpClient/exchange")
type Exchange = (
  request: HttpClientRequest.HttpClientRequest,
  timeoutMillis: number
) => Effect.Effect<
  {
    readonly status: number
    readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
    readonly text: string
  },
  HttpClientError.HttpClientError | { readonly _tag: "ExchangeTimeout" }
>

/** The tracer every Effect runtime starts with: its spans go nowhere unless a program reads them. */
const nativeTracer = Effect.runSync(Effect.tracer)

/**
 * The HTTP client's span for a request, only when a tracer that exports spans is installed.
 * With Effect's built-in tracer nobody sees that span, and building it (attributes for the URL
 * and every header, redacted) was a third of batchkit's own time per request.
 */
const withoutIdleSpan = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tracerWith((tracer) => (tracer === nativeTracer ? Effect.withTracerEnabled(effect, false) : effect))

/** The clock every Effect runtime starts with; a `TestClock` or any other clock is not one. */
const LiveClock = Clock.make().constructor
const maxTimerMillis = 2 ** 31 - 1

/**
 * `Effect.timeoutFail` for the live clock, at a third of its cost per request: `effect` runs as
 * a fiber of its own under a plain timer, instead of a sleeping fiber raced against it. The
 * fiber inherits the caller's context (its span, its services); interrupting the caller
 * interrupts it, and so does the timer, which then fails with `onTimeout()`.
 */
const liveTimeout = <A, E, R, E2>(
  effect: Effect.Effect<A, E, R>,
  millis: number,
  onTimeout: () => E2
): Effect.Effect<A, E | E2, R> =>
  Effect.flatMap(Effect.runtime<R>(), (runtime) =>
    Effect.async<A, E | E2>((resume) => {
      let done = false
      // the fiber ends with the effect's exit as its value: a failure here is the caller's to
      // handle, not an unhandled error of a fiber nobody joined (which Effect would log)
      const fiber = Runtime.runFork(runtime, Effect.exit(effect))
      const timer = setTimeout(() => {
        if (done) return
        done = true
        fiber.unsafeInterruptAsFork(FiberId.none)
        resume(Effect.fail(onTimeout()))
      }, millis)
      fiber.addObserver((exit) => {
        clearTimeout(timer)
        if (done) return
        done = true
        // a failure of the outer exit can only be an interruption
        resume(Exit.isSuccess(exit) ? exit.value : Exit.failCause(exit.cause))
      })
      return Effect.sync(() => {
        done = true
        clearTimeout(timer)
        fiber.unsafeInterruptAsFork(FiberId.none)
      })
    })
  )

const causeMessage = (cause: unknown): string => {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code
    const inner = (cause as { cause?: unknown }).cause
    const own = `${cause.message}${typeof code === "string" ? ` (${code})` : ""}`
    return inner !== undefined && inner !== cause ? `${own}: ${causeMessage(inner)}` : own
  }
  return String(cause)
}
