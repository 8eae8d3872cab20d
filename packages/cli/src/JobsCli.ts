/**
 * `batchkit run`, `batchkit jobs …` and `batchkit runner`: inputs of any size as one durable job
 * (shared/jobs.md's CLI contract). The store (`--state`) is a SQLite file (`.batchkit/state.db`
 * by default), where the engine runs in the process that runs or resumes a job; or Postgres,
 * where every process that runs jobs (`runner`, `run`, `jobs resume`) is a runner of one cluster
 * and they share the work. `jobs status`, `watch`, `results` and `cancel` read and write the
 * store only.
 */
import type { Job, Jobs, Planner, Prices } from "@batchkit/jobs"
import type * as NodeJobsModule from "@batchkit/node/NodeJobs"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { readFileSync } from "node:fs"
import { type Common, batchConfig, common, durationOption, inputFile, node, withUrlHint } from "./Common.js"
import { exitCodes, UsageError } from "./Exit.js"
import { checkOutputPath, printLine, table, writeFileAtomically, writeStdout } from "./Output.js"
import * as Progress from "./Progress.js"

const nodeJobs: Effect.Effect<typeof NodeJobsModule> = Effect.promise(() => import("@batchkit/node/NodeJobs"))
const jobsModule = Effect.promise(() => import("@batchkit/jobs"))

const defaultState = ".batchkit/state.db"

const stateOptions = {
  state: Options.text("state").pipe(
    Options.withPseudoName("PATH|postgres://…"),
    Options.withDefault(defaultState),
    Options.withDescription(
      "the job store: a SQLite file, made on first use (default .batchkit/state.db), or postgres://USER@HOST:PORT/DB shared by runners"
    )
  ),
  statePasswordFile: Options.file("state-password-file").pipe(
    Options.withPseudoName("FILE"),
    Options.optional,
    Options.withDescription("the Postgres password: the file's first line (else PGPASSWORD)")
  )
}

type StateOptions = {
  readonly state: string
  readonly statePasswordFile: Option.Option<string>
}

/**
 * The store `--state` names. A Postgres password (the URL's, the file's, PGPASSWORD's) is
 * Redacted as it is read; a problem with the text is bad usage, and never repeats the password.
 */
const resolveState = (o: StateOptions): Effect.Effect<NodeJobsModule.State, UsageError> =>
  Effect.gen(function* () {
    const NodeJobs = yield* nodeJobs
    const usage = (e: { readonly message: string }) => new UsageError({ message: e.message })
    if (!NodeJobs.isPostgres(o.state)) {
      if (Option.isSome(o.statePasswordFile))
        return yield* Effect.fail(
          new UsageError({
            message: "--state-password-file: only a Postgres store (--state postgres://…) has a password"
          })
        )
      return yield* Effect.mapError(NodeJobs.parseState(o.state), usage)
    }
    const password = yield* Effect.mapError(
      NodeJobs.readPassword(Option.getOrUndefined(o.statePasswordFile)),
      usage
    )
    return yield* Either.match(
      NodeJobs.parseState(o.state, Option.isSome(password) ? { password: password.value } : {}),
      { onLeft: (e) => Effect.fail(usage(e)), onRight: Effect.succeed }
    )
  })

const isPostgresText = (text: string) => /^postgres(?:ql)?:\/\//i.test(text)

/** `--state …` as a command that goes on must repeat it: nothing for the default, never a password. */
const stateFlag = (state: NodeJobsModule.State) =>
  state.display === defaultState ? "" : ` --state ${state.display}`

const jobId = Args.text({ name: "JOB" }).pipe(Args.withDescription("the job's id (job_…)"))

/** `190MB`, `1.5GB`, `500KB`, `1024`. */
const parseSize = (text: string): number | undefined => {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/i.exec(text.trim())
  if (m === null) return undefined
  const unit = (m[2] ?? "B").toUpperCase()
  const factor = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 1024, MIB: 1024 ** 2, GIB: 1024 ** 3 }[unit] ?? 1
  return Math.floor(Number(m[1]) * factor)
}

