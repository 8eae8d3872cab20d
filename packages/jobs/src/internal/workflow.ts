/**
 * A job as a durable workflow. Each step that touches the API is an activity whose result the
 * engine records, so a process that dies anywhere picks up where it was: a replay skips what was
 * done, and the activity that was running when it died runs again, finding in the store (and,
 * for creates, on the API through the idempotency key) what it had already done.
 *
 *   BatchkitJob (one per job: cheap steps, on whichever runner holds the job)
 *     StartJob
 *     for each round (0, then one per retry):
 *       PlanRound/r                   the round's shards (round 0: planned at submit)
 *       loop:
 *         WatchBatches/r/c            list pages over the batches in flight; requeues refused
 *                                     ones; admits the shards that are due (state `submitting`)
 *         BatchkitShard               started for each shard attempt that is due: upload, create
 *         BatchkitCollect             started for each batch that ended: its results into the store
 *         (or CancelBatches/r/c       once the job is to be cancelled)
 *         wait (DurableClock)
 *     FinishJob                       the summary
 *
 * The heavy steps (an upload, a download of results) are workflows of their own, keyed by shard
 * attempt and by batch: the engine places each on a runner by its key, so with several runners
 * on one store a job's shards are spread over them, and a runner that dies has its share taken
 * over by the others. Starting one twice (a replay) is a no-op: the engine keeps one execution
 * per key. The job's workflow sees them end through the store.
 */
import { BatchLine, BatchService, FileService } from "@batchkit/core"
import * as Activity from "@effect/workflow/Activity"
import * as DurableClock from "@effect/workflow/DurableClock"
import * as Workflow from "@effect/workflow/Workflow"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Job from "../Job.js"
import * as Planner from "../Planner.js"
import { Store, chunks, type BatchRow, type JobStore, type ShardRow } from "./store.js"

/**
 * @since 0.1.0
 */
export const JobWorkflow = Workflow.make({
  name: "BatchkitJob",
  payload: { jobId: Schema.String },
  success: Schema.Void,
  idempotencyKey: ({ jobId }) => jobId
})

/**
 * One shard attempt: its input uploaded and its batch created, once.
 *
 * @since 0.2.0
 */
export const ShardWorkflow = Workflow.make({
  name: "BatchkitShard",
  payload: { jobId: Schema.String, shard: Schema.String, attempt: Schema.Number },
  success: Schema.Void,
  idempotencyKey: ({ attempt, jobId, shard }) => `${jobId}/${shard}/${attempt}`
})

/**
 * One batch that ended: its output and error files read into the store.
 *
 * @since 0.2.0
 */
export const CollectWorkflow = Workflow.make({
  name: "BatchkitCollect",
  payload: { jobId: Schema.String, batchId: Schema.String },
  success: Schema.Void,
  idempotencyKey: ({ batchId, jobId }) => `${jobId}/${batchId}`
})

/**
 * A failure a step met. `fatal` when trying again cannot help by itself (a refused key, a
 * request the API calls bad, a quota): the step is still retried, slowly, so a fixed cause lets
 * the job go on, but whoever watches the job should stop waiting and say so.
 */
export class JobFailure extends Schema.TaggedError<JobFailure>("@batchkit/jobs/JobFailure")("JobFailure", {
  message: Schema.String,
  fatal: Schema.Boolean
}) {}

const fatalTags = new Set([
  "AuthenticationError",
  "PermissionDenied",
  "BadRequest",
  "NotFound",
  "InvalidRequest",
  "ResponseDecodeError"
])

const failure = (what: string) => (e: object) => {
  if (e instanceof JobFailure) return e
  const tag = "_tag" in e ? String(e._tag) : undefined
  const message = "message" in e ? String(e.message) : String(e)
  const fatal =
    (tag !== undefined && fatalTags.has(tag)) ||
    (tag === "RateLimited" && (e as { readonly isQuota?: boolean }).isQuota === true)
  return new JobFailure({ message: `${what}: ${tag !== undefined ? `${tag}: ` : ""}${message}`, fatal })
}

