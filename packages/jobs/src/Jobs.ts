/**
 * The `Jobs` service: batch work of any size as one job, durable across crashes.
 *
 * A job is planned locally (every line checked, nothing sent until it passes), recorded in the
 * store, and run by the workflow engine: shards uploaded and created once each, watched through
 * list pages, their results collected into the store as each batch ends, retried in rounds, and
 * written out in input order. Any process with the engine and the store (the one that ran it, a
 * later `resume`, a runner) takes it up where it was.
 *
 * @since 0.1.0
 * @example
 * ```ts
 * import { Jobs } from "@batchkit/jobs"
 * import { NodeFileSource } from "@batchkit/node"
 * import { Effect, Stream } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const jobs = yield* Jobs.Jobs
 *   const { id } = yield* jobs.submit([{ name: "in.jsonl", bytes: NodeFileSource.stream("in.jsonl") }])
 *   yield* jobs.start(id)
 *   const done = yield* jobs.await(id)
 *   yield* Stream.runForEach(jobs.results(id), (line) => Effect.log(line.custom_id, line.outcome))
 * })
 * ```
 */
import type { BatchLine, BatchService, FileService } from "@batchkit/core"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import type * as WorkflowEngine from "@effect/workflow/WorkflowEngine"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Store from "./internal/store.js"
import * as Flow from "./internal/workflow.js"
import * as Job from "./Job.js"
import * as Planner from "./Planner.js"
import * as Prices from "./Prices.js"

/**
 * There is no such job in the store.
 *
 * @since 0.1.0
 * @category errors
 */
export class JobNotFound extends Data.TaggedError("JobNotFound")<{ readonly id: string }> {
  override get message() {
    return `no job ${this.id} in this store`
  }
}

/**
 * The job has not finished: its results are not all there.
 *
 * @since 0.1.0
 * @category errors
 */
