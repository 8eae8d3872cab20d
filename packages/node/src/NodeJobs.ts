/**
 * Jobs on Node: the store and the workflow engine that runs them.
 *
 * - SQLite (the default, `.batchkit/state.db`): one file, one machine; the engine on a single
 *   runner in the process that runs or resumes a job.
 * - Postgres (`postgres://USER@HOST:PORT/DB`): one store for many processes on many machines;
 *   each process that runs jobs is a runner of `@effect/cluster` (sockets between runners,
 *   shards and messages in Postgres), and the runners share every job's work; a runner that
 *   dies has its share taken over by the others.
 *
 * Import it from `@batchkit/node/NodeJobs`; it needs `@batchkit/jobs` and the driver of the
 * store it uses (`@effect/sql-sqlite-node` for SQLite, `@effect/sql-pg` for Postgres), which a
 * user of the rest of `@batchkit/node` never loads.
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
import * as RunnerAddress from "@effect/cluster/RunnerAddress"
import * as RunnerHealth from "@effect/cluster/RunnerHealth"
import * as Runners from "@effect/cluster/Runners"
import type * as Sharding from "@effect/cluster/Sharding"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as SingleRunner from "@effect/cluster/SingleRunner"
import * as SocketRunner from "@effect/cluster/SocketRunner"
import * as SqlMessageStorage from "@effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "@effect/cluster/SqlRunnerStorage"
import { layerClientProtocol, layerSocketServer } from "@effect/platform-node/NodeClusterSocket"
import type * as SocketServer from "@effect/platform/SocketServer"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import type * as WorkflowEngine from "@effect/workflow/WorkflowEngine"
import * as Config from "effect/Config"
import type { ConfigError } from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import { mkdirSync, readFileSync } from "node:fs"
import { createServer } from "node:net"
import { hostname } from "node:os"
import { dirname, resolve } from "node:path"
import * as NodeBatch from "./NodeBatch.js"

// ---- where the store is ----------------------------------------------------------------------

/**
 * The default store: `.batchkit/state.db` in the current folder.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultState = ".batchkit/state.db"

/**
 * A store: a SQLite file, or a Postgres database. A Postgres password is `Redacted` from the
 * moment it is read, and `display` (what messages show) never carries it.
 *
 * @since 0.3.0
 * @category models
 */
export type State =
  | { readonly _tag: "Sqlite"; readonly path: string; readonly display: string }
  | {
      readonly _tag: "Postgres"
      readonly host: string
      readonly port: number
      readonly database: string
      readonly user: string | undefined
      readonly password: Option.Option<Redacted.Redacted>
      readonly ssl: boolean | { readonly rejectUnauthorized: boolean }
      /** `postgres://USER@HOST:PORT/DB`: no password, ever. */
      readonly display: string
    }

/**
 * `--state` is not a store this can use; the message names what is wrong, never a password.
 *
 * @since 0.3.0
 * @category errors
 */
export class StateError extends Data.TaggedError("StateError")<{ readonly message: string }> {}

/**
 * Whether `text` names a Postgres store (`postgres://…` or `postgresql://…`).
 *
 * @since 0.3.0
 */
export const isPostgres = (text: string) => /^postgres(?:ql)?:\/\//i.test(text)

/**
 * Reads a store's description: a SQLite path, or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`
 * with an optional `?sslmode=disable|require|verify-full`. The password is taken from the URL,
 * else from `options.password` (a file's, `PGPASSWORD`'s): it leaves this function `Redacted`.
 *
 * @since 0.3.0
 * @category constructors
 */