const terminal = new Set(["completed", "failed", "expired", "cancelled"])

/** Back-off for a shard the API refused over the enqueued-token limit: 10 s doubling to 5 minutes. */
export const requeueDelay = (requeues: number) => Math.min(10_000 * 2 ** Math.max(0, requeues - 1), 300_000)

/** Shards whose batch fails validation for another reason get this many more tries. */
const maxValidationRequeues = 3

const View = Schema.Struct({
  /** Batches that ended after running, to collect. */
  ended: Schema.Array(Schema.String),
  /** Shards to upload and create now: name and attempt. */
  due: Schema.Array(Schema.Struct({ shard: Schema.String, attempt: Schema.Number })),
  cancel: Schema.Boolean,
  roundDone: Schema.Boolean,
  /** How long to wait before the next look. */
  wait: Schema.Number
})
type View = typeof View.Type

const jobOf = (store: JobStore, jobId: string) =>
  Effect.flatMap(
    store.job(jobId),
    Option.match({
      onNone: () => Effect.fail(new JobFailure({ message: `no job ${jobId} in the store`, fatal: true })),
      onSome: Effect.succeed
    })
  )

const optionsOf = (row: { readonly options: string }) =>
  Schema.decodeUnknownSync(Job.ResolvedOptions)(JSON.parse(row.options))

const lineEncoder = new TextEncoder()

/** A record's JSON less its closing brace: `attempts` goes last, once it is known. */
const recordHead = (record: object) => JSON.stringify(record).slice(0, -1)

const withAttempts = (head: string, attempts: number) =>
  lineEncoder.encode(`${head},"attempts":${attempts}}\n`)

/** A line of the results file, as bytes: the record `batchkit results` writes, and `attempts`. */
const resultLine = (record: object, attempts: number) => withAttempts(recordHead(record), attempts)

/** What a retry round is for: the outcomes worth sending again. */
export const isRetryable = (o: BatchLine.Outcome, jobCancelled: boolean): boolean => {
  switch (o._tag) {
    case "Expired":
      return true
    case "Cancelled":
      return !jobCancelled
    case "Failed":
      return o.statusCode === 408 || o.statusCode === 429 || o.statusCode >= 500
    default:
      return false
  }
}

// ---- the activities' work ----------------------------------------------------------------

const planRound = (store: JobStore, jobId: string, round: number) =>
  Effect.gen(function* () {
    const existing = yield* store.shards(jobId, round)
    if (existing.length > 0 || round === 0) return existing.length
    const row = yield* jobOf(store, jobId)
    if (row.cancel_requested_at !== null) return 0
    const counts = yield* store.resultCounts(jobId)
    if (counts.retryable === 0 && counts.results === row.requests) return 0
    const options = optionsOf(row)
    // requests whose outcome is worth another try, and those that got none, cut into new shards
    const sharder = Planner.sharder(options, `r${round}s`)
    const members = new Map<string, Array<number>>()
    yield* Stream.runForEachChunk(
      Stream.fromEffect(Effect.void).pipe(Stream.flatMap(() => requestPages(store, jobId))),
      (chunk) =>
        Effect.sync(() => {
          for (const r of chunk) {
            if (r.outcome !== null && r.retryable !== 1) continue
            if ((r.attempts ?? 0) > options.retries) continue
            const shard = sharder.add({
              url: r.url,
              model: r.model,
              bytes: r.bytes,
              tokens: r.tokens,
              embeddingInputs: r.embedding_inputs
            })
            const list = members.get(shard)
            if (list === undefined) members.set(shard, [r.idx])
            else list.push(r.idx)
          }
        })
    )
    const shards = sharder.shards()
    if (shards.length === 0) return 0
    yield* store.transaction(
      Effect.gen(function* () {
        for (const [shard, idxs] of members) yield* store.assignShard(jobId, shard, idxs)
        yield* store.insertShards(jobId, round, shards)
        yield* store.setRound(jobId, round)
      })
    )
    return shards.length
  })