const runOptions = {
  ...common,
  files: Args.text({ name: "FILE.jsonl" }).pipe(
    Args.atLeast(1),
    Args.withDescription("the requests, one JSON object per line; several files make one job")
  ),
  output: Options.file("output").pipe(
    Options.withAlias("o"),
    Options.withPseudoName("FILE"),
    Options.optional,
    Options.withDescription("write the results here (appears only when complete); default: stdout")
  ),
  ...stateOptions,
  maxRequests: Options.integer("max-requests").pipe(
    Options.withPseudoName("N"),
    Options.optional,
    Options.withDescription("requests per batch at most (default 50000)")
  ),
  maxBytes: Options.text("max-bytes").pipe(
    Options.withPseudoName("SIZE"),
    Options.optional,
    Options.withDescription("input bytes per batch at most, e.g. 190MB (default 190MB)")
  ),
  maxEnqueuedTokens: Options.text("max-enqueued-tokens").pipe(
    Options.withPseudoName("N|MODEL=N"),
    Options.repeated,
    Options.withDescription("your enqueued-token limit, for every model or one model; batches wait for room")
  ),
  retries: Options.integer("retries").pipe(
    Options.withPseudoName("N"),
    Options.optional,
    Options.withDescription("retry rounds for expired, cancelled and 408/429/5xx requests (default 2)")
  ),
  concurrency: Options.integer("concurrency").pipe(
    Options.withPseudoName("N"),
    Options.optional,
    Options.withDescription("uploads at once (default 4)")
  ),
  prices: Options.file("prices").pipe(
    Options.withPseudoName("FILE"),
    Options.optional,
    Options.withDescription("a price table (JSON) for the cost, instead of the one shipped")
  ),
  dryRun: Options.boolean("dry-run").pipe(Options.withDescription("plan and print the shards; send nothing")),
  detach: Options.boolean("detach").pipe(
    Options.withDescription(
      "record the job and print its id; on Postgres the runners take it, on SQLite `jobs resume` runs it"
    )
  ),
  new: Options.boolean("new").pipe(
    Options.withDescription("a new job even when an unfinished one has the same inputs and options")
  )
}

type RunOptions = Command.Command.ParseConfig<typeof runOptions>

const jobOptions = (o: RunOptions) =>
  Effect.gen(function* () {
    for (const [name, value] of [
      ["--max-requests", o.maxRequests],
      ["--retries", o.retries],
      ["--concurrency", o.concurrency]
    ] as const) {
      if (
        Option.isSome(value) &&
        (value.value < (name === "--retries" ? 0 : 1) || (name === "--max-requests" && value.value > 50_000))
      )
        return yield* Effect.fail(
          new UsageError({
            message: `${name}: ${value.value} is out of range${name === "--max-requests" ? " (1 to 50000: a batch takes at most 50,000 requests)" : ""}`
          })
        )
    }
    let maxBytes: number | undefined
    if (Option.isSome(o.maxBytes)) {
      maxBytes = parseSize(o.maxBytes.value)
      if (maxBytes === undefined || maxBytes < 1 || maxBytes > 200 * 1024 * 1024)
        return yield* Effect.fail(
          new UsageError({
            message: `--max-bytes: '${o.maxBytes.value}' must be a size up to 200MB, e.g. 190MB`
          })
        )
    }
    let tokens: number | Record<string, number> | undefined
    for (const spec of o.maxEnqueuedTokens) {
      const m = /^(?:([^=]+)=)?(\d+)$/.exec(spec.trim())
      if (m === null || Number(m[2]) < 1)
        return yield* Effect.fail(
          new UsageError({
            message: `--max-enqueued-tokens: '${spec}' is not N or MODEL=N (a positive whole number)`
          })
        )
      if (m[1] === undefined) tokens = Number(m[2])
      else tokens = { ...(typeof tokens === "object" ? tokens : {}), [m[1]]: Number(m[2]) }
    }
    let prices: Prices.Table | undefined
    if (Option.isSome(o.prices)) {
      const { Prices } = yield* jobsModule
      const text = yield* Effect.try({
        try: () => readFileSync(o.prices.pipe(Option.getOrThrow), "utf8"),
        catch: () => new UsageError({ message: `--prices: cannot read ${o.prices.pipe(Option.getOrThrow)}` })
      })
      const table = Prices.fromJson(text)
      if (table._tag === "Left")
        return yield* Effect.fail(new UsageError({ message: `--prices: not a price table: ${table.left}` }))
      prices = table.right
    }
    return {
      provider: o.provider,
      ...(Option.isSome(o.maxRequests) ? { maxRequests: o.maxRequests.value } : {}),
      ...(maxBytes !== undefined ? { maxBytes } : {}),
      ...(tokens !== undefined ? { maxEnqueuedTokens: tokens } : {}),
      ...(Option.isSome(o.retries) ? { retries: o.retries.value } : {}),
      ...(Option.isSome(o.concurrency) ? { concurrency: o.concurrency.value } : {}),
      ...(prices !== undefined ? { prices } : {})
    }
  })

