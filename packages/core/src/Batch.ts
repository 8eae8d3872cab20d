/**
 * The batch object and the parameters of the four batch operations, as Effect Schemas.
 *
 * Every optional field of the wire object accepts both a missing key and `null` (the API sends
 * `null`, its schema says "optional"), and fields the API adds later are tolerated.
 *
 * @since 0.1.0
 */
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { optionalNullable } from "./internal/schema.js"

/**
 * The characters an id may hold before it is put into a URL path: letters, digits, `_` and `-`.
 * This rules out `/`, `?`, `#`, `%` and `..`, so an id can never reach another route.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ResourceId = Schema.String.pipe(
  Schema.nonEmptyString({ message: () => "must not be empty" }),
  Schema.pattern(/^[A-Za-z0-9_-]+$/, {
    message: () => "may hold only letters, digits, '_' and '-'"
  })
)

/**
 * @since 0.1.0
 * @category schemas
 */
export const BatchId = ResourceId.pipe(Schema.brand("BatchId"))

/**
 * @since 0.1.0
 * @category models
 */
export type BatchId = typeof BatchId.Type

/**
 * @since 0.1.0
 * @category schemas
 */
export const BatchStatus = Schema.Literal(
  "validating",
  "failed",
  "in_progress",
  "finalizing",
  "completed",
  "expired",
  "cancelling",
  "cancelled"
)

/**
 * @since 0.1.0
 * @category models
 */
export type BatchStatus = typeof BatchStatus.Type

/**
 * The statuses a batch never leaves.
 *
 * @since 0.1.0
 * @category constants
 */
export const terminalStatuses: ReadonlySet<BatchStatus> = new Set<BatchStatus>([
  "failed",
  "completed",
  "expired",
  "cancelled"
])

/**
 * Whether a status (or a batch) is terminal: `failed`, `completed`, `expired` or `cancelled`.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isTerminal = (self: BatchStatus | { readonly status: BatchStatus }): boolean =>
  terminalStatuses.has(typeof self === "string" ? self : self.status)

/**
 * @since 0.1.0
 * @category schemas
 */
export class RequestCounts extends Schema.Class<RequestCounts>("@batchkit/core/RequestCounts")({
  total: Schema.Number,
  completed: Schema.Number,
  failed: Schema.Number
}) {}

/**
 * Token usage of the batch (batches created after 2025-09-07).
 *
 * @since 0.1.0
 * @category schemas
 */
export class Usage extends Schema.Class<Usage>("@batchkit/core/Usage")({
  input_tokens: Schema.Number,
  input_tokens_details: optionalNullable(Schema.Struct({ cached_tokens: Schema.Number })),
  output_tokens: Schema.Number,
  output_tokens_details: optionalNullable(Schema.Struct({ reasoning_tokens: Schema.Number })),
  total_tokens: Schema.Number
}) {}

/**
 * One entry of `errors.data`: why validation failed, with the input line when there is one.
 *
 * @since 0.1.0
 * @category schemas
 */
export class BatchErrorData extends Schema.Class<BatchErrorData>("@batchkit/core/BatchErrorData")({
  code: optionalNullable(Schema.String),
  message: optionalNullable(Schema.String),
  param: optionalNullable(Schema.String),
  line: optionalNullable(Schema.Number)
}) {}

/**
 * @since 0.1.0
 * @category schemas
 */
export const BatchErrors = Schema.Struct({
  object: optionalNullable(Schema.String),
  data: optionalNullable(Schema.Array(BatchErrorData))
})

/**
 * The endpoints OpenAI documents for batches. A provider's own list (`Provider`) decides what
 * a batch may have: Azure's lines say `/chat/completions`, and OpenAI's list has grown over time
 * and will again.
 *
 * @since 0.1.0
 * @category schemas
 */
export const KnownEndpoint = Schema.Literal(
  "/v1/responses",
  "/v1/chat/completions",
  "/v1/embeddings",
  "/v1/completions",
  "/v1/moderations",
  "/v1/images/generations",
  "/v1/images/edits",
  "/v1/videos"
)

/**
 * @since 0.1.0
 * @category schemas
 */
export const Endpoint = Schema.Union(
  KnownEndpoint,
  Schema.TemplateLiteral("/", Schema.String).pipe(
    Schema.filter((s) => /^\/[A-Za-z0-9_\-/.]+$/.test(s) && !s.includes(".."), {
      message: () => "must be an API path such as /v1/chat/completions"
    })
  )
).annotations({ message: () => "must be an API path such as /v1/chat/completions" })

/**
 * @since 0.1.0
 * @category models
 */
export type Endpoint = typeof Endpoint.Type

/**
 * The limits of `metadata`: at most 16 pairs, keys of at most 64 characters, values of at most
 * 512.
 *
 * @since 0.1.0
 * @category constants
 */
export const metadataLimits = { pairs: 16, keyLength: 64, valueLength: 512 } as const

/**
 * @since 0.1.0
 * @category schemas
 */