const requestPages = (store: JobStore, jobId: string) => {
  const page = (after: number) => store.requestPage(jobId, after, 5000)
  return Stream.paginateChunkEffect(-1, (after) =>
    Effect.map(
      page(after),
      (rows) =>
        [
          Chunk.unsafeFromArray(rows as Array<(typeof rows)[number]>),
          rows.length === 5000 ? Option.some(rows.at(-1)!.idx) : Option.none()
        ] as const
    )
  )
}

const adaptive = { initial: 1000, max: 60_000, factor: 1.5 }

const watchBatches = (store: JobStore, jobId: string, round: number, previousWait: number) =>
  Effect.gen(function* () {
    const batches = yield* BatchService.BatchService
    const now = yield* Clock.currentTimeMillis
    const row = yield* jobOf(store, jobId)
    const options = optionsOf(row)
    const cancel = row.cancel_requested_at !== null
    const shards = yield* store.shards(jobId, round)
    const rows = yield* store.batches(jobId)
    const current = new Map<string, BatchRow>()
    for (const b of rows) {
      const shard = shards.find((s) => s.shard === b.shard)
      if (shard !== undefined && b.attempt === shard.attempt) current.set(b.shard, b)
    }
    const inFlight = [...current.values()].filter((b) => b.batch_id !== null && !terminal.has(b.status ?? ""))
    let changed = false
    // one look at every batch in flight, through list pages
    if (inFlight.length > 0) {
      const oldest = Math.min(...inFlight.map((b) => Math.floor((b.created_at ?? now) / 1000)))
      const seen = yield* batches
        .snapshots(
          inFlight.map((b) => b.batch_id!),
          { oldest }
        )
        .pipe(Effect.mapError(failure("watching the job's batches")))
      for (const b of seen.batches) {
        const before = inFlight.find((r) => r.batch_id === b.id)!
        const counts = b.request_counts
        if (
          before.status !== b.status ||
          before.completed !== (counts?.completed ?? 0) ||
          before.failed !== (counts?.failed ?? 0)
        )
          changed = true
        const error = b.errors?.data?.[0]
        yield* store.updateBatch(jobId, b.id, {
          status: b.status,
          completed: counts?.completed ?? 0,
          failed: counts?.failed ?? 0,
          total: counts?.total ?? 0,
          ran: b.in_progress_at != null || b.status === "completed" ? 1 : 0,
          error_code: error?.code ?? null,
          error_message: error?.message ?? null
        })
        if (b.status === "failed") {
          // it never ran: the shard goes back to the queue (a new attempt), after a back-off
          // when the API refused it over the enqueued-token limit
          const shard = shards.find((s) => s.shard === before.shard)!
          const tokenLimited = error?.code === "token_limit_exceeded"
          yield* store.transaction(
            Effect.gen(function* () {
              yield* store.updateBatch(jobId, b.id, { collected: 1 })
              if (!tokenLimited && shard.requeues >= maxValidationRequeues) {
                yield* failShard(
                  store,
                  jobId,
                  shard,
                  error?.code ?? "batch_failed",
                  error?.message ?? "the batch failed"
                )
                return
              }
              const held = shards
                .filter((s) => holds(s) && s.model === shard.model && s.shard !== shard.shard)
                .reduce((n, s) => n + s.tokens, 0)
              yield* store.updateShard(jobId, shard.shard, {
                state: cancel ? "ended" : "queued",
                attempt: shard.attempt + 1,
                requeues: shard.requeues + 1,
                not_before: now + (tokenLimited ? requeueDelay(shard.requeues + 1) : 0),
                held_at_refusal: tokenLimited ? held : 0
              })
            })
          )
        }
      }
    }
    const after = yield* store.batches(jobId)
    const ended = after
      .filter(
        (b) =>
          b.batch_id !== null &&
          b.collected === 0 &&
          (b.status === "completed" || b.status === "expired" || b.status === "cancelled")
      )
      .map((b) => b.batch_id!)
    const shardsNow = yield* store.shards(jobId, round)
    // every shard attempt that was admitted and has no batch yet is started (again: a no-op for
    // one that runs, and the way one admitted just before a crash is not left behind)
    const due: Array<{ shard: string; attempt: number }> = shardsNow
      .filter((s) => s.state === "submitting")
      .map((s) => ({ shard: s.shard, attempt: s.attempt }))
    let nextDue = Number.POSITIVE_INFINITY
    if (cancel) {
      // what has not been sent will not be
      for (const s of shardsNow.filter((s) => s.state === "queued")) {
        yield* store.updateShard(jobId, s.shard, { state: "ended" })
        changed = true
      }
    } else {
      // admission: a shard goes while its model's estimated enqueued tokens, with it, fit, and
      // while fewer than `concurrency` of the job's shards are being uploaded
      const held = new Map<string, number>()
      for (const s of shardsNow) if (holds(s)) held.set(s.model, (held.get(s.model) ?? 0) + s.tokens)
      let uploading = due.length
      const admitted: Array<ShardRow> = []
      for (const s of shardsNow) {
        if (s.state !== "queued") continue
        if (uploading >= options.concurrency) break
        if (s.not_before > now) {
          nextDue = Math.min(nextDue, s.not_before)
          continue
        }
        const limit = Job.tokenLimit(options, s.model)
        const holding = held.get(s.model) ?? 0
        if (limit !== undefined && holding > 0 && holding + s.tokens > limit) continue
        // refused over the API's limit: again only once its model's batches hold less than then
        if (s.held_at_refusal > 0 && holding > 0 && holding >= s.held_at_refusal) continue
        held.set(s.model, holding + s.tokens)
        admitted.push(s)
        uploading++
      }
      if (admitted.length > 0)
        yield* store.transaction(
          Effect.forEach(admitted, (s) => store.updateShard(jobId, s.shard, { state: "submitting" }), {
            discard: true
          })
        )
      for (const s of admitted) due.push({ shard: s.shard, attempt: s.attempt })
    }
    if (due.length > 0 || ended.length > 0) changed = true
    const roundDone = shardsNow.every((s) => s.state === "ended") && ended.length === 0 && due.length === 0
    const grown = changed ? adaptive.initial : Math.min(previousWait * adaptive.factor, adaptive.max)
    // uploads and collections under way end within seconds: look again soon
    const busy = due.length > 0 || ended.length > 0 ? busyWait : Number.POSITIVE_INFINITY
    const wait = Math.max(0, Math.min(grown, nextDue - now, busy))
    return { ended, due, cancel, roundDone, wait: Math.round(wait) } satisfies View
  })

