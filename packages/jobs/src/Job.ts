/**
 * The job model: a whole piece of batch work (one or more JSONL inputs, one results file), its
 * options, and what `jobs status` shows of it.
 *
 * @since 0.1.0
 */
import { Provider } from "@batchkit/core"
import * as Schema from "effect/Schema"

/**
 * `job_` and 20 lower-case letters and digits.
 *
 * @since 0.1.0
 * @category models
 */
export const JobId = Schema.String.pipe(
  Schema.pattern(/^job_[a-z0-9]{8,40}$/, { message: () => "a job id looks like job_0a1b2c3d4e5f6a7b8c9d" }),
  Schema.brand("@batchkit/jobs/JobId")
)

/**
 * @since 0.1.0
 * @category models
 */
export type JobId = typeof JobId.Type

/**
 * What a job is told to do. Every limit defaults to the API's own.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Requests per batch at most. Default 50,000 (the API's limit). */
  readonly maxRequests?: number | undefined
  /** Bytes of input per batch at most. Default 190 MB (under the API's 200 MB). */
  readonly maxBytes?: number | undefined
  /** `/v1/embeddings` inputs per batch at most. Default 50,000 (the API's limit). */
  readonly maxEmbeddingInputs?: number | undefined
  /**
   * The organisation's enqueued-token limit: a number for every model, or one per model. A
   * batch is submitted only while the estimated tokens of its model's running batches plus its
   * own fit. Default: no limit (a batch the API refuses with `token_limit_exceeded` is requeued).
   */
  readonly maxEnqueuedTokens?: number | Readonly<Record<string, number>> | undefined
  /** Retry rounds for requests that ended expired, cancelled or with 408/429/5xx. Default 2. */
  readonly retries?: number | undefined
  /** Uploads at once. Default 4. */
  readonly concurrency?: number | undefined
  /** Metadata on every batch of the job (beside the job's own). */
  readonly metadata?: Readonly<Record<string, string>> | undefined
  /**
   * Whose batch API runs the job (`Provider.Name`): its endpoints are the ones lines may have,
   * its limits the defaults of `maxRequests`, `maxBytes` and `maxEmbeddingInputs`. Default `openai`.
   */
  readonly provider?: Provider.Name | undefined
}

/**
 * The options with every default filled in, as a job records them.
 *
 * @since 0.1.0
 * @category models
 */
export const ResolvedOptions = Schema.Struct({
  maxRequests: Schema.Int,
  maxBytes: Schema.Int,
  maxEmbeddingInputs: Schema.Int,
  maxEnqueuedTokens: Schema.NullOr(
    Schema.Union(Schema.Number, Schema.Record({ key: Schema.String, value: Schema.Number }))
  ),
  retries: Schema.Int,
  concurrency: Schema.Int,
  metadata: Schema.Record({ key: Schema.String, value: Schema.String }),
  // jobs recorded before providers were OpenAI's
  provider: Schema.optionalWith(Schema.Literal(...Provider.names), { default: () => "openai" as const })
})

/**
 * @since 0.1.0
 * @category models
 */
export type ResolvedOptions = typeof ResolvedOptions.Type

/**
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  maxRequests: 50_000,
  maxBytes: 190 * 1024 * 1024,
  maxEmbeddingInputs: 50_000,
  retries: 2,
  concurrency: 4
} as const

/**
 * @since 0.1.0
 * @category constructors
 */
export const resolve = (options: Options = {}): ResolvedOptions => {
  const provider = options.provider ?? "openai"
  const limits = Provider.profiles[provider].limits
  return {
    maxRequests: options.maxRequests ?? limits.requests,
    // a margin under the provider's bytes, as for OpenAI's 200 MB
    maxBytes: options.maxBytes ?? Math.min(defaults.maxBytes, limits.bytes - 10 * 1024 * 1024),
    maxEmbeddingInputs: options.maxEmbeddingInputs ?? limits.embeddingInputs ?? defaults.maxEmbeddingInputs,
    maxEnqueuedTokens: options.maxEnqueuedTokens ?? null,
    retries: options.retries ?? defaults.retries,
    concurrency: options.concurrency ?? defaults.concurrency,
    metadata: { ...options.metadata },
    provider
  }
}

/**
 * The token limit of one model, if any.
 *
 * @since 0.1.0
 * @category models
 */
export const tokenLimit = (options: ResolvedOptions, model: string): number | undefined =>
  options.maxEnqueuedTokens === null
    ? undefined
    : typeof options.maxEnqueuedTokens === "number"
      ? options.maxEnqueuedTokens
      : options.maxEnqueuedTokens[model]

/**
 * `planned` (recorded, not yet taken up), `running`, `finished`, `cancelling` (asked to stop; its
 * batches are being cancelled and collected), `cancelled`.
 *
 * @since 0.1.0
 * @category models
 */
export const Status = Schema.Literal("planned", "running", "finished", "cancelling", "cancelled")

/**
 * @since 0.1.0
 * @category models
 */
export type Status = typeof Status.Type

/**
 * Tokens used, by kind.
 *
 * @since 0.1.0
 * @category models
 */
export const Tokens = Schema.Struct({
  input: Schema.Number,
  cached: Schema.Number,
  output: Schema.Number,
  reasoning: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type Tokens = typeof Tokens.Type

/**
 * Requests by outcome; `pending` have none yet.
 *
 * @since 0.1.0
 * @category models
 */
export const RequestCounts = Schema.Struct({
  total: Schema.Number,
  succeeded: Schema.Number,
  failed: Schema.Number,
  expired: Schema.Number,
  cancelled: Schema.Number,
  errored: Schema.Number,
  pending: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type RequestCounts = typeof RequestCounts.Type

/**
 * What a job has cost so far: `usd` for the models the price table knows, and the models it does
 * not (their tokens are counted, not priced).
 *
 * @since 0.1.0
 * @category models
 */
export const Cost = Schema.Struct({
  usd: Schema.Number,
  unpriced: Schema.Array(Schema.String),
  prices: Schema.String
})

/**
 * @since 0.1.0
 * @category models
 */
export type Cost = typeof Cost.Type

/**
 * A job as `jobs status` shows it.
 *
 * @since 0.1.0
 * @category models
 */
export class Snapshot extends Schema.Class<Snapshot>("@batchkit/jobs/Snapshot")({
  id: Schema.String,
  status: Status,
  created_at: Schema.Number,
  finished_at: Schema.NullOr(Schema.Number),
  inputs: Schema.Array(Schema.String),
  output: Schema.NullOr(Schema.String),
  models: Schema.Array(Schema.String),
  shards: Schema.Number,
  round: Schema.Number,
  requests: RequestCounts,
  /** Batches by their last known status. */
  batches: Schema.Record({ key: Schema.String, value: Schema.Number }),
  /** What the batches still running (results not yet collected) report done: their request counts. */
  running: Schema.Struct({ completed: Schema.Number, failed: Schema.Number }),
  tokens: Tokens,
  cost: Cost,
  /** The failure a step of the job is retrying, while it has not passed. */
  last_error: Schema.NullOr(Schema.String)
}) {
  /** Whether the job will do no more. */
  get isDone(): boolean {
    return this.status === "finished" || this.status === "cancelled"
  }
}
