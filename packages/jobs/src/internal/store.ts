/**
 * The store's tables, on the abstract `SqlClient` (SQLite on one machine, Postgres for runners):
 * jobs, their requests (the input lines), shards, the batches of each shard attempt, and one
 * result per request. Everything a runner needs to pick a job up lives here; no secret does.
 *
 * Timestamps are unix milliseconds as doubles (Postgres gives doubles back as numbers, bigints as
 * strings); flags are 0/1 integers, as both dialects read them.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Planner from "../Planner.js"

export interface JobRow {
  readonly id: string
  readonly created_at: number
  readonly fingerprint: string
  readonly inputs: string
  readonly output: string | null
  readonly options: string
  readonly requests: number
  readonly models: string
  readonly started_at: number | null
  readonly cancel_requested_at: number | null
  readonly finished_at: number | null
  readonly round: number
  readonly summary: string | null
  /** The last failure a step of the job met and is retrying, if it has not passed since. */
  readonly last_error: string | null
  readonly last_error_at: number | null
}

/**
 * `queued` (waiting to be submitted, maybe until `not_before`), `submitting` (admitted: its upload
 * and create are under way), `submitted` (its batch runs), `ended` (collected).
 */
export type ShardState = "queued" | "submitting" | "submitted" | "ended"

export interface ShardRow {
  readonly shard: string
  readonly round: number
  readonly url: string
  readonly model: string
  readonly requests: number
  readonly bytes: number
  readonly tokens: number
  readonly state: ShardState
  readonly attempt: number
  readonly not_before: number
  /** Resubmissions after `token_limit_exceeded` (they back off) or a failed validation. */
  readonly requeues: number
  /**
   * After `token_limit_exceeded`: the tokens its model's other batches held when the API refused
   * it. It goes again once they hold fewer (capacity freed), or none is running.
   */
  readonly held_at_refusal: number
}

export interface BatchRow {
  readonly shard: string
  readonly attempt: number
  readonly file_id: string | null
  readonly create_started_at: number | null
  readonly batch_id: string | null
  readonly status: string | null
  readonly completed: number
  readonly failed: number
  readonly total: number
  readonly created_at: number | null
  readonly collected: number
  readonly ran: number
  readonly error_code: string | null
  readonly error_message: string | null
}

export interface ResultRow {
  readonly idx: number
  readonly custom_id: string
  readonly outcome: string
  readonly retryable: number
  readonly attempts: number
  /**
   * The line of the results file (the record and its `attempts`), UTF-8 with its line end: bytes,
   * so the results file is written without decoding and encoding each line again.
   */
  readonly record: Uint8Array
  readonly input_tokens: number
  readonly cached_tokens: number
  readonly output_tokens: number
  readonly reasoning_tokens: number
  /**
   * The batch whose attempt `attempts` counts last (none for a line the job wrote itself): a
   * batch collected again after a crash midway finds its own rows and does not count them twice.
   */
  readonly batch_id: string | null
}