const inputFiles = (files: ReadonlyArray<string>) =>
  Effect.forEach(files, (path) => inputFile(path, "FILE.jsonl"))

const planError = (e: Planner.PlanError) =>
  new UsageError({ message: `the inputs would not make a job, nothing was sent:\n${e.message}` })

const fmt = (n: number) => n.toLocaleString("en-US")
const compact = (n: number) =>
  n >= 1e9
    ? `${(n / 1e9).toFixed(1)}B`
    : n >= 1e6
      ? `${(n / 1e6).toFixed(1)}M`
      : n >= 1e4
        ? `${(n / 1e3).toFixed(0)}k`
        : String(n)

/** What the plan is, in one line (`job job_…: 120000 requests in 3 shards (gpt-4o-mini)`). */
const planLine = (id: string, plan: Planner.Plan) =>
  `job ${id}: ${plan.requests} requests in ${plan.shards.length} shard${plan.shards.length === 1 ? "" : "s"} (${plan.models.filter((m) => m !== "").join(", ") || "no model"})`

/** The summary at the end, on stderr. */
const summaryLines = (s: Job.Snapshot) => {
  const r = s.requests
  const outcomes = (["succeeded", "failed", "expired", "cancelled", "errored"] as const)
    .filter((k) => r[k] > 0)
    .map((k) => `${fmt(r[k])} ${k}`)
    .join(", ")
  const batches = Object.values(s.batches).reduce((n, b) => n + b, 0)
  const cost =
    s.cost.unpriced.length > 0
      ? `$${s.cost.usd.toFixed(4)} (not priced: ${s.cost.unpriced.join(", ")})`
      : `$${s.cost.usd.toFixed(4)}`
  return [
    `job ${s.id} ${s.status}: ${fmt(r.total)} requests: ${outcomes || "none"}`,
    `  ${batches} batch${batches === 1 ? "" : "es"} over ${s.round + 1} round${s.round === 0 ? "" : "s"}; tokens ${fmt(s.tokens.input)} input (${fmt(s.tokens.cached)} cached), ${fmt(s.tokens.output)} output (${fmt(s.tokens.reasoning)} reasoning); cost ${cost} at batch prices of ${s.cost.prices}`
  ].join("\n")
}

const exitFor = (s: Job.Snapshot) =>
  s.status === "finished" && s.requests.succeeded === s.requests.total
    ? exitCodes.ok
    : exitCodes.batchEndedBadly

const setExit = (code: number) =>
  Effect.sync(() => {
    process.exitCode = code
  })

/**
 * Follows a job to its end: a live view on a terminal, plain lines otherwise, NDJSON snapshots
 * with `--json`. A step that keeps failing for a reason retrying cannot fix ends the wait with
 * exit 1; the job stays resumable.
 */
const follow = (jobs: Jobs.Service, id: string, asJson: boolean, resume: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const view = yield* Progress.jobTracker(Progress.isTerminal() && !asJson)
      let lastError: string | null = null
      const last = yield* jobs.watch(id, { interval: "500 millis" }).pipe(
        Stream.tap((s) => (asJson ? printLine(JSON.stringify(s)) : view.update(s))),
        Stream.tap((s) =>
          Effect.gen(function* () {
            if (s.last_error !== null && s.last_error !== lastError && !asJson)
              yield* view.note(`retrying: ${s.last_error}`)
            lastError = s.last_error
            if (s.last_error?.startsWith("fatal: ")) {
              return yield* Effect.fail(
                new UsageError({
                  message: `job ${id} cannot go on: ${s.last_error.slice(7)}. It stays resumable: fix the cause, then ${resume}`
                })
              )
            }
          })
        ),
        Stream.runLast,
        Effect.ensuring(view.done)
      )
      return Option.getOrThrow(last)
    })
  ).pipe(
    Effect.onInterrupt(() =>
      Console.error(`interrupted: job ${id} goes on (its batches run on the API); ${resume} picks it up`)
    )
  )