/** How much of a batch's results (characters of their lines) is held, sorted, and written at a time. */
const defaultCollectRun = 4 * 1024 * 1024

/** One result of a batch being collected, before its attempts are known. */
interface Collected {
  readonly idx: number
  readonly customId: string
  readonly outcome: string
  readonly retryable: number
  /** {@link recordHead} of its record. */
  readonly head: string
  readonly tokens: BatchLine.TokenUsage
}

const noTokens = { input: 0, cached: 0, output: 0, reasoning: 0 }

/** How often the job looks again while uploads or collections it started are under way. */
const busyWait = 2000

/** A shard whose tokens count against its model's enqueued-token limit: being sent, or running. */
const holds = (s: ShardRow) => s.state === "submitting" || s.state === "submitted"

/** The results these requests have so far (their attempts, and the batch that counted last), by idx. */
const earlierResults = (store: JobStore, jobId: string, idxs: ReadonlyArray<number>) =>
  Effect.map(store.results(jobId, idxs), (rows) => new Map(rows.map((r) => [r.idx, r])))

/** Gives every request of a shard that will not run again a final `errored` result. */
const failShard = (store: JobStore, jobId: string, shard: ShardRow, code: string, message: string) =>
  Effect.gen(function* () {
    const ids = yield* store.shardIds(jobId, shard.shard)
    const before = yield* earlierResults(
      store,
      jobId,
      ids.map((r) => r.idx)
    )
    yield* store.upsertResults(
      jobId,
      ids.map((r) => ({
        idx: r.idx,
        custom_id: r.custom_id,
        outcome: "errored",
        retryable: 0,
        // no batch ran: the attempts are those before
        attempts: before.get(r.idx)?.attempts ?? 0,
        record: resultLine(
          { custom_id: r.custom_id, outcome: "errored", error: { code, message } },
          before.get(r.idx)?.attempts ?? 0
        ),
        input_tokens: 0,
        cached_tokens: 0,
        output_tokens: 0,
        reasoning_tokens: 0,
        batch_id: before.get(r.idx)?.batch_id ?? null
      }))
    )
    yield* store.updateShard(jobId, shard.shard, { state: "ended" })
  })