const migrations = (bytes: string) => [
  `CREATE TABLE IF NOT EXISTS batchkit_jobs (
    id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    fingerprint TEXT NOT NULL,
    inputs TEXT NOT NULL,
    output TEXT,
    options TEXT NOT NULL,
    requests INTEGER NOT NULL,
    models TEXT NOT NULL,
    started_at DOUBLE PRECISION,
    cancel_requested_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    round INTEGER NOT NULL DEFAULT 0,
    summary TEXT,
    last_error TEXT,
    last_error_at DOUBLE PRECISION
  )`,
  `CREATE INDEX IF NOT EXISTS batchkit_jobs_fingerprint ON batchkit_jobs (fingerprint)`,
  `CREATE TABLE IF NOT EXISTS batchkit_requests (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    url TEXT NOT NULL,
    model TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    embedding_inputs INTEGER NOT NULL,
    shard TEXT NOT NULL,
    PRIMARY KEY (job_id, idx)
  )`,
  `CREATE INDEX IF NOT EXISTS batchkit_requests_shard ON batchkit_requests (job_id, shard)`,
  // the lines apart: scans of the requests (retry rounds, the end) do not read them
  `CREATE TABLE IF NOT EXISTS batchkit_lines (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (job_id, idx)
  )`,
  `CREATE TABLE IF NOT EXISTS batchkit_shards (
    job_id TEXT NOT NULL,
    shard TEXT NOT NULL,
    round INTEGER NOT NULL,
    url TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    not_before DOUBLE PRECISION NOT NULL,
    requeues INTEGER NOT NULL,
    held_at_refusal INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, shard)
  )`,
  `CREATE TABLE IF NOT EXISTS batchkit_batches (
    job_id TEXT NOT NULL,
    shard TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    file_id TEXT,
    create_started_at DOUBLE PRECISION,
    batch_id TEXT,
    status TEXT,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION,
    collected INTEGER NOT NULL DEFAULT 0,
    ran INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    PRIMARY KEY (job_id, shard, attempt)
  )`,
  `CREATE TABLE IF NOT EXISTS batchkit_results (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    retryable INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    record ${bytes} NOT NULL,
    input_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    batch_id TEXT,
    PRIMARY KEY (job_id, idx)
  )`,
  // counting outcomes (every status) from the index alone
  `CREATE INDEX IF NOT EXISTS batchkit_results_outcome ON batchkit_results (job_id, outcome, retryable)`,
  `CREATE TABLE IF NOT EXISTS batchkit_usage (
    job_id TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens DOUBLE PRECISION NOT NULL,
    cached_tokens DOUBLE PRECISION NOT NULL,
    output_tokens DOUBLE PRECISION NOT NULL,
    reasoning_tokens DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job_id, model)
  )`
]

/** Rows per INSERT: SQLite takes at most 32,766 bound values a statement. */
const insertChunk = 500

export const chunks = <A>(rows: ReadonlyArray<A>, size = insertChunk): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size))
  return out
}