export const parseState = (
  text: string,
  options: { readonly password?: Redacted.Redacted | undefined } = {}
): Either.Either<State, StateError> => {
  if (!isPostgres(text)) {
    if (text.trim() === "")
      return Either.left(new StateError({ message: "--state: empty; give a file path or postgres://…" }))
    return Either.right({ _tag: "Sqlite", path: text, display: text })
  }
  let url: URL
  try {
    url = new URL(text)
  } catch {
    // the text may hold a password: it is not repeated
    return Either.left(
      new StateError({ message: "--state: not a Postgres URL; the form is postgres://USER@HOST:PORT/DB" })
    )
  }
  const user = url.username === "" ? undefined : decodeURIComponent(url.username)
  const fromUrl = url.password === "" ? undefined : Redacted.make(decodeURIComponent(url.password))
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""))
  if (url.hostname === "")
    return Either.left(
      new StateError({ message: "--state: the Postgres URL has no host (postgres://USER@HOST:PORT/DB)" })
    )
  if (database === "" || database.includes("/"))
    return Either.left(
      new StateError({
        message: "--state: the Postgres URL names no database (postgres://USER@HOST:PORT/DB)"
      })
    )
  const port = url.port === "" ? 5432 : Number(url.port)
  const sslmode = url.searchParams.get("sslmode") ?? "disable"
  const ssl =
    sslmode === "disable" || sslmode === "allow" || sslmode === "prefer"
      ? false
      : sslmode === "require"
        ? { rejectUnauthorized: false }
        : sslmode === "verify-ca" || sslmode === "verify-full"
          ? true
          : undefined
  if (ssl === undefined)
    return Either.left(
      new StateError({
        message: `--state: sslmode=${sslmode} is not one of disable, require, verify-ca, verify-full`
      })
    )
  for (const key of url.searchParams.keys())
    if (key !== "sslmode")
      return Either.left(
        new StateError({
          message: `--state: the Postgres URL's parameter '${key}' is not supported (only sslmode)`
        })
      )
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1")
  return Either.right({
    _tag: "Postgres",
    host,
    port,
    database,
    user,
    password: Option.fromNullable(fromUrl ?? options.password),
    ssl,
    display: `postgres://${user !== undefined ? `${encodeURIComponent(user)}@` : ""}${url.host}/${encodeURIComponent(database)}${sslmode !== "disable" ? `?sslmode=${sslmode}` : ""}`
  })
}

/**
 * A password for a Postgres store, from where a user keeps one: the first line of `file` when
 * given, else `PGPASSWORD`. `Redacted` as it is read.
 *
 * @since 0.3.0
 * @category constructors
 */
export const readPassword = (
  file?: string | undefined
): Effect.Effect<Option.Option<Redacted.Redacted>, StateError> =>
  file !== undefined
    ? Effect.try({
        try: () => Option.some(Redacted.make(readFileSync(file, "utf8").split(/\r?\n/)[0] ?? "")),
        catch: () => new StateError({ message: `--state-password-file: cannot read ${file}` })
      })
    : Effect.orDie(Config.option(Config.redacted("PGPASSWORD")))

// ---- the store's SQL ---------------------------------------------------------------------------

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
 * The Postgres store. Its connection is tried at once: a store that cannot be reached (or
 * refuses the password) fails here, with the server's reason and the store's `display`.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerPostgres = (
  state: Extract<State, { readonly _tag: "Postgres" }>,
  options: { readonly maxConnections?: number | undefined } = {}
): Layer.Layer<SqlClient.SqlClient, StateError> =>
  PgClient.layer({
    host: state.host,
    port: state.port,
    database: state.database,
    ...(state.user !== undefined ? { username: state.user } : {}),
    ...(Option.isSome(state.password) ? { password: state.password.value } : {}),
    ssl: state.ssl as boolean,
    applicationName: "batchkit",
    maxConnections: options.maxConnections ?? 10,
    connectTimeout: "10 seconds"
  }).pipe(
    Layer.mapError((e) => {
      const cause = (e as { readonly cause?: unknown }).cause
      const reason = cause instanceof Error ? cause.message : e.message
      return new StateError({
        message: `cannot use the Postgres store ${state.display}: ${redact(reason, state)}`
      })
    })
  )

/** Defence in depth: a message never carries the password, whatever a driver put in it. */
const redact = (text: string, state: Extract<State, { readonly _tag: "Postgres" }>) =>
  Option.isSome(state.password) && Redacted.value(state.password.value) !== ""
    ? text.split(Redacted.value(state.password.value)).join("***")
    : text