/** Writes the results to `output` (or stdout) and the summary to stderr; sets the exit code. */
const finishRun = (jobs: Jobs.Service, done: Job.Snapshot, output: Option.Option<string>) =>
  Effect.gen(function* () {
    const bytes = jobs.resultsJsonl(done.id)
    if (Option.isSome(output)) yield* writeFileAtomically(output.value, bytes)
    else yield* Stream.runForEach(bytes, writeStdout)
    yield* Console.error(summaryLines(done))
    if (Option.isSome(output)) yield* Console.error(`results: ${output.value}`)
    yield* setExit(exitFor(done))
  })

/**
 * Runs (or resumes) a job with the engine in this process, to its end and its results. On
 * Postgres this process is a runner among the others while it waits: the job's shards are spread
 * over all of them.
 */
const runToEnd = (
  o: Common,
  state: NodeJobsModule.State,
  id: string,
  output: Option.Option<string>,
  resume: string,
  concurrency: number | undefined
) =>
  Effect.gen(function* () {
    const config = yield* batchConfig(o)
    const { layer } = yield* nodeJobs
    const { Jobs } = yield* jobsModule
    yield* Effect.gen(function* () {
      const jobs = yield* Jobs.Jobs
      yield* jobs.start(id)
      const done = yield* follow(jobs, id, o.json, resume)
      yield* finishRun(jobs, done, output)
    }).pipe(
      Effect.provide(layer({ ...config, state, runner: { concurrency } })),
      Effect.catchTag("SocketServerError", (e) =>
        Effect.fail(
          new UsageError({
            message: `cannot listen for the other runners of ${state.display} (${e.reason}${e.cause instanceof Error ? `: ${e.cause.message}` : ""})`
          })
        )
      ),
      Effect.mapError((e) => withUrlHint(e, config.baseUrl ?? ""))
    )
  })

const run = Command.make("run", runOptions, (o) =>
  Effect.gen(function* () {
    const state = yield* resolveState(o)
    const paths = yield* inputFiles(o.files)
    const output = Option.isSome(o.output)
      ? Option.some(yield* checkOutputPath(o.output.value))
      : Option.none()
    if (o.json && Option.isNone(output) && !o.dryRun && !o.detach)
      return yield* Effect.fail(
        new UsageError({
          message: "--json writes the job's snapshots on stdout: give the results a file with --output"
        })
      )
    const options = yield* jobOptions(o)
    const { NodeFileSource } = yield* node
    const inputs = paths.map((path) => ({
      name: path,
      // read in large pieces: planning goes through every byte, and each piece costs a pull
      bytes: NodeFileSource.stream(path, { chunkSize: 1024 * 1024 }).pipe(
        Stream.mapError((e) => new UsageError({ message: `${path}: cannot read: ${e.message}` }))
      )
    }))
    if (o.dryRun) {
      const planned = yield* Effect.mapError(planDry(inputs, options), (e) =>
        e._tag === "PlanError" ? planError(e) : e
      )
      const rows = [
        ["SHARD", "ENDPOINT", "MODEL", "REQUESTS", "BYTES", "TOKENS (est.)"],
        ...planned.shards.map((s) => [
          s.shard,
          s.url,
          s.model || "-",
          fmt(s.requests),
          fmt(s.bytes),
          fmt(s.tokens)
        ])
      ]
      yield* Console.error(`${planLine("(dry run)", planned)}; nothing was sent`)
      return yield* printLine(o.json ? JSON.stringify(planned) : table(rows))
    }
    const { layerStore } = yield* nodeJobs
    const { Jobs } = yield* jobsModule
    const submitted = yield* Effect.gen(function* () {
      const jobs = yield* Jobs.Jobs
      return yield* jobs.submit(inputs, {
        ...options,
        ...(Option.isSome(output) ? { output: output.value } : {}),
        new: o.new
      })
    }).pipe(
      Effect.provide(layerStore(state)),
      Effect.mapError((e) => (e._tag === "PlanError" ? planError(e) : e))
    )
    if (submitted.finished) {
      // the same work has been done: its results are written again, nothing is sent
      yield* Console.error(
        `job ${submitted.id} with these inputs and options has finished already; writing its results (--new runs it again)`
      )
      return yield* Effect.gen(function* () {
        const jobs = yield* Jobs.Jobs
        yield* finishRun(jobs, yield* jobs.status(submitted.id), output)
      }).pipe(Effect.provide(layerStore(state)))
    }
    yield* Console.error(
      submitted.resumed
        ? `resuming ${planLine(submitted.id, submitted.plan)}`
        : planLine(submitted.id, submitted.plan)
    )
    if (o.detach) {
      if (state._tag === "Postgres") {
        // the runners of the store take it from here
        const { layerClient } = yield* nodeJobs
        yield* Effect.flatMap(Jobs.Jobs, (jobs) => jobs.start(submitted.id)).pipe(
          Effect.provide(layerClient(state))
        )
      }
      yield* printLine(o.json ? JSON.stringify({ job: submitted.id }) : submitted.id)
      return yield* Console.error(
        state._tag === "Postgres"
          ? `sent to the runners of ${state.display}; \`batchkit jobs watch ${submitted.id}${stateFlag(state)}\` follows it, \`batchkit jobs results ${submitted.id}${stateFlag(state)} --output FILE\` writes its results`
          : `recorded; \`batchkit jobs resume ${submitted.id}${stateFlag(state)}\` runs it, \`batchkit jobs watch ${submitted.id}${stateFlag(state)}\` follows it`
      )
    }
    yield* runToEnd(
      o,
      state,
      submitted.id,
      output,
      `\`batchkit jobs resume ${submitted.id}${stateFlag(state)}\` (or the same \`batchkit run\`)`,
      options.concurrency
    )
  })
).pipe(
  Command.withDescription(
    "Run JSONL inputs of any size as one job: as many batches as the limits need, retried, one results file in input order"
  )
)