/** A key of our own for Postgres's advisory lock around the tables' creation. */
const migrationLock = 0x6261_7463 // "batc"

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql.onDialectOrElse({
    // runners starting together would race to create the same tables (Postgres fails one of
    // two concurrent CREATE TABLE IF NOT EXISTS): one at a time, under a lock held to commit
    // and the cluster's own migrations, in other processes, take locks of their own: a deadlock
    // with them ends one side, which tries again
    pg: () =>
      sql
        .withTransaction(
          Effect.zipRight(
            sql`SELECT pg_advisory_xact_lock(${migrationLock})`,
            Effect.zipRight(
              Effect.forEach(migrations("BYTEA"), (statement) => sql.unsafe(statement), { discard: true }),
              // only for a store made before results named their batch: an ALTER on every start
              // would wait for an exclusive lock on a table the other runners are using
              Effect.flatMap(
                sql`SELECT 1 FROM information_schema.columns WHERE table_name = 'batchkit_results' AND column_name = 'batch_id'`,
                (found) =>
                  found.length > 0
                    ? Effect.void
                    : sql`ALTER TABLE batchkit_results ADD COLUMN IF NOT EXISTS batch_id TEXT`
              )
            )
          )
        )
        .pipe(
          Effect.retry(
            Schedule.spaced("300 millis").pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(10)))
          )
        ),
    orElse: () =>
      Effect.gen(function* () {
        yield* Effect.forEach(migrations("BLOB"), (statement) => sql.unsafe(statement), { discard: true })
        // a store made before results named their batch
        const columns = yield* sql<{ readonly name: string }>`PRAGMA table_info(batchkit_results)`
        if (!columns.some((c) => c.name === "batch_id"))
          yield* sql`ALTER TABLE batchkit_results ADD COLUMN batch_id TEXT`
      })
  })

  const job = (id: string) =>
    Effect.map(sql<JobRow>`SELECT * FROM batchkit_jobs WHERE id = ${id}`, (rows) =>
      Option.fromNullable(rows[0])
    )

  const insertRequests = (jobId: string, requests: ReadonlyArray<Planner.PlannedRequest>) =>
    Effect.forEach(
      chunks(requests),
      (rows) =>
        Effect.zipRight(
          sql`INSERT INTO batchkit_lines ${sql.insert(rows.map((r) => ({ job_id: jobId, idx: r.idx, line: r.line })))}`,
          sql`INSERT INTO batchkit_requests ${sql.insert(
            rows.map((r) => ({
              job_id: jobId,
              idx: r.idx,
              custom_id: r.customId,
              url: r.url,
              model: r.model,
              bytes: r.bytes,
              tokens: r.tokens,
              embedding_inputs: r.embeddingInputs,
              shard: r.shard
            }))
          )}`
        ),
      { discard: true }
    )

  const insertShards = (jobId: string, round: number, shards: ReadonlyArray<Planner.Shard>) =>
    Effect.forEach(
      chunks(shards),
      (rows) =>
        sql`INSERT INTO batchkit_shards ${sql.insert(
          rows.map((s) => ({
            job_id: jobId,
            shard: s.shard,
            round,
            url: s.url,
            model: s.model,
            requests: s.requests,
            bytes: s.bytes,
            tokens: s.tokens,
            state: "queued",
            attempt: 1,
            not_before: 0,
            requeues: 0
          }))
        )}`,
      { discard: true }
    )

  return {
    sql,
    transaction: sql.withTransaction,
    job,
    jobs: sql<JobRow>`SELECT * FROM batchkit_jobs ORDER BY created_at DESC`,
    /** The newest unfinished job with these inputs and options. */
    /** The newest job with these inputs and options that was not cancelled (running or finished). */
    findSame: (fingerprint: string) =>
      Effect.map(
        sql<JobRow>`SELECT * FROM batchkit_jobs WHERE fingerprint = ${fingerprint} AND cancel_requested_at IS NULL ORDER BY created_at DESC`,
        (rows) => Option.fromNullable(rows[0])
      ),
    insertJob: (
      row: Omit<
        JobRow,
        | "started_at"
        | "cancel_requested_at"
        | "finished_at"
        | "round"
        | "summary"
        | "last_error"
        | "last_error_at"
      >
    ) => sql`INSERT INTO batchkit_jobs ${sql.insert({ ...row, round: 0 })}`,
    insertRequests,
    insertShards,
    setOutput: (id: string, output: string) =>
      sql`UPDATE batchkit_jobs SET output = ${output} WHERE id = ${id}`,
    markStarted: (id: string, at: number) =>
      sql`UPDATE batchkit_jobs SET started_at = ${at} WHERE id = ${id} AND started_at IS NULL`,
    setError: (id: string, error: string | null, at: number | null) =>
      sql`UPDATE batchkit_jobs SET last_error = ${error}, last_error_at = ${at} WHERE id = ${id}`,
    setRound: (id: string, round: number) => sql`UPDATE batchkit_jobs SET round = ${round} WHERE id = ${id}`,
    requestCancel: (id: string, at: number) =>
      sql`UPDATE batchkit_jobs SET cancel_requested_at = ${at} WHERE id = ${id} AND cancel_requested_at IS NULL AND finished_at IS NULL`,
    finish: (id: string, at: number, summary: string) =>
      sql`UPDATE batchkit_jobs SET finished_at = ${at}, summary = ${summary} WHERE id = ${id} AND finished_at IS NULL`,

    shards: (jobId: string, round?: number) =>
      round === undefined
        ? sql<ShardRow>`SELECT * FROM batchkit_shards WHERE job_id = ${jobId} ORDER BY round, shard`
        : sql<ShardRow>`SELECT * FROM batchkit_shards WHERE job_id = ${jobId} AND round = ${round} ORDER BY shard`,
    updateShard: (
      jobId: string,
      shard: string,
      fields: Partial<Pick<ShardRow, "state" | "attempt" | "not_before" | "requeues" | "held_at_refusal">>
    ) => sql`UPDATE batchkit_shards SET ${sql.update(fields)} WHERE job_id = ${jobId} AND shard = ${shard}`,

    batches: (jobId: string) =>
      sql<BatchRow>`SELECT * FROM batchkit_batches WHERE job_id = ${jobId} ORDER BY shard, attempt`,
    batch: (jobId: string, shard: string, attempt: number) =>
      Effect.map(
        sql<BatchRow>`SELECT * FROM batchkit_batches WHERE job_id = ${jobId} AND shard = ${shard} AND attempt = ${attempt}`,
        (rows) => Option.fromNullable(rows[0])
      ),
    /** Records the upload of a shard attempt (and, from then on, that its create may have been sent). */
    recordUpload: (jobId: string, shard: string, attempt: number, fileId: string, at: number) =>
      sql`INSERT INTO batchkit_batches ${sql.insert({
        job_id: jobId,
        shard,
        attempt,
        file_id: fileId,
        create_started_at: at
      })}`,
    recordBatch: (
      jobId: string,
      shard: string,
      attempt: number,
      batchId: string,
      status: string,
      createdAt: number
    ) =>
      sql`UPDATE batchkit_batches SET batch_id = ${batchId}, status = ${status}, created_at = ${createdAt} WHERE job_id = ${jobId} AND shard = ${shard} AND attempt = ${attempt}`,
    updateBatch: (
      jobId: string,
      batchId: string,
      fields: Partial<
        Pick<
          BatchRow,
          "status" | "completed" | "failed" | "total" | "ran" | "collected" | "error_code" | "error_message"
        >
      >
    ) =>
      sql`UPDATE batchkit_batches SET ${sql.update(fields)} WHERE job_id = ${jobId} AND batch_id = ${batchId}`,

    /** `idx` and `custom_id` of one shard's requests, for joining its results. */
    shardIds: (jobId: string, shard: string) =>
      sql<{
        readonly idx: number
        readonly custom_id: string
      }>`SELECT idx, custom_id FROM batchkit_requests WHERE job_id = ${jobId} AND shard = ${shard}`,
    /** Requests (without their lines) with their result, in input order, `after` an idx, `limit` of them. */
    requestPage: (jobId: string, after: number, limit: number) =>
      sql<{
        readonly idx: number
        readonly custom_id: string
        readonly url: string
        readonly model: string
        readonly bytes: number
        readonly tokens: number
        readonly embedding_inputs: number
        readonly outcome: string | null
        readonly retryable: number | null
        readonly attempts: number | null
      }>`SELECT r.idx, r.custom_id, r.url, r.model, r.bytes, r.tokens, r.embedding_inputs, s.outcome, s.retryable, s.attempts
         FROM batchkit_requests r LEFT JOIN batchkit_results s ON s.job_id = r.job_id AND s.idx = r.idx
         WHERE r.job_id = ${jobId} AND r.idx > ${after} ORDER BY r.idx LIMIT ${limit}`,
    assignShard: (jobId: string, shard: string, idxs: ReadonlyArray<number>) =>
      Effect.forEach(
        chunks(idxs, 5000),
        (some) =>
          sql`UPDATE batchkit_requests SET shard = ${shard} WHERE job_id = ${jobId} AND ${sql.in("idx", some)}`,
        { discard: true }
      ),
    /** Earlier results of these requests (their attempts so far, and the batch that counted last). */
    results: (jobId: string, idxs: ReadonlyArray<number>) =>
      Effect.map(
        Effect.forEach(
          chunks(idxs, 5000),
          (some) =>
            sql<{
              readonly idx: number
              readonly attempts: number
              readonly batch_id: string | null
            }>`SELECT idx, attempts, batch_id FROM batchkit_results WHERE job_id = ${jobId} AND ${sql.in("idx", some)}`
        ),
        (pages) => pages.flat()
      ),
    upsertResults: (jobId: string, rows: ReadonlyArray<ResultRow>) =>
      Effect.forEach(
        chunks(rows),
        (some) =>
          sql.onDialectOrElse({
            orElse: () =>
              sql`INSERT INTO batchkit_results ${sql.insert(some.map((r) => ({ job_id: jobId, ...r })))}
                  ON CONFLICT (job_id, idx) DO UPDATE SET outcome = excluded.outcome, retryable = excluded.retryable,
                  attempts = excluded.attempts, record = excluded.record, input_tokens = excluded.input_tokens,
                  cached_tokens = excluded.cached_tokens, output_tokens = excluded.output_tokens,
                  reasoning_tokens = excluded.reasoning_tokens, batch_id = excluded.batch_id`
          }),
        { discard: true }
      ),
    addUsage: (
      jobId: string,
      model: string,
      t: {
        readonly input: number
        readonly cached: number
        readonly output: number
        readonly reasoning: number
      }
    ) =>
      sql`INSERT INTO batchkit_usage ${sql.insert({
        job_id: jobId,
        model,
        input_tokens: t.input,
        cached_tokens: t.cached,
        output_tokens: t.output,
        reasoning_tokens: t.reasoning
      })} ON CONFLICT (job_id, model) DO UPDATE SET input_tokens = batchkit_usage.input_tokens + excluded.input_tokens,
        cached_tokens = batchkit_usage.cached_tokens + excluded.cached_tokens,
        output_tokens = batchkit_usage.output_tokens + excluded.output_tokens,
        reasoning_tokens = batchkit_usage.reasoning_tokens + excluded.reasoning_tokens`,
    usage: (jobId: string) =>
      sql<{
        readonly model: string
        readonly input_tokens: number
        readonly cached_tokens: number
        readonly output_tokens: number
        readonly reasoning_tokens: number
      }>`SELECT model, input_tokens, cached_tokens, output_tokens, reasoning_tokens FROM batchkit_usage WHERE job_id = ${jobId}`,
    /** The lines of a shard's requests, in input order, after an idx. */
    shardLines: (jobId: string, shard: string, after: number, limit: number) =>
      sql<{
        readonly idx: number
        readonly line: string
      }>`SELECT l.idx, l.line FROM batchkit_requests r JOIN batchkit_lines l ON l.job_id = r.job_id AND l.idx = r.idx
         WHERE r.job_id = ${jobId} AND r.shard = ${shard} AND r.idx > ${after} ORDER BY r.idx LIMIT ${limit}`,
    /** How many requests have a result, and how many of those are worth another round. */
    resultCounts: (jobId: string) =>
      Effect.map(
        sql<{
          readonly n: number
          readonly retryable: number | null
        }>`SELECT COUNT(*) AS n, SUM(retryable) AS retryable FROM batchkit_results WHERE job_id = ${jobId}`,
        (rows) => ({ results: Number(rows[0]?.n ?? 0), retryable: Number(rows[0]?.retryable ?? 0) })
      ),
    outcomeCounts: (jobId: string) =>
      sql<{
        readonly outcome: string
        readonly n: number
      }>`SELECT outcome, COUNT(*) AS n FROM batchkit_results WHERE job_id = ${jobId} GROUP BY outcome`,
    /**
     * The results file's lines for the requests `from` ≤ idx < `to`, in input order, as one run of
     * bytes, and how many lines it holds. On SQLite one row for thousands of lines: the merge
     * reads 3–4× faster than a row per line (each row costs the driver an object and a buffer);
     * SQLite keeps the order of an ordered subquery feeding an aggregate (its flattener leaves
     * it alone). On Postgres a row per line, joined here: its driver reads a large `bytea` as hex
     * text, which made one aggregate twice as slow as the rows.
     */
    resultRange: (jobId: string, from: number, to: number) =>
      sql.onDialectOrElse({
        pg: () =>
          Effect.map(
            sql<{
              readonly record: Uint8Array
            }>`SELECT record FROM batchkit_results WHERE job_id = ${jobId} AND idx >= ${from} AND idx < ${to} ORDER BY idx`,
            (rows) => {
              let size = 0
              for (const r of rows) size += r.record.byteLength
              const bytes = new Uint8Array(size)
              let at = 0
              for (const r of rows) {
                bytes.set(r.record, at)
                at += r.record.byteLength
              }
              return { lines: rows.length, bytes }
            }
          ),
        orElse: () =>
          Effect.map(
            sql<{
              readonly n: number
              readonly bytes: Uint8Array | null
            }>`SELECT COUNT(*) AS n, CAST(group_concat(record, '') AS BLOB) AS bytes FROM (
                SELECT record FROM batchkit_results WHERE job_id = ${jobId} AND idx >= ${from} AND idx < ${to}
                ORDER BY idx)`,
            (rows) => ({ lines: Number(rows[0]?.n ?? 0), bytes: rows[0]?.bytes ?? new Uint8Array(0) })
          )
      }),
    /** The requests `from` ≤ idx < `to` that have a result (to name the first one missing). */
    resultIdxs: (jobId: string, from: number, to: number) =>
      Effect.map(
        sql<{
          readonly idx: number
        }>`SELECT idx FROM batchkit_results WHERE job_id = ${jobId} AND idx >= ${from} AND idx < ${to} ORDER BY idx`,
        (rows) => rows.map((r) => Number(r.idx))
      )
  }
})

export interface JobStore extends Effect.Effect.Success<typeof make> {}

export class Store extends Context.Tag("@batchkit/jobs/Store")<Store, JobStore>() {}

export const layer: Layer.Layer<Store, SqlError.SqlError, SqlClient.SqlClient> = Layer.effect(Store, make)