/**
 * The store's SQL client, SQLite or Postgres.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerSql = (state: State): Layer.Layer<SqlClient.SqlClient, StateError> =>
  state._tag === "Sqlite" ? layerSqlite(state.path) : layerPostgres(state)

/** The store given as text (a password from `PGPASSWORD` when its URL has none), or as itself. */
const stateOf = (state: string | State | undefined): Effect.Effect<State, StateError> =>
  typeof state === "object"
    ? Effect.succeed(state)
    : Effect.flatMap(
        isPostgres(state ?? "") ? readPassword() : Effect.succeed(Option.none<Redacted.Redacted>()),
        (password) =>
          parseState(state ?? defaultState, Option.isSome(password) ? { password: password.value } : {})
      )

// ---- the engine on one machine -----------------------------------------------------------------

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

// ---- runners on Postgres -----------------------------------------------------------------------

/**
 * How a runner takes part in a cluster.
 *
 * @since 0.3.0
 * @category models
 */
export interface RunnerOptions {
  /** Where it listens for its peers. Default: a free port on 127.0.0.1. */
  readonly listen?: { readonly host: string; readonly port: number } | undefined
  /** The address its peers reach it at. Default: `listen`. */
  readonly advertise?: { readonly host: string; readonly port: number } | undefined
  /**
   * How long a runner that stopped answering keeps its shards before the others take them
   * over (the shard locks' expiry). Default 35 seconds: a killed runner's work moves within
   * about 40 s.
   */
  readonly takeover?: Duration.DurationInput | undefined
  /** How long a stopping runner waits for the steps it runs before handing them over. Default 15 s. */
  readonly drain?: Duration.DurationInput | undefined
  /** Uploads and result downloads this runner runs at once, over every job. Default 4. */
  readonly concurrency?: number | undefined
}

/**
 * The default time a killed runner's shards wait before the others take them over.
 *
 * @since 0.3.0
 * @category constants
 */
export const defaultTakeover = Duration.seconds(35)

/**
 * A free TCP port on `host`, from the system.
 *
 * @since 0.3.0
 */
export const freePort = (host = "127.0.0.1"): Effect.Effect<number> =>
  Effect.async<number>((resume) => {
    const server = createServer()
    server.unref()
    server.listen(0, host, () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resume(Effect.succeed(port)))
    })
  })

const shardingConfig = (
  options: RunnerOptions,
  listen: Option.Option<RunnerAddress.RunnerAddress>,
  advertise: Option.Option<RunnerAddress.RunnerAddress>
): ShardingConfig.ShardingConfig["Type"] => {
  const takeover = Duration.decode(options.takeover ?? defaultTakeover)
  return {
    ...ShardingConfig.defaults,
    runnerAddress: advertise,
    runnerListenAddress: listen,
    shardLockExpiration: takeover,
    // a third of the expiry at most, as the engine advises, so a live runner never loses a lock
    shardLockRefreshInterval: Duration.min(
      Duration.seconds(10),
      Duration.divide(takeover, 3).pipe(Option.getOrThrow)
    ),
    entityTerminationTimeout: Duration.decode(options.drain ?? "15 seconds")
  }
}

/**
 * A storage whose start fails (the database busy or restarting) tries again; runners starting
 * together no longer race for the tables ({@link migratingAlone}).
 */
const migrationRace = Schedule.spaced("300 millis").pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(10))
)

/** A key of our own for Postgres's advisory lock around the cluster's migrations. */
const clusterMigrationLock = 0x6261_7464

/**
 * Builds `layer` (the cluster's storages, which migrate their tables as they start) while this
 * process holds a Postgres advisory lock, so that runners starting together on a new database
 * migrate one after the other. The cluster's migrator creates its bookkeeping table with a bare
 * `CREATE TABLE` after finding it missing, and dies (a defect, past any retry) when another
 * process created it in between: seen as a runner exiting with "SqlError: Failed to execute
 * statement" when four started at once. The lock is taken on a connection of its own and
 * released (unlocked, then the connection given back) once the layer is built; a process that
 * dies holding it loses it with its connection.
 */