const planDry = <E, R>(inputs: ReadonlyArray<Planner.Input<E, R>>, options: Job.Options) =>
  Effect.flatMap(jobsModule, ({ Planner, Job }) => Planner.plan(inputs, { options: Job.resolve(options) }))

// ---- jobs ----------------------------------------------------------------------------------

const storeCommand = <A, E, R>(
  state: StateOptions | NodeJobsModule.State,
  f: (jobs: Jobs.Service) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function* () {
    const checked = "_tag" in state ? state : yield* resolveState(state)
    const { layerStore } = yield* nodeJobs
    const { Jobs } = yield* jobsModule
    return yield* Effect.flatMap(Jobs.Jobs, f).pipe(Effect.provide(layerStore(checked)))
  }).pipe(
    Effect.mapError((e) => {
      const tag = (e as { readonly _tag?: string })._tag
      return tag === "JobNotFound" || tag === "JobNotFinished"
        ? new UsageError({ message: (e as unknown as Error).message })
        : e
    })
  )

const describeJob = (s: Job.Snapshot) =>
  table([
    ["id", s.id],
    ["status", s.status],
    ["inputs", s.inputs.join(", ")],
    ["output", s.output ?? "-"],
    ["models", s.models.join(", ") || "-"],
    [
      "requests",
      `${fmt(s.requests.total)}: ${fmt(s.requests.succeeded)} succeeded, ${fmt(s.requests.failed)} failed, ${fmt(s.requests.expired)} expired, ${fmt(s.requests.cancelled)} cancelled, ${fmt(s.requests.errored)} errored, ${fmt(s.requests.pending)} pending`
    ],
    ["shards", `${s.shards} (round ${s.round})`],
    [
      "batches",
      Object.entries(s.batches)
        .map(([k, n]) => `${n} ${k}`)
        .join(", ") || "-"
    ],
    [
      "tokens",
      `${compact(s.tokens.input)} input (${compact(s.tokens.cached)} cached), ${compact(s.tokens.output)} output`
    ],
    [
      "cost",
      `$${s.cost.usd.toFixed(4)}${s.cost.unpriced.length > 0 ? ` (not priced: ${s.cost.unpriced.join(", ")})` : ""}`
    ],
    ["created", new Date(s.created_at).toISOString().replace("T", " ").slice(0, 19)],
    ...(s.last_error !== null ? [["retrying", s.last_error]] : [])
  ])

const jsonOption = Options.boolean("json").pipe(
  Options.withDescription("print the job as JSON (one object per line for lists)")
)

