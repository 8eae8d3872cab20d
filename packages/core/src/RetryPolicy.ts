/**
 * The default retry policy, as a `Schedule` over the error of the failed attempt.
 *
 * It does what the official SDKs do, so nobody is surprised, except for 409: transport failures,
 * timeouts, 408, 429 (not `insufficient_quota`) and 5xx are retried, `x-should-retry` from the
 * server wins, and the delay is the server's (`retry-after-ms`, else `retry-after` in seconds or
 * as an HTTP date) when it lies within 0..60 s, else an exponential backoff from 0.5 s doubling to
 * 8 s with up to 25% jitter. Two retries by default.
 *
 * Replace it in `BatchConfig` with any `Schedule<unknown, BatchError>`.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
import { type BatchError, isRetryable } from "./BatchError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Retries after the first attempt. Default 2. */
  readonly maxRetries?: number | undefined
  /** The first backoff delay. Default 500 ms. */
  readonly initialDelay?: Duration.DurationInput | undefined
  /** The backoff's ceiling. Default 8 s. */
  readonly maxDelay?: Duration.DurationInput | undefined
  /** The longest server-requested delay that is honoured; longer ones fall back to the backoff. Default 60 s. */
  readonly maxServerDelay?: Duration.DurationInput | undefined
  /** Which errors to retry. Default {@link isRetryable}. */
  readonly retryable?: ((error: BatchError) => boolean) | undefined
}

/**
 * The delay the server asked for, when it is within `0..max`.
 *
 * @since 0.1.0
 * @category utils
 */
export const serverDelay = (error: BatchError, max: Duration.Duration): Duration.Duration | undefined => {
  if (!("retryAfterMillis" in error) || error.retryAfterMillis === undefined) return undefined
  const ms = error.retryAfterMillis
  return Number.isFinite(ms) && ms >= 0 && ms <= Duration.toMillis(max) ? Duration.millis(ms) : undefined
}

/**
 * Builds the policy. The schedule's output is the number of retries made so far.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Schedule.Schedule<number, BatchError> => {
  const maxRetries = Math.max(0, Math.floor(options.maxRetries ?? 2))
  const initial = Duration.toMillis(Duration.decode(options.initialDelay ?? "500 millis"))
  const ceiling = Duration.toMillis(Duration.decode(options.maxDelay ?? "8 seconds"))
  const maxServer = Duration.decode(options.maxServerDelay ?? "60 seconds")
  const retryable = options.retryable ?? isRetryable
  return Schedule.makeWithState<number, BatchError, number>(0, (now, error, retries) => {
    if (retries >= maxRetries || !retryable(error)) {
      return Effect.succeed([retries, retries, ScheduleDecision.done] as const)
    }
    const requested = serverDelay(error, maxServer)
    const delay =
      requested !== undefined
        ? Effect.succeed(Duration.toMillis(requested))
        : Effect.map(Random.next, (u) => Math.min(initial * 2 ** retries, ceiling) * (1 - 0.25 * u))
    return Effect.map(
      delay,
      (ms) =>
        [retries + 1, retries + 1, ScheduleDecision.continueWith(ScheduleInterval.after(now + ms))] as const
    )
  })
}

/**
 * The default policy: {@link make} with its defaults (two retries).
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultPolicy: Schedule.Schedule<number, BatchError> = make()

/**
 * A policy that never retries.
 *
 * @since 0.1.0
 * @category constructors
 */
export const none: Schedule.Schedule<number, BatchError> = make({ maxRetries: 0 })