const migratingAlone = <A, E, R>(
  layer: Layer.Layer<A, E, R>
): Layer.Layer<A, E | SqlError.SqlError, R | SqlClient.SqlClient> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const locked = yield* Scope.make()
      const lock = Effect.gen(function* () {
        const conn = yield* Scope.extend(sql.reserve, locked)
        yield* conn.executeRaw("SELECT pg_advisory_lock($1)", [clusterMigrationLock])
        yield* Scope.addFinalizer(
          locked,
          Effect.ignore(conn.executeRaw("SELECT pg_advisory_unlock($1)", [clusterMigrationLock]))
        )
      })
      return yield* Effect.acquireUseRelease(
        lock,
        () => Layer.build(layer),
        () => Scope.close(locked, Exit.void)
      ).pipe(Effect.onError(() => Scope.close(locked, Exit.void)))
    })
  )

/**
 * The cluster over the store's SQL and sockets between runners: `NodeClusterSocket.layer({
 * storage: "sql" })`, with the configuration given here whole (never read from `HOST`, `PORT`
 * and the like in the environment).
 */
const socketCluster = (
  config: ShardingConfig.ShardingConfig["Type"],
  clientOnly: boolean
): Layer.Layer<Sharding.Sharding | Runners.Runners, SocketServer.SocketServerError, SqlClient.SqlClient> => {
  const storage = migratingAlone(
    Layer.merge(
      Layer.retry(SqlMessageStorage.layer, migrationRace),
      Layer.retry(SqlRunnerStorage.layer, migrationRace)
    )
  ).pipe(Layer.orDie)
  const shared = <A, E, R>(runner: Layer.Layer<A, E, R>) =>
    runner.pipe(
      Layer.provideMerge(storage),
      Layer.provide(ShardingConfig.layer(config)),
      Layer.provide(RpcSerialization.layerMsgPack)
    )
  if (clientOnly) return shared(Layer.provide(SocketRunner.layerClientOnly, layerClientProtocol))
  const health = RunnerHealth.layerPing.pipe(
    Layer.provide(Runners.layerRpc),
    Layer.provide(layerClientProtocol)
  )
  return shared(
    Layer.provide(SocketRunner.layer, [layerSocketServer, layerClientProtocol]).pipe(Layer.provide(health))
  )
}