export const Metadata = Schema.Record({
  key: Schema.String,
  value: Schema.String.pipe(
    Schema.maxLength(metadataLimits.valueLength, {
      message: () => `values may be at most ${metadataLimits.valueLength} characters`
    })
  )
}).pipe(
  // key lengths are checked here: a refined key schema would silently drop the keys it rejects
  Schema.filter((m) => {
    const keys = Object.keys(m)
    if (keys.length > metadataLimits.pairs) {
      return `at most ${metadataLimits.pairs} pairs are allowed (got ${keys.length})`
    }
    const long = keys.find((k) => k.length > metadataLimits.keyLength)
    return long === undefined
      ? true
      : `keys may be at most ${metadataLimits.keyLength} characters (${JSON.stringify(long.slice(0, 20))}… has ${long.length})`
  })
)

/**
 * @since 0.1.0
 * @category models
 */
export type Metadata = typeof Metadata.Type

/**
 * The batch object.
 *
 * @since 0.1.0
 * @category schemas
 */
export class Batch extends Schema.Class<Batch>("@batchkit/core/Batch")({
  id: Schema.String,
  object: Schema.Literal("batch"),
  endpoint: Schema.String,
  model: optionalNullable(Schema.String),
  errors: optionalNullable(BatchErrors),
  input_file_id: Schema.String,
  completion_window: Schema.String,
  status: BatchStatus,
  output_file_id: optionalNullable(Schema.String),
  error_file_id: optionalNullable(Schema.String),
  created_at: Schema.Number,
  in_progress_at: optionalNullable(Schema.Number),
  expires_at: optionalNullable(Schema.Number),
  finalizing_at: optionalNullable(Schema.Number),
  completed_at: optionalNullable(Schema.Number),
  failed_at: optionalNullable(Schema.Number),
  expired_at: optionalNullable(Schema.Number),
  cancelling_at: optionalNullable(Schema.Number),
  cancelled_at: optionalNullable(Schema.Number),
  request_counts: optionalNullable(RequestCounts),
  usage: optionalNullable(Usage),
  metadata: optionalNullable(Schema.Record({ key: Schema.String, value: Schema.String }))
}) {
  /** Whether the batch has reached a status it never leaves. */
  get isTerminal(): boolean {
    return terminalStatuses.has(this.status)
  }
  /** The output file, if any (`null`, missing and `""` all mean none). */
  get outputFileId(): Option.Option<string> {
    return Option.fromNullable(this.output_file_id).pipe(Option.filter((s) => s !== ""))
  }
  /** The error file, if any (`null`, missing and `""` all mean none). */
  get errorFileId(): Option.Option<string> {
    return Option.fromNullable(this.error_file_id).pipe(Option.filter((s) => s !== ""))
  }
}

/**
 * When the output and error files of a batch expire, counted from their creation.
 *
 * @since 0.1.0
 * @category schemas
 */
export const OutputExpiresAfter = Schema.Struct({
  anchor: Schema.Literal("created_at"),
  seconds: Schema.Int.pipe(
    Schema.between(3600, 2592000, { message: () => "must be between 3600 and 2592000 seconds" })
  )
})

/**
 * The body of `POST /batches`.
 *
 * @since 0.1.0
 * @category schemas
 */
export class CreateBatchParams extends Schema.Class<CreateBatchParams>("@batchkit/core/CreateBatchParams")({
  input_file_id: ResourceId,
  endpoint: Endpoint,
  /** `24h` by default; some providers take longer windows (Groq: up to `7d`). */
  completion_window: Schema.optionalWith(
    Schema.String.pipe(
      Schema.pattern(/^\d+[hd]$/, { message: () => "must be a duration such as 24h or 7d" })
    ),
    { default: () => "24h" }
  ),
  metadata: Schema.optional(Schema.NullOr(Metadata)),
  output_expires_after: Schema.optional(OutputExpiresAfter)
}) {}

/**
 * What `create` takes: the body's fields, with `completion_window` defaulting to `24h`.
 *
 * @since 0.1.0
 * @category models
 */
export type CreateBatchInput = typeof CreateBatchParams.Encoded

/**
 * The query of `GET /batches`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ListBatchesParams = Schema.Struct({
  after: Schema.optional(ResourceId),
  limit: Schema.optional(
    Schema.Int.pipe(Schema.between(1, 100, { message: () => "must be an integer from 1 to 100" }))
  )
})

/**
 * @since 0.1.0
 * @category models
 */
export type ListBatchesParams = typeof ListBatchesParams.Type

/**
 * One page of `GET /batches`.
 *
 * @since 0.1.0
 * @category schemas
 */
export class BatchPage extends Schema.Class<BatchPage>("@batchkit/core/BatchPage")({
  object: Schema.Literal("list"),
  data: Schema.Array(Batch),
  first_id: optionalNullable(Schema.String),
  last_id: optionalNullable(Schema.String),
  has_more: Schema.Boolean
}) {}
