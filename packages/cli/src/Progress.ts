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

/** What a tracker needs of what it follows: its line, how much is done, and whether that is running now. */
interface Follows<A> {
  readonly line: (value: A, startedAt: number, now: number, rate: number | undefined) => string
  readonly done: (value: A) => number
  /** The rate is measured while this holds; after that it would only fall. */
  readonly running: (value: A) => boolean
}

export interface Tracker<A> {
  readonly update: (value: A) => Effect.Effect<void>
  /** A message of its own line (the live line is drawn again under it). */
  readonly note: (message: string) => Effect.Effect<void>
  readonly done: Effect.Effect<void>
}

/**
 * A tracker fed with each snapshot. On a terminal it redraws one line (and ticks the elapsed time
 * every second while it lives in the scope); elsewhere it prints a plain line per snapshot.
 */
const follow = <A>(follows: Follows<A>, live: boolean): Effect.Effect<Tracker<A>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const startedAt = Date.now()
    let last: A | undefined
    let first: { at: number; done: number } | undefined
    let rate: number | undefined
    const print = (text: string, ownLine: boolean) =>
      process.stderr.write(
        live
          ? `\r\x1b[2K${text}${ownLine ? "\n" : ""}`
          : `${new Date().toISOString().slice(0, 19)}Z ${text}\n`
      )
    const draw = () => {
      if (last !== undefined) print(follows.line(last, startedAt, Date.now(), rate), false)
    }
    if (live) yield* Effect.forkScoped(Effect.repeat(Effect.sync(draw), Schedule.spaced("1 second")))
    return {
      update: (value) =>
        Effect.sync(() => {
          const done = follows.done(value)
          if (follows.running(value)) {
            if (first === undefined) first = { at: Date.now(), done }
            else if (Date.now() > first.at) rate = ((done - first.done) * 1000) / (Date.now() - first.at)
          }
          last = value
          draw()
        }),
      note: (message) =>
        Effect.sync(() => {
          print(message, true)
          if (live) draw()
        }),
      done: Effect.sync(() => {
        if (live && last !== undefined) process.stderr.write("\n")
      })
    }
  })

/** Progress of one batch. */
export const tracker = (live: boolean) =>
  follow<Batch.Batch>(
    {
      line: progressLine,
      done: (b) => (b.request_counts ? b.request_counts.completed + b.request_counts.failed : 0),
      running: (b) => b.status === "in_progress"
    },
    live
  )

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
  const done = Math.min(r.total, jobDone(s))
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

/** What a job has done: results collected, and what its running batches report done. */
const jobDone = (s: Job.Snapshot) =>
  s.requests.total - s.requests.pending + s.running.completed + s.running.failed

/** Progress of a job: as `tracker`, fed with job snapshots. */
export const jobTracker = (live: boolean) =>
  follow<Job.Snapshot>({ line: jobLine, done: jobDone, running: (s) => s.status === "running" }, live)