const jobsList = Command.make("list", { ...stateOptions, json: jsonOption }, (o) =>
  storeCommand(o, (jobs) =>
    Effect.flatMap(jobs.list, (all) =>
      o.json
        ? Effect.forEach(all, (s) => printLine(JSON.stringify(s)), { discard: true })
        : printLine(
            table([
              ["JOB", "STATUS", "DONE/TOTAL", "FAILED", "CREATED"],
              ...all.map((s) => [
                s.id,
                s.status,
                `${fmt(s.requests.total - s.requests.pending)}/${fmt(s.requests.total)}`,
                fmt(s.requests.failed + s.requests.errored + s.requests.expired + s.requests.cancelled),
                new Date(s.created_at).toISOString().replace("T", " ").slice(0, 19)
              ])
            ])
          )
    )
  )
).pipe(Command.withDescription("List the jobs of the store, newest first"))

const jobsStatus = Command.make("status", { ...stateOptions, json: jsonOption, job: jobId }, (o) =>
  storeCommand(o, (jobs) =>
    Effect.flatMap(jobs.status(o.job), (s) => printLine(o.json ? JSON.stringify(s) : describeJob(s)))
  )
).pipe(Command.withDescription("Show a job: requests by outcome, batches by status, tokens and cost"))

const jobsWatch = Command.make("watch", { ...stateOptions, json: jsonOption, job: jobId }, (o) =>
  storeCommand(o, (jobs) =>
    Effect.gen(function* () {
      const done = yield* follow(jobs, o.job, o.json, `\`batchkit jobs watch ${o.job}\``)
      if (!o.json) yield* Console.error(summaryLines(done))
      yield* setExit(exitFor(done))
    })
  )
).pipe(Command.withDescription("Follow a job to its end (from any process that reaches the store)"))

const jobsCancel = Command.make("cancel", { ...stateOptions, json: jsonOption, job: jobId }, (o) =>
  storeCommand(o, (jobs) =>
    Effect.gen(function* () {
      const s = yield* jobs.cancel(o.job)
      yield* printLine(o.json ? JSON.stringify(s) : `${s.id} ${s.status}`)
      if (!s.isDone)
        yield* Console.error(
          isPostgresText(o.state)
            ? `job ${o.job} stops: the runner holding it cancels its batches and keeps their partial results`
            : `job ${o.job} stops: the process running it cancels its batches and keeps their partial results; if none runs it, \`batchkit jobs resume ${o.job}${o.state === defaultState ? "" : ` --state ${o.state}`}\` does`
        )
    })
  )
).pipe(Command.withDescription("Cancel a job: its batches are cancelled, their partial results kept"))

const jobsResults = Command.make(
  "results",
  {
    ...stateOptions,
    job: jobId,
    output: Options.file("output").pipe(
      Options.withAlias("o"),
      Options.withPseudoName("FILE"),
      Options.withDescription("where to write the results (appears only when complete)")
    )
  },
  (o) =>
    Effect.gen(function* () {
      const output = yield* checkOutputPath(o.output)
      yield* storeCommand(o, (jobs) =>
        Effect.gen(function* () {
          const s = yield* jobs.status(o.job)
          yield* writeFileAtomically(output, jobs.resultsJsonl(o.job))
          yield* Console.error(`${summaryLines(s)}\nresults: ${output}`)
        })
      )
    })
).pipe(Command.withDescription("Write a finished job's results, one line per request in input order"))

const jobsResume = Command.make(
  "resume",
  {
    ...common,
    ...stateOptions,
    job: jobId,
    output: Options.file("output").pipe(
      Options.withAlias("o"),
      Options.withPseudoName("FILE"),
      Options.optional,
      Options.withDescription("write the results here (default: where `run` was told, else stdout)")
    )
  },
  (o) =>
    Effect.gen(function* () {
      const state = yield* resolveState(o)
      const given = Option.isSome(o.output)
        ? Option.some(yield* checkOutputPath(o.output.value))
        : Option.none()
      const recorded = yield* storeCommand(state, (jobs) =>
        Effect.gen(function* () {
          if (Option.isSome(given)) yield* jobs.setOutput(o.job, given.value)
          return yield* jobs.output(o.job)
        })
      )
      yield* Console.error(`resuming job ${o.job}`)
      yield* runToEnd(
        o,
        state,
        o.job,
        Option.isSome(given) ? given : recorded,
        `\`batchkit jobs resume ${o.job}${stateFlag(state)}\``,
        undefined
      )
    })
).pipe(Command.withDescription("Go on with a job where it stopped (after a crash, Ctrl-C or --detach)"))

export const jobs = Command.make("jobs").pipe(
  Command.withDescription("List, follow, resume, cancel jobs and write their results"),
  Command.withSubcommands([jobsList, jobsStatus, jobsWatch, jobsResume, jobsCancel, jobsResults])
)