const collectResults = (store: JobStore, jobId: string, batchId: string, collectRun = defaultCollectRun) =>
  Effect.gen(function* () {
    const files = yield* FileService.FileService
    const batches = yield* BatchService.BatchService
    const row = (yield* store.batches(jobId)).find((b) => b.batch_id === batchId)
    if (row === undefined || row.collected === 1) return
    const job = yield* jobOf(store, jobId)
    const cancelled = job.cancel_requested_at !== null
    const batch = yield* batches.retrieve(batchId).pipe(Effect.mapError(failure(`retrieving ${batchId}`)))
    const ids = yield* store.shardIds(jobId, row.shard)
    const idxOf = new Map(ids.map((r) => [r.custom_id, r.idx]))
    const shard = (yield* store.shards(jobId)).find((s) => s.shard === row.shard)!
    const usage = { input: 0, cached: 0, output: 0, reasoning: 0 }
    // into the store as the files are read (they expire on the API's side), in runs of up to
    // `collectRun` characters, each sorted by input order: memory follows the run, not the batch,
    // and the store keeps each run's rows side by side, so the results file reads them back in
    // long sequential stretches. (The output file's order is not the input's: rows written as
    // they come scatter a range of the results over the whole table, and the merge slows 5×.)
    // A row this batch wrote before a crash is written again with the attempts it had; only the
    // usage and the batch's `collected` wait for the end.
    let run: Array<Collected> = []
    let runChars = 0
    const writeRun = (rows: Array<Collected>) =>
      Effect.gen(function* () {
        rows.sort((a, b) => a.idx - b.idx)
        const earlier = yield* earlierResults(
          store,
          jobId,
          rows.map((r) => r.idx)
        )
        yield* store.transaction(
          Effect.forEach(
            chunks(rows, 5000),
            (some) =>
              store.upsertResults(
                jobId,
                some.map((r) => {
                  const before = earlier.get(r.idx)
                  // the batch ran: every request it held took one attempt, finished or not
                  const attempts =
                    before === undefined
                      ? 1
                      : before.batch_id === batchId
                        ? before.attempts
                        : before.attempts + 1
                  return {
                    idx: r.idx,
                    custom_id: r.customId,
                    outcome: r.outcome,
                    retryable: r.retryable,
                    attempts,
                    record: withAttempts(r.head, attempts),
                    input_tokens: r.tokens.input,
                    cached_tokens: r.tokens.cached,
                    output_tokens: r.tokens.output,
                    reasoning_tokens: r.tokens.reasoning,
                    batch_id: batchId
                  }
                })
              ),
            { discard: true }
          )
        )
      })
    yield* files.results(batch).pipe(
      // a failure of the store's writes is the store's, not a failed read
      Stream.mapError(failure(`reading the results of ${batchId}`)),
      Stream.runForEachChunk((chunk) => {
        for (const o of chunk) {
          const idx = idxOf.get(o.customId)
          if (idx === undefined) continue
          const tokens = o._tag === "Succeeded" ? BatchLine.tokenUsage(o.body) : noTokens
          usage.input += tokens.input
          usage.cached += tokens.cached
          usage.output += tokens.output
          usage.reasoning += tokens.reasoning
          const head = recordHead(BatchLine.toResultRecord(o))
          runChars += head.length
          run.push({
            idx,
            customId: o.customId,
            outcome: BatchLine.outcomeName(o),
            retryable: isRetryable(o, cancelled) ? 1 : 0,
            head,
            tokens
          })
        }
        if (runChars < collectRun) return Effect.void
        const full = run
        run = []
        runChars = 0
        return writeRun(full)
      }),
      Effect.zipRight(Effect.suspend(() => (run.length > 0 ? writeRun(run) : Effect.void)))
    )
    yield* store.transaction(
      Effect.gen(function* () {
        yield* store.addUsage(jobId, shard.model, usage)
        yield* store.updateBatch(jobId, batchId, { collected: 1, status: batch.status })
        yield* store.updateShard(jobId, row.shard, { state: "ended" })
      })
    )
  })

