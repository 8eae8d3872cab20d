/**
 * A batch's life as a function of time: `validating` → `failed` or `in_progress` → `finalizing` →
 * `completed`, with `expired` when the window closes first and `cancelling` → `cancelled` after a
 * cancel. Nothing runs in the background: the phase is computed whenever a batch is looked at, and
 * the output and error files are written the first time it is seen ended.
 */
import * as Effect from "effect/Effect"
import { hash } from "../Responder.js"
import type * as Provider from "../../Provider.js"
import type * as Responder from "../Responder.js"
import type { Files } from "./files.js"
import type { NextId } from "./ids.js"
import { encoder } from "./wire.js"
import { tokenLimitProblem, type Validated, validate } from "./validation.js"

export interface Timing {
  readonly validationMillis: number
  readonly requestsPerSecond: number
  readonly finalizingMillis: number
  readonly cancellingMillis: number
  readonly windowMillis: number
}

export interface StoredBatch {
  readonly id: string
  readonly endpoint: string
  readonly inputFileId: string
  readonly metadata: Record<string, string> | null
  readonly createdAt: number
  readonly outputExpiresAfter: number | undefined
  validated: Validated | undefined
  cancelRequestedAt: number | undefined
  outputFileId: string | null | undefined
  errorFileId: string | null | undefined
  usage: Record<string, unknown> | undefined
}

export type Timestamps = Record<
  | "in_progress_at"
  | "finalizing_at"
  | "completed_at"
  | "failed_at"
  | "expired_at"
  | "cancelling_at"
  | "cancelled_at"
  | "expires_at",
  number | null
>

export interface Phase {
  readonly status: string
  readonly validated: Validated | undefined
  /** Lines that ran (finished or, at the end, kept). */
  readonly finished: number
  readonly at: Timestamps
}

export const terminal = new Set(["failed", "completed", "expired", "cancelled"])

const none: Timestamps = {
  in_progress_at: null,
  finalizing_at: null,
  completed_at: null,
  failed_at: null,
  expired_at: null,
  cancelling_at: null,
  cancelled_at: null,
  expires_at: null
}