// ---- runner --------------------------------------------------------------------------------

const addressOption = (name: string, description: string) =>
  Options.text(name).pipe(
    Options.withPseudoName("HOST:PORT"),
    Options.optional,
    Options.withDescription(description)
  )

/** `HOST:PORT`, `[::1]:PORT`; port 1 to 65535. */
const parseAddress = (flag: string, text: string) => {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim())
  const port = m === null ? Number.NaN : Number(m[3])
  return m !== null && port >= 1 && port <= 65535
    ? Effect.succeed({ host: (m[1] ?? m[2])!, port })
    : Effect.fail(new UsageError({ message: `--${flag}: '${text}' is not HOST:PORT (e.g. 10.0.0.5:34431)` }))
}

const runnerOptions = {
  ...common,
  ...stateOptions,
  concurrency: Options.integer("concurrency").pipe(
    Options.withPseudoName("N"),
    Options.optional,
    Options.withDescription("uploads and result downloads at once on this runner, over every job (default 4)")
  ),
  listen: addressOption(
    "listen",
    "where to listen for the other runners (default: a free port on 127.0.0.1)"
  ),
  advertise: addressOption(
    "advertise",
    "the address the other runners reach this one at (default: --listen)"
  ),
  takeover: durationOption(
    "takeover",
    "how long a runner that stopped answering keeps its work before the others take it over (default 35s)"
  )
}

const runner = Command.make("runner", runnerOptions, (o) =>
  Effect.gen(function* () {
    const state = yield* resolveState(o)
    if (state._tag !== "Postgres")
      return yield* Effect.fail(
        new UsageError({
          message:
            "--state: a runner shares a Postgres store with the others (--state postgres://USER@HOST:PORT/DB); a SQLite store's jobs run in `batchkit run` and `batchkit jobs resume`"
        })
      )
    if (Option.isSome(o.concurrency) && o.concurrency.value < 1)
      return yield* Effect.fail(
        new UsageError({ message: `--concurrency: ${o.concurrency.value} is out of range (1 or more)` })
      )
    const NodeJobs = yield* nodeJobs
    const listen = Option.isSome(o.listen)
      ? yield* parseAddress("listen", o.listen.value)
      : { host: "127.0.0.1", port: yield* NodeJobs.freePort("127.0.0.1") }
    const advertise = Option.isSome(o.advertise)
      ? yield* parseAddress("advertise", o.advertise.value)
      : listen
    if (Option.isNone(o.advertise) && (listen.host === "0.0.0.0" || listen.host === "::"))
      return yield* Effect.fail(
        new UsageError({
          message: `--listen ${listen.host}: give --advertise, the address the other runners reach this one at`
        })
      )
    const config = yield* batchConfig(o)
    const show = (a: { readonly host: string; readonly port: number }) =>
      a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
    yield* Effect.gen(function* () {
      yield* Console.error(
        `runner ${show(advertise)}${show(listen) === show(advertise) ? "" : ` (listening on ${show(listen)})`} on ${state.display}: it runs its share of every job of the store; SIGTERM or Ctrl-C hands its work over and stops it`
      )
      return yield* Effect.never
    }).pipe(
      Effect.onInterrupt(() =>
        Console.error(`runner ${show(advertise)}: handing its work over to the other runners and stopping`)
      ),
      Effect.provide(
        NodeJobs.layer({
          ...config,
          state,
          runner: {
            listen,
            advertise,
            ...(Option.isSome(o.concurrency) ? { concurrency: o.concurrency.value } : {}),
            ...(Option.isSome(o.takeover) ? { takeover: o.takeover.value } : {})
          }
        })
      ),
      Effect.catchTag("SocketServerError", (e) =>
        Effect.fail(
          new UsageError({
            message: `--listen ${show(listen)}: cannot listen there (${e.reason}${e.cause instanceof Error ? `: ${e.cause.message}` : ""})`
          })
        )
      ),
      Effect.mapError((e) => withUrlHint(e, config.baseUrl ?? ""))
    )
  })
).pipe(
  Command.withDescription(
    "Run the jobs of a shared Postgres store, beside other runners on this machine or others; a killed runner's work moves to the others"
  )
)

export { run, runner }

export const jobCommands = {
  run,
  jobs,
  jobsList,
  jobsStatus,
  jobsWatch,
  jobsResume,
  jobsCancel,
  jobsResults
}