/** The name a shard attempt's input file is uploaded under. */
export const shardFilename = (jobId: string, shard: string, attempt: number) =>
  `batchkit_${jobId}_${shard}_a${attempt}.jsonl`

const encoder = new TextEncoder()

const submitShard = (store: JobStore, jobId: string, shardName: string, attempt: number) =>
  Effect.gen(function* () {
    const files = yield* FileService.FileService
    const batches = yield* BatchService.BatchService
    const job = yield* jobOf(store, jobId)
    const options = optionsOf(job)
    const shard = (yield* store.shards(jobId)).find((s) => s.shard === shardName)
    // a start that was overtaken (the attempt moved on, or the shard ended) has nothing to do
    if (shard === undefined || shard.attempt !== attempt || shard.state === "ended") return
    const existing = yield* store.batch(jobId, shard.shard, attempt)
    if (Option.isSome(existing) && existing.value.batch_id !== null) {
      yield* store.updateShard(jobId, shard.shard, { state: "submitted" })
      return
    }
    if (job.cancel_requested_at !== null && Option.isNone(existing)) {
      // the job was cancelled before this attempt sent anything: it never will
      yield* store.updateShard(jobId, shard.shard, { state: "ended" })
      return
    }
    const filename = shardFilename(jobId, shard.shard, attempt)
    let fileId = Option.isSome(existing) ? existing.value.file_id : null
    let sentBefore = Option.isSome(existing) ? (existing.value.create_started_at ?? undefined) : undefined
    if (fileId === null) {
      // an earlier run may have uploaded it and died before noting so: the newest files say
      const recent = yield* files
        .list({ purpose: "batch", order: "desc", limit: 100 })
        .pipe(Effect.mapError(failure("listing recent files")))
      const found = recent.data.find((f) => f.filename === filename)
      if (found !== undefined) fileId = found.id
      else {
        const lines = Stream.paginateChunkEffect(-1, (after) =>
          Effect.map(
            store.shardLines(jobId, shard.shard, after, 5000),
            (rows) =>
              [
                Chunk.of(encoder.encode(rows.map((r) => `${r.line}\n`).join(""))),
                rows.length === 5000 ? Option.some(rows.at(-1)!.idx) : Option.none()
              ] as const
          )
        )
        const uploaded = yield* files
          .upload({ filename, stream: lines }, { purpose: "batch" })
          .pipe(Effect.mapError(failure(`uploading ${filename}`)))
        fileId = uploaded.id
      }
      const at = yield* Clock.currentTimeMillis
      yield* store.recordUpload(jobId, shard.shard, attempt, fileId, at)
      sentBefore = undefined
    }
    const createdAt = yield* Clock.currentTimeMillis
    const batch = yield* batches
      .create(
        {
          input_file_id: fileId,
          endpoint: shard.url as `/v1/${string}`,
          metadata: { ...options.metadata, batchkit_job: jobId, batchkit_shard: `${shard.shard}/${attempt}` }
        },
        {
          idempotencyKey: `${jobId}/${shard.shard}/${attempt}`,
          ...(sentBefore !== undefined ? { sentBefore } : {})
        }
      )
      .pipe(Effect.mapError(failure(`creating the batch of ${filename}`)))
    yield* store.transaction(
      Effect.gen(function* () {
        yield* store.recordBatch(jobId, shard.shard, attempt, batch.id, batch.status, createdAt)
        yield* store.updateShard(jobId, shard.shard, { state: "submitted" })
      })
    )
  })

