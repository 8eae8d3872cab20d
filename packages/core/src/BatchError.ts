/**
 * The error channel of batchkit: one tagged error per case, so `Effect.catchTag` reads like the
 * table in the docs. Every error that came from an HTTP answer carries the status, the API's
 * `message`, `type`, `code` and `param`, and the answer's `x-request-id` (quote it to support).
 *
 * No error ever holds the API key: messages from the server are scrubbed of it before they are
 * stored, and nothing here keeps a reference to the request (whose headers hold the key).
 *
 * @since 0.1.0
 */
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * The body of an error answer: `{"error": {"message", "type", "param", "code"}}`. The spec
 * requires all four; servers in the wild leave some out, so each is optional here.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ErrorResponse = Schema.Struct({
  error: Schema.Struct({
    message: Schema.optional(Schema.NullOr(Schema.String)),
    type: Schema.optional(Schema.NullOr(Schema.String)),
    param: Schema.optional(Schema.NullOr(Schema.String)),
    code: Schema.optional(Schema.NullOr(Schema.String))
  })
})

/**
 * The fields every error built from an HTTP answer carries.
 *
 * @since 0.1.0
 * @category models
 */
export const ApiErrorFields = {
  /** The HTTP status of the answer. */
  status: Schema.Number,
  /** The API's `error.message`, or a description of the status when the body had none. */
  message: Schema.String,
  /** The API's `error.type`, e.g. `invalid_request_error`. */
  type: Schema.optional(Schema.NullOr(Schema.String)),
  /** The API's `error.code`, e.g. `invalid_api_key`, `insufficient_quota`. */
  code: Schema.optional(Schema.NullOr(Schema.String)),
  /** The API's `error.param`: the parameter the server complained about. */
  param: Schema.optional(Schema.NullOr(Schema.String)),
  /** The answer's `x-request-id` header. */
  requestId: Schema.optional(Schema.String),
  /** The server's own verdict from `x-should-retry`, when it sent one. */
  shouldRetry: Schema.optional(Schema.Boolean),
  /** The delay the server asked for (`retry-after-ms`, `retry-after`), in milliseconds. */
  retryAfterMillis: Schema.optional(Schema.Number)
}

const describeApi = (
  self: { readonly status: number; readonly message: string } & Partial<
    Record<"type" | "code" | "param" | "requestId", string | null | undefined>
  >
): string => {
  const parts = [`${self.status}`]
  if (self.type) parts.push(self.type)
  if (self.code) parts.push(`code=${self.code}`)
  if (self.param) parts.push(`param=${self.param}`)
  const head = parts.join(" ")
  return `${head}: ${self.message}${self.requestId ? ` (request id ${self.requestId})` : ""}`
}

/**
 * A request rejected before it was sent: a malformed id, a limit out of range, metadata over
 * its limits, invalid parameters or JSONL. Nothing went on the wire.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>("@batchkit/core/InvalidRequest")(
  "InvalidRequest",
  {
    /** What is wrong, naming the value. */
    message: Schema.String,
    /** The parameter or option at fault, e.g. `limit`, `batch_id`, `metadata`. */
    field: Schema.String,
    /** For JSONL input: the 1-based line number. */
    line: Schema.optional(Schema.Number)
  }
) {}

/**
 * Builds an {@link InvalidRequest} whose message names the field (and line) first.
 *
 * @since 0.1.0
 * @category constructors
 */
export const invalid = (field: string, problem: string, line?: number): InvalidRequest =>
  new InvalidRequest({
    field,
    message: `${field}${line !== undefined ? ` (line ${line})` : ""}: ${problem}`,
    ...(line !== undefined ? { line } : {})
  })

/**
 * 401: the key is missing, wrong or revoked.
 *
 * @since 0.1.0
 * @category errors
 */
export class AuthenticationError extends Schema.TaggedError<AuthenticationError>(
  "@batchkit/core/AuthenticationError"
)("AuthenticationError", ApiErrorFields) {
  override toString(): string {
    return `AuthenticationError: ${describeApi(this)}`
  }
}

/**
 * 403: the key may not do this (wrong organization or project, region).
 *
 * @since 0.1.0
 * @category errors
 */
export class PermissionDenied extends Schema.TaggedError<PermissionDenied>("@batchkit/core/PermissionDenied")(
  "PermissionDenied",
  ApiErrorFields
) {
  override toString(): string {
    return `PermissionDenied: ${describeApi(this)}`
  }
}

/**
 * 404: no such batch or file (or it belongs to another project).
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFound extends Schema.TaggedError<NotFound>("@batchkit/core/NotFound")(
  "NotFound",
  ApiErrorFields
) {
  override toString(): string {
    return `NotFound: ${describeApi(this)}`
  }
}

/**
 * 409: the request conflicts with the resource's state, e.g. cancelling a batch that has ended.
 * Never retried: a retry cannot succeed.
 *
 * @since 0.1.0
 * @category errors
 */
