/**
 * Jobs on Node with SQLite: the store in one file (`.batchkit/state.db` by default), the workflow
 * engine on a single runner over the same file. Import it from `@batchkit/node/NodeJobs`; it
 * needs `@batchkit/jobs` and `@effect/sql-sqlite-node` (better-sqlite3), which a user of the rest
 * of `@batchkit/node` never loads.
 *
 * @since 0.2.0
 * @example
 * ```ts
 * import { Jobs } from "@batchkit/jobs"
 * import { NodeFileSource } from "@batchkit/node"
 * import * as NodeJobs from "@batchkit/node/NodeJobs"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const jobs = yield* Jobs.Jobs
 *   const { id } = yield* jobs.submit([{ name: "in.jsonl", bytes: NodeFileSource.stream("in.jsonl") }])
 *   yield* jobs.start(id)
 *   return yield* jobs.await(id)
 * })
 * Effect.runPromise(program.pipe(Effect.provide(NodeJobs.layerConfig({ state: ".batchkit/state.db" }))))
 * ```
 */
import type { BatchConfig, BatchService, FileService } from "@batchkit/core"
import { Jobs } from "@batchkit/jobs"
import * as ClusterWorkflowEngine from "@effect/cluster/ClusterWorkflowEngine"
import * as SingleRunner from "@effect/cluster/SingleRunner"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import type * as WorkflowEngine from "@effect/workflow/WorkflowEngine"
import type { ConfigError } from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { randomUUID } from "node:crypto"
import { mkdirSync } from "node:fs"
import { hostname } from "node:os"
import { dirname, resolve } from "node:path"
import * as NodeBatch from "./NodeBatch.js"

/**
 * The default store: `.batchkit/state.db` in the current folder.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultState = ".batchkit/state.db"

/**
 * The SQLite store at `path` (its folder made when missing).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerSqlite = (path: string = defaultState): Layer.Layer<SqlClient.SqlClient> =>
  Layer.unwrapEffect(
    Effect.sync(() => {
      mkdirSync(dirname(resolve(path)), { recursive: true })
      // the configuration is given here, whole: it cannot be missing
      return Layer.orDie(SqliteClient.layer({ filename: path })).pipe(
        // in WAL mode (the client's), NORMAL keeps every commit through a crash of the process;
        // only a power loss can take the last ones
        Layer.tap((context) =>
          Effect.orDie(Context.get(context, SqlClient.SqlClient).unsafe("PRAGMA synchronous = NORMAL"))
        )
      )
    })
  )

/**
 * The workflow engine on one runner over the store's SQL: the messages and replies of every
 * workflow live in the same file as the jobs.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerEngine: Layer.Layer<WorkflowEngine.WorkflowEngine, never, SqlClient.SqlClient> =
  ClusterWorkflowEngine.layer.pipe(
    Layer.provide(
      SingleRunner.layer({
        runnerStorage: "memory",
        shardingConfig: {
          // a stopping process (Ctrl-C) does not wait on steps: the next one replays them
          entityTerminationTimeout: "1 second"
        }
      })
    )
  ) as never

/**
 * Another process runs the jobs of this store: two engines on one SQLite file would both run the
 * same steps.
 *
 * @since 0.2.0
 * @category errors
 */
export class EngineBusy extends Data.TaggedError("EngineBusy")<{
  readonly pid: number
  readonly host: string
  readonly path: string
}> {
  override get message() {
    return `another batchkit process (pid ${this.pid} on ${this.host}) is running the jobs of ${this.path}; wait for it to end, or stop it`
  }
}

const leaseMillis = 15_000

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * One engine per SQLite store: a lease row, renewed every 5 s by the process that holds it. A
 * process that died on this machine (`kill -9`) loses it at once; one elsewhere, after 15 s.
 *
 * The engine's single runner keeps its shard assignments in memory, and with SQL runner storage
 * on SQLite a second process still ran a step the first was running (seen with two processes on
 * one file, 2026-12-02): this lease keeps a second engine off the store instead.
 */
