/**
 * Where and how batchkit talks to the API: key, base URL, organization, project, timeout and
 * retry policy. The key is `Redacted` from the moment it is read.
 *
 * @since 0.1.0
 * @example
 * ```ts
 * import { BatchConfig } from "@batchkit/core"
 * // from OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_PROJECT_ID
 * const FromEnv = BatchConfig.layerConfig()
 * // or explicitly
 * const Explicit = BatchConfig.layer({ apiKey: "sk-…", maxRetries: 4, timeout: "30 seconds" })
 * ```
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Schedule from "effect/Schedule"
import type { BatchError } from "./BatchError.js"
import * as RetryPolicy from "./RetryPolicy.js"

/**
 * The default base URL.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBaseUrl = "https://api.openai.com/v1"

/**
 * The resolved configuration.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly apiKey: Redacted.Redacted<string>
  /** Without a trailing slash, e.g. `https://api.openai.com/v1`. */
  readonly baseUrl: string
  /** Sent as `OpenAI-Organization` when set. */
  readonly organization: Option.Option<string>
  /** Sent as `OpenAI-Project` when set. */
  readonly project: Option.Option<string>
  /**
   * The longest one attempt may wait for an answer; for downloads, for the headers and then
   * (over `@batchkit/node`) for each next piece of the body, so a stalled download fails.
   */
  readonly timeout: Duration.Duration
  /** Decides, from the failure of an attempt, whether and when to try again. */
  readonly retry: Schedule.Schedule<unknown, BatchError>
  /**
   * Whether `create` tags each batch with an idempotency key in its metadata and, after an
   * ambiguous failure, looks for it before sending again, so that a retry never makes a second
   * batch. On by default; it takes one of the 16 metadata pairs.
   */
  readonly idempotentCreate: boolean
}

/**
 * @since 0.1.0
 * @category tags
 */
export class BatchConfig extends Context.Tag("@batchkit/core/BatchConfig")<BatchConfig, Service>() {}

/**
 * What {@link make} and {@link layer} take; everything but the key has a default.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly apiKey: Redacted.Redacted<string> | string
  readonly baseUrl?: string | undefined
  readonly organization?: string | undefined
  readonly project?: string | undefined
  /** Per attempt. Default 10 minutes, like the official SDKs. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Retries after the first attempt with the default policy. Default 2. Ignored when `retry` is given. */
  readonly maxRetries?: number | undefined
  /** Replaces the retry policy entirely. */
  readonly retry?: Schedule.Schedule<unknown, BatchError> | undefined
  /** Default `true`. */
  readonly idempotentCreate?: boolean | undefined
}

const nonEmpty = (s: string | undefined): Option.Option<string> =>
  s === undefined || s.trim() === "" ? Option.none() : Option.some(s.trim())

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Service => ({
  apiKey: Redacted.isRedacted(options.apiKey) ? options.apiKey : Redacted.make(options.apiKey),
  baseUrl: (options.baseUrl ?? defaultBaseUrl).replace(/\/+$/, ""),
  organization: nonEmpty(options.organization),
  project: nonEmpty(options.project),
  timeout: Duration.decode(options.timeout ?? "10 minutes"),
  retry: options.retry ?? RetryPolicy.make({ maxRetries: options.maxRetries }),
  idempotentCreate: options.idempotentCreate ?? true
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<BatchConfig> => Layer.succeed(BatchConfig, make(options))

/**
 * Reads `OPENAI_API_KEY` (required, redacted), `OPENAI_BASE_URL`, `OPENAI_ORG_ID` and
 * `OPENAI_PROJECT_ID` from the `ConfigProvider`; `overrides` win over the environment.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  overrides: Partial<Options> = {}
): Layer.Layer<BatchConfig, ConfigError.ConfigError> =>
  Layer.effect(
    BatchConfig,
    Effect.gen(function* () {
      const apiKey =
        overrides.apiKey ??
        (yield* Config.redacted("OPENAI_API_KEY").pipe(
          Config.validate({
            message: "OPENAI_API_KEY is empty; set it to your API key",
            validation: (key) => Redacted.value(key).trim() !== ""
          })
        ))
      const baseUrl =
        overrides.baseUrl ??
        Option.getOrUndefined(yield* Config.option(Config.nonEmptyString("OPENAI_BASE_URL")))
      const organization =
        overrides.organization ?? Option.getOrUndefined(yield* Config.option(Config.string("OPENAI_ORG_ID")))
      const project =
        overrides.project ?? Option.getOrUndefined(yield* Config.option(Config.string("OPENAI_PROJECT_ID")))
      return make({ ...overrides, apiKey, baseUrl, organization, project })
    })
  )