export class Conflict extends Schema.TaggedError<Conflict>("@batchkit/core/Conflict")(
  "Conflict",
  ApiErrorFields
) {
  override toString(): string {
    return `Conflict: ${describeApi(this)}`
  }
}

/**
 * 400 or 422: the server rejected the parameters.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadRequest extends Schema.TaggedError<BadRequest>("@batchkit/core/BadRequest")(
  "BadRequest",
  ApiErrorFields
) {
  override toString(): string {
    return `BadRequest: ${describeApi(this)}`
  }
}

/**
 * 429. `isQuota` is true for `insufficient_quota`, which waiting does not fix and which is never
 * retried; otherwise `retryAfterMillis` holds the server's delay when it sent one.
 *
 * @since 0.1.0
 * @category errors
 */
export class RateLimited extends Schema.TaggedError<RateLimited>("@batchkit/core/RateLimited")(
  "RateLimited",
  {
    ...ApiErrorFields,
    /** `insufficient_quota`: billing, not speed. Retrying will not help. */
    isQuota: Schema.Boolean
  }
) {
  override toString(): string {
    return `RateLimited: ${describeApi(this)}`
  }
}

/**
 * 5xx: the server failed or is overloaded.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerError extends Schema.TaggedError<ServerError>("@batchkit/core/ServerError")(
  "ServerError",
  ApiErrorFields
) {
  override toString(): string {
    return `ServerError: ${describeApi(this)}`
  }
}

/**
 * Any other non-2xx status (408 among them), kept with everything the answer said.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnexpectedStatus extends Schema.TaggedError<UnexpectedStatus>("@batchkit/core/UnexpectedStatus")(
  "UnexpectedStatus",
  ApiErrorFields
) {
  override toString(): string {
    return `UnexpectedStatus: ${describeApi(this)}`
  }
}

/**
 * The connection failed: refused, reset, cut mid-body, or no answer within the timeout.
 * `reason` says which; a `Timeout` or `Transport` failure may have happened after the server
 * acted on the request. `InvalidUrl` (a base URL that is not one) is the only one never retried.
 *
 * @since 0.1.0
 * @category errors
 */
export class TransportError extends Schema.TaggedError<TransportError>("@batchkit/core/TransportError")(
  "TransportError",
  {
    reason: Schema.Literal("Transport", "Timeout", "Body", "InvalidUrl"),
    message: Schema.String,
    /** `METHOD /path` of the request, without host, query or headers. */
    request: Schema.String
  }
) {}

/**
 * A 2xx answer whose body is not what the API documents (or a paginated list whose cursor does
 * not advance, which would otherwise loop for ever).
 *
 * @since 0.1.0
 * @category errors
 */
export class ResponseDecodeError extends Schema.TaggedError<ResponseDecodeError>(
  "@batchkit/core/ResponseDecodeError"
)("ResponseDecodeError", {
  message: Schema.String,
  /** `METHOD /path` of the request, or the file and line of a JSONL result. */
  request: Schema.String,
  requestId: Schema.optional(Schema.String)
}) {}

/**
 * Every error an API call can fail with, once it has passed local validation.
 *
 * @since 0.1.0
 * @category models
 */
export type ApiError =
  | AuthenticationError
  | PermissionDenied
  | NotFound
  | Conflict
  | BadRequest
  | RateLimited
  | ServerError
  | UnexpectedStatus

/**
 * What any request can fail with on the wire.
 *
 * @since 0.1.0
 * @category models
 */
export type RequestError = ApiError | TransportError | ResponseDecodeError

/**
 * The whole error channel.
 *
 * @since 0.1.0
 * @category models
 */
export type BatchError = InvalidRequest | RequestError

const tags = new Set([
  "InvalidRequest",
  "AuthenticationError",
  "PermissionDenied",
  "NotFound",
  "Conflict",
  "BadRequest",
  "RateLimited",
  "ServerError",
  "UnexpectedStatus",
  "TransportError",
  "ResponseDecodeError"
])

/**
 * @since 0.1.0
 * @category guards
 */
export const isBatchError = (u: unknown): u is BatchError =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && tags.has(u._tag) && u instanceof Error

/**
 * @since 0.1.0
 * @category guards
 */
export const isApiError = (u: unknown): u is ApiError =>
  isBatchError(u) && "status" in u && typeof (u as { status?: unknown }).status === "number"

/**
 * Whether the default retry policy would retry this error: transport failures and timeouts,
 * 408, 429 other than `insufficient_quota`, and 5xx; a server's `x-should-retry` wins.
 * 409 is never retried, and nothing rejected locally is.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isRetryable = (error: BatchError): boolean => {
  switch (error._tag) {
    case "InvalidRequest":
    case "ResponseDecodeError":
      return false
    case "TransportError":
      return error.reason !== "InvalidUrl"
    default:
      if (error.shouldRetry !== undefined) return error.shouldRetry
      switch (error._tag) {
        case "RateLimited":
          return !error.isQuota
        case "ServerError":
          return true
        case "UnexpectedStatus":
          return error.status === 408
        default:
          return false
      }
  }
}