const cancelBatches = (store: JobStore, jobId: string) =>
  Effect.gen(function* () {
    const batches = yield* BatchService.BatchService
    const running = (yield* store.batches(jobId)).filter(
      (b) => b.batch_id !== null && !terminal.has(b.status ?? "") && b.status !== "cancelling"
    )
    yield* Effect.forEach(
      running,
      (b) =>
        batches.cancel(b.batch_id!).pipe(
          // one that ended meanwhile is fine: its results are collected all the same
          Effect.catchTag("Conflict", () => Effect.void),
          Effect.mapError(failure(`cancelling ${b.batch_id}`))
        ),
      { concurrency: 8, discard: true }
    )
  })

const finishJob = (store: JobStore, jobId: string) =>
  Effect.gen(function* () {
    const row = yield* jobOf(store, jobId)
    if (row.finished_at !== null) return
    const cancelled = row.cancel_requested_at !== null
    // every request gets a line: those that never got a result say why
    const missing: Array<Parameters<JobStore["upsertResults"]>[1][number]> = []
    const complete = (yield* store.resultCounts(jobId)).results === row.requests
    yield* Stream.runForEachChunk(complete ? Stream.empty : requestPages(store, jobId), (chunk) =>
      Effect.sync(() => {
        for (const r of chunk) {
          if (r.outcome !== null) continue
          const [outcome, code, message] = cancelled
            ? ["cancelled", "job_cancelled", "the job was cancelled before this request ran"]
            : ["errored", "no_result", "no result came back for this request after every retry"]
          missing.push({
            idx: r.idx,
            custom_id: r.custom_id,
            outcome,
            retryable: 0,
            attempts: r.attempts ?? 0,
            record: resultLine(
              { custom_id: r.custom_id, outcome, error: { code, message } },
              r.attempts ?? 0
            ),
            input_tokens: 0,
            cached_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            batch_id: null
          })
        }
      })
    )
    const now = yield* Clock.currentTimeMillis
    yield* store.transaction(
      Effect.gen(function* () {
        yield* store.upsertResults(jobId, missing)
        yield* store.finish(jobId, now, JSON.stringify({ cancelled }))
      })
    )
  })

// ---- the workflow --------------------------------------------------------------------------

/** How a step that fails is tried again: 1 s doubling to 5 minutes, for as long as it takes. */
const stepRetry = Schedule.exponential("1 second").pipe(Schedule.union(Schedule.spaced("5 minutes")))

/**
 * A step as an activity. A step that fails (the network, the API) is tried again until it passes,
 * with the failure noted on the job for whoever watches it: the job never ends because of one; a
 * process that gives up leaves it resumable.
 */