export class JobNotFinished extends Data.TaggedError("JobNotFinished")<{
  readonly id: string
  readonly status: Job.Status
}> {
  override get message() {
    return `job ${this.id} has not finished (${this.status})`
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SubmitOptions extends Job.Options {
  /** Where `run` (and `resume`) write the results file; recorded with the job. */
  readonly output?: string | undefined
  /** Start a new job even when an unfinished one has the same inputs and options. */
  readonly new?: boolean | undefined
  /** The price table for the job's cost. Default {@link Prices.batch2026}. */
  readonly prices?: Prices.Table | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Submitted {
  readonly id: Job.JobId
  /**
   * A job with the same inputs (by content) and options was found, not cancelled: this is it. It
   * may have finished already (`finished`): then nothing needs to run, and its results are there.
   */
  readonly resumed: boolean
  readonly finished: boolean
  readonly plan: Planner.Plan
}

/**
 * One line of a job's results file: the line `batchkit results` writes, plus `attempts` (the
 * batches that ran the request).
 *
 * @since 0.1.0
 * @category models
 */
export type ResultLine = BatchLine.ResultRecord & { readonly attempts: number }

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Plans the inputs (every check, the shards) without recording or sending anything. */
  readonly plan: <E, R>(
    inputs: ReadonlyArray<Planner.Input<E, R>>,
    options?: Job.Options
  ) => Effect.Effect<Planner.Plan, Planner.PlanError | E, R>
  /**
   * Plans the inputs and records the job (nothing is sent). Given the same inputs and options as
   * a job that was not cancelled, gives that job instead (`resumed`; `finished` if it has), so the
   * same work is never sent twice, unless `new`.
   */
  readonly submit: <E, R>(
    inputs: ReadonlyArray<Planner.Input<E, R>>,
    options?: SubmitOptions
  ) => Effect.Effect<Submitted, Planner.PlanError | SqlError.SqlError | E, R>
  /**
   * Starts the job's workflow on the engine in the context, or resumes it there; returns at once.
   * The engine's process runs it (with `layerWorkflow` registered there).
   */
  readonly start: (
    id: string
  ) => Effect.Effect<void, JobNotFound | SqlError.SqlError, WorkflowEngine.WorkflowEngine>
  /**
   * Submits the inputs (or finds the unfinished job they make), runs the job on the engine in
   * the context, and gives it once done.
   */
  readonly run: <E, R>(
    inputs: ReadonlyArray<Planner.Input<E, R>>,
    options?: SubmitOptions
  ) => Effect.Effect<
    Job.Snapshot,
    Planner.PlanError | JobNotFound | SqlError.SqlError | E,
    R | WorkflowEngine.WorkflowEngine
  >
  /** Goes on with a job where it stopped (a crash, an interrupt, `--detach`), to its end. */
  readonly resume: (
    id: string
  ) => Effect.Effect<Job.Snapshot, JobNotFound | SqlError.SqlError, WorkflowEngine.WorkflowEngine>
  /** The job once it has finished or been cancelled. */
  readonly await: (
    id: string,
    options?: { readonly interval?: Duration.DurationInput | undefined }
  ) => Effect.Effect<Job.Snapshot, JobNotFound | SqlError.SqlError>
  readonly status: (id: string) => Effect.Effect<Job.Snapshot, JobNotFound | SqlError.SqlError>
  /** Every job of the store, newest first. */
  readonly list: Effect.Effect<ReadonlyArray<Job.Snapshot>, SqlError.SqlError>
  /** Snapshots, the first at once, then on every change, until the job is done. */
  readonly watch: (
    id: string,
    options?: { readonly interval?: Duration.DurationInput | undefined }
  ) => Stream.Stream<Job.Snapshot, JobNotFound | SqlError.SqlError>
  /** Asks the job to stop: its batches are cancelled, their partial results kept. */
  readonly cancel: (id: string) => Effect.Effect<Job.Snapshot, JobNotFound | SqlError.SqlError>
  /** The results, one line per request, in input order (a finished job's). */
  readonly results: (
    id: string
  ) => Stream.Stream<ResultLine, JobNotFound | JobNotFinished | SqlError.SqlError>
  /** The same results as JSONL bytes, for writing a file. */
  readonly resultsJsonl: (
    id: string
  ) => Stream.Stream<Uint8Array, JobNotFound | JobNotFinished | SqlError.SqlError>
  /** Where `run` said the results go, if anywhere. */
  readonly output: (id: string) => Effect.Effect<Option.Option<string>, JobNotFound | SqlError.SqlError>
  readonly setOutput: (id: string, output: string) => Effect.Effect<void, JobNotFound | SqlError.SqlError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Jobs extends Context.Tag("@batchkit/jobs/Jobs")<Jobs, Service>() {}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")

const digest = (data: Uint8Array) =>
  Effect.promise(
    async () =>
      new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>))
  )

/**
 * A fingerprint of the inputs' bytes: SHA-256 over fixed 1 MiB blocks, so the way the bytes
 * arrive does not change it.
 */
const fingerprinter = () => {
  const block = 1 << 20
  let buffer = new Uint8Array(block)
  let filled = 0
  const digests: Array<Uint8Array> = []
  const push = (chunk: Uint8Array): Effect.Effect<void> =>
    Effect.suspend(() => {
      let offset = 0
      const full: Array<Uint8Array> = []
      while (offset < chunk.byteLength) {
        const take = Math.min(block - filled, chunk.byteLength - offset)
        buffer.set(chunk.subarray(offset, offset + take), filled)
        filled += take
        offset += take
        if (filled === block) {
          full.push(buffer)
          buffer = new Uint8Array(block)
          filled = 0
        }
      }
      return Effect.forEach(full, (b) => Effect.map(digest(b), (d) => void digests.push(d)), {
        discard: true
      })
    })
  return {
    tap: <E, R>(bytes: Stream.Stream<Uint8Array, E, R>, name: string) =>
      Stream.concat(
        Stream.tap(bytes, push),
        // a file ends a block of its own: two files never hash like their concatenation
        Stream.execute(
          Effect.suspend(() => {
            const tail = buffer.slice(0, filled)
            filled = 0
            return Effect.map(
              digest(tail),
              (d) => void digests.push(d, new TextEncoder().encode(`|${name.length}|`))
            )
          })
        )
      ),
    done: (extra: string) =>
      Effect.map(digest(new Uint8Array(Buffer_concat([...digests, new TextEncoder().encode(extra)]))), (d) =>
        hex(d)
      )
  }
}

const Buffer_concat = (parts: ReadonlyArray<Uint8Array>) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

const newJobId = () => {
  const bytes = new Uint8Array(10)
  globalThis.crypto.getRandomValues(bytes)
  return Job.JobId.make(`job_${hex(bytes)}`)
}

class Reuse extends Data.TaggedError("Reuse")<{ readonly id: string }> {}

/** Results read from the store at a time, as one run of bytes: about 3 MB of a typical job's lines. */
const resultRange = 5000

const statusOf = (row: Store.JobRow): Job.Status =>
  row.finished_at !== null
    ? row.cancel_requested_at !== null
      ? "cancelled"
      : "finished"
    : row.cancel_requested_at !== null
      ? "cancelling"
      : row.started_at !== null
        ? "running"
        : "planned"

const outcomes = ["succeeded", "failed", "expired", "cancelled", "errored"] as const

const zeroTokens = { input: 0, cached: 0, output: 0, reasoning: 0 }

/**
 * Builds the service from the store. It reads and writes the store only: running jobs is the
 * engine's, where {@link layerWorkflow} registers the job workflow.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Service, never, Store.Store> = Effect.gen(function* () {
  const store = yield* Store.Store

  const plan = <E, R>(inputs: ReadonlyArray<Planner.Input<E, R>>, options?: Job.Options) =>
    Planner.plan(inputs, { options: Job.resolve(options) })

  const rowOf = (id: string) =>
    Effect.flatMap(
      store.job(id),
      Option.match({ onNone: () => Effect.fail(new JobNotFound({ id })), onSome: Effect.succeed })
    )

  const submit = <E, R>(inputs: ReadonlyArray<Planner.Input<E, R>>, options: SubmitOptions = {}) =>
    Effect.gen(function* () {
      const resolved = { ...Job.resolve(options), ...(options.prices ? { prices: options.prices } : {}) }
      const id = newJobId()
      const hash = fingerprinter()
      return yield* store
        .transaction(
          Effect.gen(function* () {
            const planned = yield* Planner.plan(
              inputs.map((input) => ({ name: input.name, bytes: hash.tap(input.bytes, input.name) })),
              { options: resolved, onRequests: (rows) => Effect.orDie(store.insertRequests(id, rows)) }
            )
            const fingerprint = yield* hash.done(JSON.stringify(Job.resolve(options)))
            if (options.new !== true) {
              const existing = yield* store.findSame(fingerprint)
              if (Option.isSome(existing)) return yield* Effect.fail(new Reuse({ id: existing.value.id }))
            }
            yield* store.insertShards(id, 0, planned.shards)
            yield* store.insertJob({
              id,
              created_at: yield* Clock.currentTimeMillis,
              fingerprint,
              inputs: JSON.stringify(inputs.map((i) => i.name)),
              output: options.output ?? null,
              options: JSON.stringify(resolved),
              requests: planned.requests,
              models: JSON.stringify(planned.models)
            })
            return { id, resumed: false, finished: false, plan: planned } satisfies Submitted
          })
        )
        .pipe(
          // the rows of the plan are rolled back; the job that had these inputs is the one
          Effect.catchIf(
            (e): e is Reuse => e instanceof Reuse,
            (reuse) =>
              Effect.gen(function* () {
                const row = yield* Effect.orDie(rowOf(reuse.id))
                if (options.output !== undefined && row.output !== options.output)
                  yield* store.setOutput(reuse.id, options.output)
                const shards = yield* store.shards(reuse.id, 0)
                return {
                  id: Job.JobId.make(reuse.id),
                  resumed: true,
                  finished: row.finished_at !== null,
                  plan: {
                    requests: row.requests,
                    bytes: shards.reduce((n, s) => n + s.bytes, 0),
                    shards: shards.map((s) => ({
                      shard: s.shard,
                      url: s.url,
                      model: s.model,
                      requests: s.requests,
                      bytes: s.bytes,
                      tokens: s.tokens
                    })),
                    models: JSON.parse(row.models) as Array<string>
                  }
                } satisfies Submitted
              })
          )
        )
    })

  const snapshot = (row: Store.JobRow) =>
    Effect.gen(function* () {
      const options = JSON.parse(row.options) as { readonly prices?: Prices.Table }
      const table = options.prices ?? Prices.batch2026
      const counts = yield* store.outcomeCounts(row.id)
      const requests = {
        total: row.requests,
        succeeded: 0,
        failed: 0,
        expired: 0,
        cancelled: 0,
        errored: 0,
        pending: 0
      }
      let done = 0
      for (const c of counts) {
        const n = Number(c.n)
        if ((outcomes as ReadonlyArray<string>).includes(c.outcome))
          requests[c.outcome as (typeof outcomes)[number]] += n
        done += n
      }
      requests.pending = Math.max(0, row.requests - done)
      const batches: Record<string, number> = {}
      const running = { completed: 0, failed: 0 }
      for (const b of yield* store.batches(row.id)) {
        const status = b.batch_id === null ? "uploading" : (b.status ?? "validating")
        batches[status] = (batches[status] ?? 0) + 1
        if (b.collected === 0 && b.batch_id !== null) {
          running.completed += Number(b.completed)
          running.failed += Number(b.failed)
        }
      }
      const tokens = { ...zeroTokens }
      let usd = 0
      const unpriced: Array<string> = []
      for (const u of yield* store.usage(row.id)) {
        const t = {
          input: Number(u.input_tokens),
          cached: Number(u.cached_tokens),
          output: Number(u.output_tokens),
          reasoning: Number(u.reasoning_tokens)
        }
        tokens.input += t.input
        tokens.cached += t.cached
        tokens.output += t.output
        tokens.reasoning += t.reasoning
        const cost = Prices.cost(table, u.model, t)
        if (cost === undefined) unpriced.push(u.model)
        else usd += cost
      }
      return new Job.Snapshot({
        id: row.id,
        status: statusOf(row),
        created_at: row.created_at,
        finished_at: row.finished_at,
        inputs: JSON.parse(row.inputs) as Array<string>,
        output: row.output,
        models: JSON.parse(row.models) as Array<string>,
        shards: (yield* store.shards(row.id)).length,
        round: row.round,
        requests,
        batches,
        running,
        tokens,
        cost: { usd: Math.round(usd * 1e6) / 1e6, unpriced, prices: table.date },
        last_error: row.last_error
      })
    })

  const status = (id: string) => Effect.flatMap(rowOf(id), snapshot)

  const watch = (id: string, options?: { readonly interval?: Duration.DurationInput | undefined }) =>
    Stream.repeatEffectWithSchedule(status(id), Schedule.spaced(options?.interval ?? "1 second")).pipe(
      Stream.changesWith((a, b) => JSON.stringify(a) === JSON.stringify(b)),
      Stream.takeUntil((s) => s.isDone)
    )

  const start = (id: string) =>
    Effect.flatMap(rowOf(id), () => Effect.asVoid(Flow.JobWorkflow.execute({ jobId: id }, { discard: true })))

  // from the job's row alone: counting its outcomes is a scan of its results
  const finished = (id: string) =>
    Effect.flatMap(rowOf(id), (row) =>
      row.finished_at !== null
        ? Effect.succeed(row)
        : Effect.fail(new JobNotFinished({ id, status: statusOf(row) }))
    )

  const resultsJsonl = (id: string) =>
    Stream.unwrap(
      Effect.map(finished(id), (done) => {
        // a finished job has a line for every request: a gap would be a line lost, so it fails
        const total = done.requests
        const missing = (from: number, to: number) =>
          Effect.flatMap(store.resultIdxs(id, from, to), (idxs) => {
            let next = from
            for (const idx of idxs) {
              if (idx !== next) break
              next++
            }
            return Effect.die(new Error(`job ${id}: the store has no result for request ${next}`))
          })
        return Stream.paginateChunkEffect(0, (from) => {
          const to = Math.min(total, from + resultRange)
          return Effect.flatMap(store.resultRange(id, from, to), ({ lines, bytes }) =>
            lines !== to - from
              ? missing(from, to)
              : Effect.succeed([
                  bytes.byteLength > 0 ? Chunk.of(bytes) : Chunk.empty<Uint8Array>(),
                  to < total ? Option.some(to) : Option.none()
                ] as const)
          )
        })
      })
    )

  const decodeLine = (line: string) => JSON.parse(line) as ResultLine

  const awaitJob = (id: string, options?: { readonly interval?: Duration.DurationInput | undefined }) =>
    Effect.map(Stream.runLast(watch(id, options)), (last) => Option.getOrThrow(last))

  return {
    plan,
    submit,
    start,
    run: (inputs, options) =>
      Effect.flatMap(submit(inputs, options), ({ id }) => Effect.zipRight(start(id), awaitJob(id))),
    resume: (id) => Effect.zipRight(start(id), awaitJob(id)),
    await: awaitJob,
    status,
    list: Effect.flatMap(store.jobs, (rows) => Effect.forEach(rows, snapshot)),
    watch,
    cancel: (id) =>
      Effect.gen(function* () {
        yield* rowOf(id)
        yield* store.requestCancel(id, yield* Clock.currentTimeMillis)
        return yield* status(id)
      }),
    results: (id) => resultsJsonl(id).pipe(Stream.decodeText(), Stream.splitLines, Stream.map(decodeLine)),
    resultsJsonl,
    output: (id) => Effect.map(rowOf(id), (row) => Option.fromNullable(row.output)),
    setOutput: (id, output) => Effect.asVoid(Effect.zipRight(rowOf(id), store.setOutput(id, output)))
  } satisfies Service
})

/**
 * The `Jobs` service over a store (a `SqlClient`: SQLite on one machine, Postgres for runners).
 * It plans, records, watches, cancels and reads jobs; it runs none by itself.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Jobs, SqlError.SqlError, SqlClient.SqlClient> = Layer.effect(Jobs, make).pipe(
  Layer.provide(Store.layer)
)

/**
 * The job workflows, registered on the engine in the context: the process that has them runs
 * jobs (`Jobs.start` there, a resumed job, a runner's share). Their steps call the batch
 * services, with the API key of the process that runs them; the store never holds it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWorkflow: Layer.Layer<
  never,
  SqlError.SqlError,
  WorkflowEngine.WorkflowEngine | SqlClient.SqlClient | BatchService.BatchService | FileService.FileService
> = Flow.layer.pipe(Layer.provide(Store.layer))

/**
 * {@link layerWorkflow}, with `concurrency`: the uploads and result downloads this process runs
 * at once, over every job it holds (default 4). A job's own `concurrency` bounds its uploads
 * over every process. `collectBuffer`: how many characters of a batch's results lines a download
 * holds, sorted, before writing them to the store (default 4 MiB): with `concurrency`, what
 * bounds the memory of collecting results; smaller runs make the results merge slower.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerWorkflowWith = (options: {
  readonly concurrency?: number | undefined
  readonly collectBuffer?: number | undefined
}): Layer.Layer<
  never,
  SqlError.SqlError,
  WorkflowEngine.WorkflowEngine | SqlClient.SqlClient | BatchService.BatchService | FileService.FileService
> => Flow.layerWith(options).pipe(Layer.provide(Store.layer))