const lease = (path: string): Layer.Layer<never, EngineBusy | SqlError.SqlError, SqlClient.SqlClient> =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const me = randomUUID()
      const host = hostname()
      yield* sql`CREATE TABLE IF NOT EXISTS batchkit_engine (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL, heartbeat_at DOUBLE PRECISION NOT NULL)`
      const holder = () =>
        Effect.map(
          sql<{
            readonly owner: string
            readonly pid: number
            readonly host: string
            readonly heartbeat_at: number
          }>`SELECT owner, pid, host, heartbeat_at FROM batchkit_engine WHERE id = 1`,
          (rows) => rows[0]
        )
      const now = Date.now()
      const current = yield* holder()
      const dead = current !== undefined && current.host === host && !alive(Number(current.pid))
      yield* sql`INSERT INTO batchkit_engine (id, owner, pid, host, heartbeat_at) VALUES (1, ${me}, ${process.pid}, ${host}, ${now})
        ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, pid = excluded.pid, host = excluded.host, heartbeat_at = excluded.heartbeat_at
        WHERE batchkit_engine.heartbeat_at < ${now - leaseMillis} OR batchkit_engine.owner = ${me}
          OR (${dead ? 1 : 0} = 1 AND batchkit_engine.owner = ${current?.owner ?? ""})`
      const after = yield* holder()
      if (after?.owner !== me)
        return yield* Effect.fail(
          new EngineBusy({ pid: Number(after?.pid ?? 0), host: after?.host ?? "?", path })
        )
      yield* Effect.forkScoped(
        sql`UPDATE batchkit_engine SET heartbeat_at = ${Date.now()} WHERE id = 1 AND owner = ${me}`.pipe(
          Effect.ignore,
          Effect.repeat(Schedule.spaced("5 seconds"))
        )
      )
      yield* Effect.addFinalizer(() =>
        Effect.ignore(sql`DELETE FROM batchkit_engine WHERE id = 1 AND owner = ${me}`)
      )
    })
  )

/**
 * `Jobs` over the SQLite store alone: plan, record, watch, cancel and read jobs; run none (for
 * `jobs status`, `jobs results` and the like).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerStore = (path: string = defaultState): Layer.Layer<Jobs.Jobs, SqlError.SqlError> =>
  Jobs.layer.pipe(Layer.provide(layerSqlite(path)))

/**
 * `Jobs` with the engine that runs them, over the SQLite store at `path` and the batch services
 * in the context (the API key is the running process's, never the store's). Starting it resumes
 * the unfinished jobs of the store whose workflows were running.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerWithServices = (
  path: string = defaultState
): Layer.Layer<
  Jobs.Jobs | WorkflowEngine.WorkflowEngine,
  SqlError.SqlError | EngineBusy,
  BatchService.BatchService | FileService.FileService
> => {
  const sql = layerSqlite(path)
  // the lease first: the engine resumes workflows as soon as it starts
  const engine = Layer.provideMerge(layerEngine, lease(path))
  return Layer.mergeAll(Jobs.layer, Jobs.layerWorkflow).pipe(Layer.provideMerge(engine), Layer.provide(sql))
}

/**
 * `Jobs` with its engine and the batch services, configured explicitly.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (
  options: BatchConfig.Options & { readonly state?: string | undefined }
): Layer.Layer<
  Jobs.Jobs | WorkflowEngine.WorkflowEngine | BatchService.BatchService | FileService.FileService,
  SqlError.SqlError | EngineBusy
> => layerWithServices(options.state).pipe(Layer.provideMerge(NodeBatch.layer(options)))

/**
 * `Jobs` with its engine and the batch services, configured from the environment
 * (`OPENAI_API_KEY` and the rest, as `NodeBatch.layerConfig`).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = (
  options?: Partial<BatchConfig.Options> & { readonly state?: string | undefined }
): Layer.Layer<
  Jobs.Jobs | WorkflowEngine.WorkflowEngine | BatchService.BatchService | FileService.FileService,
  SqlError.SqlError | ConfigError | EngineBusy
> => layerWithServices(options?.state).pipe(Layer.provideMerge(NodeBatch.layerConfig(options)))