/**
 * The workflow engine as a runner of a cluster on the Postgres store: it runs its share of every
 * job's workflows, and takes over the share of a runner that stops.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerRunnerEngine = (
  options: RunnerOptions = {}
): Layer.Layer<WorkflowEngine.WorkflowEngine, SocketServer.SocketServerError, SqlClient.SqlClient> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const listen = options.listen ?? { host: "127.0.0.1", port: yield* freePort("127.0.0.1") }
      const advertise = options.advertise ?? listen
      const config = shardingConfig(
        options,
        Option.some(RunnerAddress.make(listen.host, listen.port)),
        Option.some(RunnerAddress.make(advertise.host, advertise.port))
      )
      return ClusterWorkflowEngine.layer.pipe(Layer.provide(socketCluster(config, false)))
    })
  ) as never

/**
 * The workflow engine as a client of the cluster: it starts jobs (the runners run them) and
 * runs nothing itself. What `run --detach` on Postgres uses.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerClientEngine: Layer.Layer<WorkflowEngine.WorkflowEngine, never, SqlClient.SqlClient> =
  ClusterWorkflowEngine.layer.pipe(
    Layer.provide(socketCluster(shardingConfig({}, Option.none(), Option.none()), true))
  ) as never

// ---- Jobs ------------------------------------------------------------------------------------

/**
 * `Jobs` over a store alone: plan, record, watch, cancel and read jobs; run none (for `jobs
 * status`, `jobs results` and the like).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerStore = (
  state: string | State = defaultState
): Layer.Layer<Jobs.Jobs, SqlError.SqlError | StateError> =>
  Layer.unwrapEffect(Effect.map(stateOf(state), (s) => Jobs.layer.pipe(Layer.provide(layerSql(s)))))

/**
 * `Jobs` with an engine that starts jobs on the cluster of a Postgres store and runs none: the
 * runners do. On SQLite there is no one else to run them: it is {@link layerStore} with the
 * single-runner engine, which runs the jobs started while it is up.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerClient = (
  state: string | State = defaultState
): Layer.Layer<Jobs.Jobs | WorkflowEngine.WorkflowEngine, SqlError.SqlError | StateError> =>
  Layer.unwrapEffect(
    Effect.map(stateOf(state), (s) =>
      s._tag === "Sqlite"
        ? Layer.mergeAll(Jobs.layer, layerEngine).pipe(Layer.provide(layerSqlite(s.path)))
        : Layer.mergeAll(Jobs.layer, layerClientEngine).pipe(Layer.provide(layerPostgres(s)))
    )
  ) as never

/**
 * `Jobs` with the engine that runs them, over the store at `state` and the batch services in the
 * context (the API key is the running process's, never the store's). On SQLite, the single
 * engine of that file (a second process is refused: {@link EngineBusy}); on Postgres, a runner
 * among the others (`runner` sets how it joins). Starting it resumes the unfinished jobs
 * whose workflows were running.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerWithServices = (
  state: string | State = defaultState,
  runner: RunnerOptions = {}
): Layer.Layer<
  Jobs.Jobs | WorkflowEngine.WorkflowEngine,
  SqlError.SqlError | EngineBusy | StateError | SocketServer.SocketServerError,
  BatchService.BatchService | FileService.FileService
> =>
  Layer.unwrapEffect(
    Effect.map(
      stateOf(state),
      (
        s
      ): Layer.Layer<
        Jobs.Jobs | WorkflowEngine.WorkflowEngine,
        SqlError.SqlError | EngineBusy | StateError | SocketServer.SocketServerError,
        BatchService.BatchService | FileService.FileService
      > => {
        const workflows = Layer.mergeAll(
          Jobs.layer,
          Jobs.layerWorkflowWith({ concurrency: runner.concurrency })
        )
        if (s._tag === "Sqlite") {
          // the lease first: the engine resumes workflows as soon as it starts
          const engine = Layer.provideMerge(layerEngine, lease(s.path))
          return workflows.pipe(Layer.provideMerge(engine), Layer.provide(layerSqlite(s.path)))
        }
        return workflows.pipe(Layer.provideMerge(layerRunnerEngine(runner)), Layer.provide(layerPostgres(s)))
      }
    )
  ) as never

/**
 * `Jobs` with its engine and the batch services, configured explicitly.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (
  options: BatchConfig.Options & {
    readonly state?: string | State | undefined
    readonly runner?: RunnerOptions | undefined
  }
): Layer.Layer<
  Jobs.Jobs | WorkflowEngine.WorkflowEngine | BatchService.BatchService | FileService.FileService,
  SqlError.SqlError | EngineBusy | StateError | SocketServer.SocketServerError
> => layerWithServices(options.state, options.runner).pipe(Layer.provideMerge(NodeBatch.layer(options)))

/**
 * `Jobs` with its engine and the batch services, configured from the environment
 * (`OPENAI_API_KEY` and the rest, as `NodeBatch.layerConfig`; `PGPASSWORD` for a Postgres
 * store whose URL has no password).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = (
  options?: Partial<BatchConfig.Options> & {
    readonly state?: string | State | undefined
    readonly runner?: RunnerOptions | undefined
  }
): Layer.Layer<
  Jobs.Jobs | WorkflowEngine.WorkflowEngine | BatchService.BatchService | FileService.FileService,
  SqlError.SqlError | ConfigError | EngineBusy | StateError | SocketServer.SocketServerError
> =>
  layerWithServices(options?.state, options?.runner).pipe(Layer.provideMerge(NodeBatch.layerConfig(options)))
