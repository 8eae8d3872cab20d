/**
 * Progress on stderr: a live line redrawn in place on a terminal, plain lines otherwise (a log
 * file or CI gets one line per change, never escape codes).
 */
import type { Batch } from "@batchkit/core"
import type { Job } from "@batchkit/jobs"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"

const clock = (ms: number) => {
  const s = Math.max(0, Math.round(ms / 1000))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = String(s % 60).padStart(2, "0")
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`
}

export const isTerminal = () => process.stderr.isTTY === true

/** What a person wants to see about a running batch, in one line. */
export const progressLine = (
  batch: Batch.Batch,
  startedAt: number,
  now: number,
  rate: number | undefined
) => {
  const c = batch.request_counts
  const done = c ? c.completed + c.failed : 0
  const parts = [batch.id, batch.status.padEnd(11)]
  if (c && c.total > 0) {
    parts.push(`${done}/${c.total}${c.failed > 0 ? ` (${c.failed} failed)` : ""}`)
  }
  if (rate !== undefined && rate > 0) parts.push(`${rate.toFixed(1)} req/s`)
  parts.push(`elapsed ${clock(now - startedAt)}`)
  if (rate !== undefined && rate > 0 && c && batch.status === "in_progress") {
    parts.push(`ETA ${clock(((c.total - done) / rate) * 1000)}`)
  }
  return parts.join("  ")
}

/**
 * A tracker fed with each snapshot. On a terminal it redraws one line (and ticks the elapsed time
 * every second while it lives in the scope); elsewhere it prints a plain line per snapshot.
 */
export const tracker = (
  live: boolean
): Effect.Effect<
  {
    readonly update: (batch: Batch.Batch) => Effect.Effect<void>
    /** A message of its own line (the live line is drawn again under it). */
    readonly note: (message: string) => Effect.Effect<void>
    readonly done: Effect.Effect<void>
  },
  never,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const startedAt = Date.now()
    let last: Batch.Batch | undefined
    let first: { at: number; done: number } | undefined
    let rate: number | undefined
    const draw = () => {
      if (last === undefined) return
      const line = progressLine(last, startedAt, Date.now(), rate)
      process.stderr.write(live ? `\r\x1b[2K${line}` : `${new Date().toISOString().slice(0, 19)}Z ${line}\n`)
    }
    if (live) yield* Effect.forkScoped(Effect.repeat(Effect.sync(draw), Schedule.spaced("1 second")))
    return {
      update: (batch) =>
        Effect.sync(() => {
          const c = batch.request_counts
          const done = c ? c.completed + c.failed : 0
          // the rate is measured while requests run; after that it would only fall
          if (batch.status === "in_progress") {
            if (first === undefined) first = { at: Date.now(), done }
            else if (Date.now() > first.at) rate = ((done - first.done) * 1000) / (Date.now() - first.at)
          }
          last = batch
          draw()
        }),
      note: (message) =>
        Effect.sync(() => {
          process.stderr.write(
            live ? `\r\x1b[2K${message}\n` : `${new Date().toISOString().slice(0, 19)}Z ${message}\n`
          )
          if (live) draw()
        }),
      done: Effect.sync(() => {
        if (live && last !== undefined) process.stderr.write("\n")
      })
    }
  })

/** Bytes sent so far, on a terminal, for uploads large enough to take a moment. */
export const uploadProgress = (size: number | undefined, live: boolean) => {
  if (!live || size === undefined || size < 8 * 1024 * 1024)
    return { shown: false, sent: (_: number) => {}, done: () => {} }
  let sent = 0
  let lastDraw = 0
  const mb = (n: number) => (n / 1024 / 1024).toFixed(1)
  return {
    shown: true,
    sent: (n: number) => {
      sent += n
      const now = Date.now()
      if (now - lastDraw > 200 || sent >= size) {
        lastDraw = now
        process.stderr.write(
          `\r\x1b[2Kuploading ${mb(sent)} / ${mb(size)} MB (${Math.floor((sent / size) * 100)}%)`
        )
      }
    },
    done: () => process.stderr.write("\n")
  }
}

/** A job in one line: done/total, failed, batches by status, rate, ETA, tokens and cost so far. */
export const jobLine = (s: Job.Snapshot, startedAt: number, now: number, rate: number | undefined) => {
  const r = s.requests
  // results collected, and what the batches still running say they have done
  const done = Math.min(r.total, r.total - r.pending + s.running.completed + s.running.failed)
  const bad = r.failed + r.expired + r.cancelled + r.errored + s.running.failed
  const batches = Object.entries(s.batches)
    .map(([k, n]) => `${n} ${k}`)
    .join(", ")
  const parts = [
    `job ${s.id}`,
    s.status.padEnd(10),
    `${done}/${r.total}${bad > 0 ? ` (${bad} not succeeded)` : ""}`
  ]
  if (batches !== "") parts.push(`batches: ${batches}`)
  if (rate !== undefined && rate > 0) parts.push(`${rate.toFixed(1)} req/s`)
  parts.push(`elapsed ${clock(now - startedAt)}`)
  if (rate !== undefined && rate > 0 && s.status === "running" && r.pending > 0)
    parts.push(`ETA ${clock(((r.total - done) / rate) * 1000)}`)
  if (s.tokens.input + s.tokens.output > 0)
    parts.push(`tokens ${s.tokens.input}/${s.tokens.output}`, `$${s.cost.usd.toFixed(4)}`)
  return parts.join("  ")
}

/** Progress of a job: as `tracker`, fed with job snapshots. */
export const jobTracker = (
  live: boolean
): Effect.Effect<
  {
    readonly update: (s: Job.Snapshot) => Effect.Effect<void>
    readonly note: (message: string) => Effect.Effect<void>
    readonly done: Effect.Effect<void>
  },
  never,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const startedAt = Date.now()
    let last: Job.Snapshot | undefined
    let first: { at: number; done: number } | undefined
    let rate: number | undefined
    const draw = () => {
      if (last === undefined) return
      const line = jobLine(last, startedAt, Date.now(), rate)
      process.stderr.write(live ? `\r\x1b[2K${line}` : `${new Date().toISOString().slice(0, 19)}Z ${line}\n`)
    }
    if (live) yield* Effect.forkScoped(Effect.repeat(Effect.sync(draw), Schedule.spaced("1 second")))
    return {
      update: (s) =>
        Effect.sync(() => {
          const done = s.requests.total - s.requests.pending + s.running.completed + s.running.failed
          if (first === undefined && s.status === "running") first = { at: Date.now(), done }
          else if (first !== undefined && Date.now() > first.at)
            rate = ((done - first.done) * 1000) / (Date.now() - first.at)
          last = s
          draw()
        }),
      note: (message) =>
        Effect.sync(() => {
          process.stderr.write(
            live ? `\r\x1b[2K${message}\n` : `${new Date().toISOString().slice(0, 19)}Z ${message}\n`
          )
          if (live) draw()
        }),
      done: Effect.sync(() => {
        if (live && last !== undefined) process.stderr.write("\n")
      })
    }
  })
