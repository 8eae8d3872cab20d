/**
 * Faults: what can go wrong between a client and the API (a 429, a 5xx, a connection reset before
 * or after the server acted, a slow answer, a body cut short), armed for the next N calls of an
 * operation and applied around the simulator's own answer.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import { errorBody, json, type Reply } from "./wire.js"

export type Operation =
  | "batches.create"
  | "batches.retrieve"
  | "batches.list"
  | "batches.cancel"
  | "files.upload"
  | "files.retrieve"
  | "files.list"
  | "files.delete"
  | "files.content"
  | "webhooks.deliver"

export const operations: ReadonlyArray<Operation> = [
  "batches.create",
  "batches.retrieve",
  "batches.list",
  "batches.cancel",
  "files.upload",
  "files.retrieve",
  "files.list",
  "files.delete",
  "files.content",
  "webhooks.deliver"
]

export type Fault =
  | {
      readonly _tag: "RateLimited"
      readonly retryAfterMillis?: number | undefined
      readonly quota?: boolean | undefined
    }
  | { readonly _tag: "ServerError"; readonly status?: number | undefined }
  | { readonly _tag: "ResetBefore" }
  | { readonly _tag: "ResetAfter" }
  | { readonly _tag: "Slow"; readonly delayMillis: number }
  | { readonly _tag: "TruncatedBody" }
  /** A webhook delivery signed with the wrong secret (for `webhooks.deliver`). */
  | { readonly _tag: "BadSignature" }
  /** A webhook delivery that never arrives (for `webhooks.deliver`). */
  | { readonly _tag: "Lost" }

export const faultTags: ReadonlyArray<Fault["_tag"]> = [
  "RateLimited",
  "ServerError",
  "ResetBefore",
  "ResetAfter",
  "Slow",
  "TruncatedBody",
  "BadSignature",
  "Lost"
]

export interface FaultRule {
  readonly operation: Operation | "*"
  readonly fault: Fault
  /** How many matching calls it hits. Default 1. */
  readonly times?: number | undefined
}

type Armed = ReadonlyArray<{ readonly rule: FaultRule; readonly left: number }>

export interface Faults {
  readonly inject: (rule: FaultRule) => Effect.Effect<void>
  readonly clear: Effect.Effect<void>
  readonly pending: Effect.Effect<ReadonlyArray<FaultRule>>
  /** The fault aimed at this call, if any (and one fewer left of it). */
  readonly take: (operation: Operation | undefined) => Effect.Effect<Fault | undefined>
}

export const make: Effect.Effect<Faults> = Effect.map(Ref.make<Armed>([]), (armed) => ({
  inject: (rule) =>
    Ref.update(armed, (list) => [...list, { rule, left: Math.max(1, Math.floor(rule.times ?? 1)) }]),
  clear: Ref.set(armed, []),
  pending: Effect.map(Ref.get(armed), (list) => list.map((f) => ({ ...f.rule, times: f.left }))),
  take: (operation) =>
    Ref.modify(armed, (list): readonly [Fault | undefined, Armed] => {
      if (operation === undefined) return [undefined, list]
      const index = list.findIndex((f) => f.rule.operation === operation || f.rule.operation === "*")
      if (index === -1) return [undefined, list]
      const hit = list[index]!
      const rest =
        hit.left > 1
          ? list.map((f, i) => (i === index ? { ...f, left: f.left - 1 } : f))
          : list.filter((_, i) => i !== index)
      return [hit.rule.fault, rest]
    })
}))

/**
 * The reply to a call that `fault` hits: `run` is the simulator's own work (done or not, as the
 * fault says) and `withId` stamps a request id on what is answered.
 */
export const apply = (fault: Fault, run: Effect.Effect<Reply>, withId: (reply: Reply) => Reply) => {
  switch (fault._tag) {
    case "BadSignature":
    case "Lost":
      // faults of webhook deliveries: an API call answers as usual
      return Effect.map(run, withId)
    case "ResetBefore":
      return Effect.succeed<Reply>({ _tag: "Reset" })
    case "ResetAfter":
      return Effect.as(run, { _tag: "Reset" } as Reply)
    case "Slow":
      // the server does the work at once; its answer is what comes late
      return run.pipe(Effect.tap(Effect.sleep(Duration.millis(fault.delayMillis))), Effect.map(withId))
    case "TruncatedBody":
      return Effect.map(run, (reply) =>
        withId(reply._tag === "Answer" ? { ...reply, truncate: true } : reply)
      )
    case "RateLimited": {
      const headers: Record<string, string> = {}
      if (fault.retryAfterMillis !== undefined) {
        headers["retry-after-ms"] = String(fault.retryAfterMillis)
        headers["retry-after"] = String(Math.max(1, Math.ceil(fault.retryAfterMillis / 1000)))
      }
      const body = fault.quota
        ? errorBody(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            null,
            "insufficient_quota"
          )
        : errorBody(
            "Rate limit reached for requests. Please try again later.",
            "requests",
            null,
            "rate_limit_exceeded"
          )
      return Effect.succeed(withId(json(429, body, headers)))
    }
    case "ServerError": {
      const status = fault.status ?? 500
      const message =
        status === 503
          ? "The server is overloaded or not ready yet."
          : "The server had an error while processing your request. Sorry about that!"
      return Effect.succeed(withId(json(status, errorBody(message, "server_error"))))
    }
  }
}