export const make = (options: {
  readonly timing: Timing
  readonly responder: Responder.Responder
  readonly files: Files
  readonly nextId: NextId
  /** Enqueued-token limits by model: a batch that would take its model over fails validation. */
  readonly tokenLimits?: Readonly<Record<string, number>> | undefined
  /** Every batch, for what the others hold of a model's limit. */
  readonly batches: () => Iterable<StoredBatch>
  readonly provider: Provider.Profile
}) => {
  const { timing, files, nextId } = options
  const perLine = 1000 / timing.requestsPerSecond
  const runs = new Map<string, number>()
  const attempt = (customId: string) => {
    const n = (runs.get(customId) ?? 0) + 1
    runs.set(customId, n)
    return n
  }

  /** The tokens of `model` that other batches hold at `at`: those validated and not yet finished. */
  const enqueued = (self: StoredBatch, model: string, at: number): Effect.Effect<number> =>
    Effect.gen(function* () {
      let total = 0
      let before = true
      for (const other of options.batches()) {
        if (other === self) {
          before = false
          continue
        }
        if (other.createdAt + timing.validationMillis > at) continue
        // batches validated at the same moment queue in the order they were made
        if (other.createdAt + timing.validationMillis === at && !before) continue
        const p = yield* phase(other, at)
        if ((p.status === "in_progress" || p.status === "finalizing") && p.validated?.model === model)
          total += p.validated.tokens
      }
      return total
    })

  const phase = (batch: StoredBatch, now: number): Effect.Effect<Phase> =>
    Effect.gen(function* () {
      const validatedAt = batch.createdAt + timing.validationMillis
      const expiresAt = batch.createdAt + timing.windowMillis
      const cancelAt = batch.cancelRequestedAt
      const cancelling = (
        from: number,
        finished: number,
        base: Timestamps,
        validated: Validated | undefined
      ): Phase => {
        const cancelledAt = from + timing.cancellingMillis
        return now < cancelledAt
          ? { status: "cancelling", validated, finished, at: { ...base, cancelling_at: from } }
          : {
              status: "cancelled",
              validated,
              finished,
              at: { ...base, cancelling_at: from, cancelled_at: cancelledAt }
            }
      }
      if (cancelAt !== undefined && cancelAt < validatedAt) return cancelling(cancelAt, 0, none, undefined)
      if (now < validatedAt) return { status: "validating", validated: undefined, finished: 0, at: none }
      if (batch.validated === undefined) {
        const content = files.get(batch.inputFileId)?.content ?? new Uint8Array()
        batch.validated = yield* validate(content, batch.endpoint, {
          provider: options.provider,
          responder: options.responder,
          attempt,
          admit: (model, tokens) => {
            const limit = model === null ? undefined : options.tokenLimits?.[model]
            if (model === null || limit === undefined) return Effect.succeed(undefined)
            return Effect.map(enqueued(batch, model, validatedAt), (held) =>
              held + tokens > limit ? tokenLimitProblem(model, limit) : undefined
            )
          }
        })
      }
      const validated = batch.validated
      if (validated.problems.length > 0) {
        return { status: "failed", validated, finished: 0, at: { ...none, failed_at: validatedAt } }
      }
      const n = validated.count
      const allDoneAt = validatedAt + n * perLine
      const completedAt = allDoneAt + timing.finalizingMillis
      const ranBy = (t: number) => Math.max(0, Math.min(n, Math.floor((t - validatedAt) / perLine)))
      const running = { ...none, in_progress_at: validatedAt, expires_at: expiresAt }
      const ends = Math.min(completedAt, expiresAt)
      if (cancelAt !== undefined && cancelAt < ends) {
        const base = cancelAt >= allDoneAt ? { ...running, finalizing_at: allDoneAt } : running
        return cancelling(cancelAt, ranBy(cancelAt), base, validated)
      }
      if (expiresAt < completedAt && now >= expiresAt) {
        return {
          status: "expired",
          validated,
          finished: ranBy(expiresAt),
          at: {
            ...running,
            ...(expiresAt >= allDoneAt ? { finalizing_at: allDoneAt } : {}),
            expired_at: expiresAt
          }
        }
      }
      if (now >= completedAt) {
        return {
          status: "completed",
          validated,
          finished: n,
          at: { ...running, finalizing_at: allDoneAt, completed_at: completedAt }
        }
      }
      if (now >= allDoneAt) {
        return { status: "finalizing", validated, finished: n, at: { ...running, finalizing_at: allDoneAt } }
      }
      return { status: "in_progress", validated, finished: ranBy(now), at: running }
    })

  /** Writes the output and error files the first time a batch is seen ended. */
  const finish = (batch: StoredBatch, p: Phase, endedAt: number) => {
    if (batch.outputFileId !== undefined) return
    const validated = p.validated
    const out: Array<{ key: number; line: string }> = []
    const err: Array<{ key: number; line: string }> = []
    let input = 0
    let output = 0
    let counted = false
    const unrun =
      p.status === "expired"
        ? {
            code: "batch_expired",
            message: "This request could not be executed before the completion window expired."
          }
        : {
            code: "batch_cancelled",
            message: "This request was not executed because the batch was cancelled."
          }
    ;(validated?.lines ?? []).forEach((line, i) => {
      const id = nextId("batch_req_", 24)
      const key = hash(line.custom_id)
      if (i >= p.finished) {
        err.push({
          key,
          line: JSON.stringify({ id, custom_id: line.custom_id, response: null, error: unrun })
        })
        return
      }
      const response = validated!.responses[i]!
      const entry = JSON.stringify({
        id,
        custom_id: line.custom_id,
        response: { status_code: response.status, request_id: nextId("req_", 32), body: response.body },
        error: null
      })
      if (response.status >= 200 && response.status < 300) {
        out.push({ key, line: entry })
        const usage = (response.body as { usage?: Record<string, number> } | null)?.usage
        if (usage) {
          counted = true
          input += usage.input_tokens ?? usage.prompt_tokens ?? 0
          output += usage.output_tokens ?? usage.completion_tokens ?? 0
        }
      } else err.push({ key, line: entry })
    })
    // the API does not keep input order in its files; neither does the simulator
    const write = (entries: typeof out, suffix: string) => {
      if (entries.length === 0) return null
      entries.sort((a, b) => a.key - b.key)
      const text = `${entries.map((e) => e.line).join("\n")}\n`
      return files.store(
        `${batch.id}_${suffix}.jsonl`,
        "batch_output",
        encoder.encode(text),
        endedAt,
        batch.outputExpiresAfter
      ).id
    }
    batch.outputFileId = write(out, "output")
    batch.errorFileId = write(err, "error")
    // the lines and answers live on in the files: a long-running emulator need not keep them twice
    if (validated !== undefined) batch.validated = { ...validated, lines: [], responses: [] }
    if (counted) {
      batch.usage = {
        input_tokens: input,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: output,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: input + output
      }
    }
  }

  /** The phase, with the files written when the batch has ended. */
  const settle = (batch: StoredBatch, now: number) =>
    Effect.tap(phase(batch, now), (p) => {
      if (terminal.has(p.status)) {
        const endedAt = p.at.completed_at ?? p.at.expired_at ?? p.at.cancelled_at ?? p.at.failed_at ?? now
        finish(batch, p, endedAt)
      }
    })

  return { phase, settle }
}

export type Lifecycle = ReturnType<typeof make>