const activity = <A, I>(
  store: JobStore,
  jobId: string,
  name: string,
  success: Schema.Schema<A, I>,
  execute: Effect.Effect<A, unknown, Store | BatchService.BatchService | FileService.FileService>
) => {
  let failed = false
  return Activity.make({
    name,
    success,
    execute: execute.pipe(
      Effect.tapError((e) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          failed = true
          const f = failure(name)(e as object)
          return store.setError(jobId, `${f.fatal ? "fatal: " : ""}${f.message}`, now).pipe(Effect.ignore)
        })
      ),
      Effect.retry(stepRetry),
      // the schedule never ends: a failure does not come out
      Effect.orDie,
      Effect.tap(() => (failed ? store.setError(jobId, null, null).pipe(Effect.ignore) : Effect.void))
    )
  })
}

/**
 * The job's workflows (the job, its shard attempts, its collections), registered on the engine
 * in the context. `concurrency` bounds the uploads and result downloads this process runs at
 * once, over every job it holds (default 4).
 *
 * @since 0.2.0
 */
export const layerWith = (
  options: { readonly concurrency?: number | undefined; readonly collectBuffer?: number | undefined } = {}
) =>
  Layer.unwrapEffect(
    Effect.map(Effect.makeSemaphore(Math.max(1, options.concurrency ?? 4)), (slots) =>
      Layer.mergeAll(
        JobWorkflow.toLayer(
          Effect.fn(function* ({ jobId }) {
            const store = yield* Store
            const step = <A, I>(
              name: string,
              success: Schema.Schema<A, I>,
              execute: Parameters<typeof activity<A, I>>[4]
            ) => activity(store, jobId, name, success, execute)
            const retries = yield* step(
              "StartJob",
              Schema.Number,
              Effect.gen(function* () {
                const row = yield* jobOf(store, jobId)
                yield* store.markStarted(jobId, yield* Clock.currentTimeMillis)
                return optionsOf(row).retries
              })
            )
            let cancelled = false
            for (let round = 0; round <= retries && !cancelled; round++) {
              const shards = yield* step(`PlanRound/${round}`, Schema.Number, planRound(store, jobId, round))
              if (shards === 0) break
              let wait = adaptive.initial
              for (let cycle = 0; ; cycle++) {
                const view = yield* step(
                  `WatchBatches/${round}/${cycle}`,
                  View,
                  watchBatches(store, jobId, round, wait)
                )
                // started, not awaited: each runs where the engine places it, and a later look
                // at the store sees it done
                for (const batchId of view.ended)
                  yield* CollectWorkflow.execute({ jobId, batchId }, { discard: true })
                cancelled = view.cancel
                if (view.cancel)
                  yield* step(`CancelBatches/${round}/${cycle}`, Schema.Void, cancelBatches(store, jobId))
                for (const { attempt, shard } of view.due)
                  yield* ShardWorkflow.execute({ jobId, shard, attempt }, { discard: true })
                if (view.roundDone) break
                wait = view.wait
                if (wait > 0) yield* DurableClock.sleep({ name: `Wait/${round}/${cycle}`, duration: wait })
              }
            }
            yield* step("FinishJob", Schema.Void, finishJob(store, jobId))
          })
        ),
        ShardWorkflow.toLayer(
          Effect.fn(function* ({ attempt, jobId, shard }) {
            const store = yield* Store
            yield* activity(
              store,
              jobId,
              "Submit",
              Schema.Void,
              slots.withPermits(1)(submitShard(store, jobId, shard, attempt))
            )
          })
        ),
        CollectWorkflow.toLayer(
          Effect.fn(function* ({ batchId, jobId }) {
            const store = yield* Store
            yield* activity(
              store,
              jobId,
              "Collect",
              Schema.Void,
              slots.withPermits(1)(collectResults(store, jobId, batchId, options.collectBuffer))
            )
          })
        )
      )
    )
  )

/**
 * The job's workflows with the default concurrency.
 *
 * @since 0.1.0
 */
export const layer = layerWith()
