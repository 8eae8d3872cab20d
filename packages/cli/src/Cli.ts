/**
 * The `batchkit` command. This first cut covers the batch operations that need no files:
 * `retrieve`, `list` (one page or `--all`), `cancel` and `watch`. Every command takes the
 * common options and follows the contract's output rules and exit codes.
 */
import { type Batch, BatchConfig, type BatchError, BatchService } from "@batchkit/core"
import { Emulator, NodeBatch } from "@batchkit/node"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { exitCodes, UsageError } from "./Exit.js"

/** `250ms`, `30s`, `5m`, `1h`. */
export const parseDuration = (text: string): Option.Option<Duration.Duration> => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim())
  if (!m) return Option.none()
  const n = Number(m[1])
  const unit = m[2] === "ms" ? "millis" : m[2] === "s" ? "seconds" : m[2] === "m" ? "minutes" : "hours"
  return Option.some(Duration.decode(`${n} ${unit}` as Duration.DurationInput))
}

const durationOption = (name: string) =>
  Options.text(name).pipe(
    Options.mapEffect((text) =>
      Option.match(parseDuration(text), {
        onNone: () =>
          Effect.fail(
            ValidationError.invalidValue(
              HelpDoc.p(`--${name}: '${text}' is not a duration (write it like 250ms, 30s, 5m)`)
            )
          ),
        onSome: Effect.succeed
      })
    ),
    Options.optional
  )

const common = {
  apiKey: Options.redacted("api-key").pipe(
    Options.withFallbackConfig(Config.redacted("OPENAI_API_KEY")),
    Options.optional,
    Options.withDescription("API key (default: $OPENAI_API_KEY)")
  ),
  baseUrl: Options.text("base-url").pipe(
    Options.withFallbackConfig(Config.string("OPENAI_BASE_URL")),
    Options.withDefault(BatchConfig.defaultBaseUrl),
    Options.withDescription("API base URL (default: $OPENAI_BASE_URL, else https://api.openai.com/v1)")
  ),
  organization: Options.text("organization").pipe(
    Options.withFallbackConfig(Config.string("OPENAI_ORG_ID")),
    Options.optional
  ),
  project: Options.text("project").pipe(
    Options.withFallbackConfig(Config.string("OPENAI_PROJECT_ID")),
    Options.optional
  ),
  maxRetries: Options.integer("max-retries").pipe(Options.withDefault(2)),
  timeout: durationOption("timeout"),
  json: Options.boolean("json").pipe(
    Options.withDescription("print the API's JSON (NDJSON for lists and streams)")
  )
}

type Common = {
  readonly apiKey: Option.Option<Redacted.Redacted<string>>
  readonly baseUrl: string
  readonly organization: Option.Option<string>
  readonly project: Option.Option<string>
  readonly maxRetries: number
  readonly timeout: Option.Option<Duration.Duration>
  readonly json: boolean
}

/** Provides the services from the common options; a missing key is a usage error. */
const withServices =
  (options: Common) =>
  <A, E>(effect: Effect.Effect<A, E, BatchService.BatchService>) =>
    Effect.gen(function* () {
      const apiKey = Option.filter(options.apiKey, (k) => Redacted.value(k).trim() !== "")
      if (Option.isNone(apiKey)) {
        return yield* Effect.fail(
          new UsageError({ message: "no API key: set OPENAI_API_KEY or pass --api-key" })
        )
      }
      if (options.maxRetries < 0)
        return yield* Effect.fail(new UsageError({ message: "--max-retries must be 0 or more" }))
      return yield* effect.pipe(
        Effect.provide(
          NodeBatch.layer({
            apiKey: apiKey.value,
            baseUrl: options.baseUrl,
            organization: Option.getOrUndefined(options.organization),
            project: Option.getOrUndefined(options.project),
            maxRetries: options.maxRetries,
            timeout: Option.getOrUndefined(options.timeout)
          })
        )
      )
    })

/** The API's JSON: decoded batches keep every field the server sent, known or not. */
const json = (batch: Batch.Batch) => JSON.stringify(batch)

const when = (seconds: number | null | undefined) =>
  seconds == null ? "-" : new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19)

const counts = (b: Batch.Batch) =>
  b.request_counts == null
    ? "-"
    : `${b.request_counts.completed}/${b.request_counts.failed}/${b.request_counts.total}`

/** Aligned columns for people. */
export const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? []
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  "))
    .join("\n")
}

const header = ["ID", "STATUS", "ENDPOINT", "DONE/FAILED/TOTAL", "CREATED"]
const row = (b: Batch.Batch) => [b.id, b.status, b.endpoint, counts(b), when(b.created_at)]

const describeBatch = (b: Batch.Batch) =>
  table([
    ["id", b.id],
    ["status", b.status],
    ["endpoint", b.endpoint],
    ["model", b.model ?? "-"],
    ["input file", b.input_file_id],
    ["output file", b.output_file_id || "-"],
    ["error file", b.error_file_id || "-"],
    ["requests", `${counts(b)} (completed/failed/total)`],
    ["created", when(b.created_at)],
    ["expires", when(b.expires_at)],
    ...(b.errors?.data ?? []).map((e) => [
      "error",
      `${e.code ?? ""} ${e.line != null ? `line ${e.line}: ` : ""}${e.message ?? ""}`
    ]),
    ...Object.entries(b.metadata ?? {}).map(([k, v]) => [`metadata ${k}`, v])
  ])

const batchId = Args.text({ name: "BATCH_ID" })

const retrieve = Command.make("retrieve", { ...common, batchId }, (o) =>
  Effect.flatMap(BatchService.BatchService, (s) => s.retrieve(o.batchId)).pipe(
    Effect.flatMap((b) => Console.log(o.json ? json(b) : describeBatch(b))),
    withServices(o)
  )
).pipe(Command.withDescription("Show one batch"))

const list = Command.make(
  "list",
  {
    ...common,
    limit: Options.integer("limit").pipe(Options.optional, Options.withDescription("page size, 1..100")),
    after: Options.text("after").pipe(Options.optional, Options.withDescription("start after this batch id")),
    all: Options.boolean("all").pipe(Options.withDescription("follow every page"))
  },
  (o) =>
    Effect.gen(function* () {
      const s = yield* BatchService.BatchService
      const params = {
        ...(Option.isSome(o.limit) ? { limit: o.limit.value } : {}),
        ...(Option.isSome(o.after) ? { after: o.after.value } : {})
      }
      const batches = o.all
        ? s.stream(params)
        : Stream.unwrap(Effect.map(s.list(params), (p) => Stream.fromIterable(p.data)))
      if (o.json) return yield* Stream.runForEach(batches, (b) => Console.log(json(b)))
      const rows = yield* Stream.runCollect(Stream.map(batches, row))
      yield* Console.log(table([header, ...rows]))
    }).pipe(withServices(o))
).pipe(Command.withDescription("List batches, newest first"))

const cancel = Command.make("cancel", { ...common, batchId }, (o) =>
  Effect.flatMap(BatchService.BatchService, (s) => s.cancel(o.batchId)).pipe(
    Effect.flatMap((b) => Console.log(o.json ? json(b) : `${b.id} ${b.status}`)),
    withServices(o)
  )
).pipe(Command.withDescription("Cancel a batch"))

const watch = Command.make("watch", { ...common, batchId, interval: durationOption("interval") }, (o) =>
  Effect.gen(function* () {
    const s = yield* BatchService.BatchService
    const schedule = Option.map(o.interval, (d) => Schedule.spaced(d))
    const last = yield* s.watch(o.batchId, Option.isSome(schedule) ? { schedule: schedule.value } : {}).pipe(
      Stream.tap((b) =>
        o.json
          ? Console.log(json(b))
          : Console.error(`${new Date().toISOString().slice(11, 19)} ${b.id} ${b.status} ${counts(b)}`)
      ),
      Stream.runLast
    )
    if (Option.isSome(last) && ["failed", "expired", "cancelled"].includes(last.value.status)) {
      yield* Effect.sync(() => {
        process.exitCode = exitCodes.batchEndedBadly
      })
    }
  }).pipe(withServices(o))
).pipe(Command.withDescription("Follow a batch until it ends; exit 3 if it fails, expires or is cancelled"))

const emulator = Command.make(
  "emulator",
  {
    port: Options.integer("port").pipe(Options.optional, Options.withDescription("default: a free port")),
    speed: Options.float("speed").pipe(
      Options.withDefault(60),
      Options.withDescription("how many times faster than the wall clock batches move (default 60)")
    ),
    apiKey: Options.text("api-key").pipe(
      Options.optional,
      Options.withDescription("the only key accepted (default: any non-empty key)")
    )
  },
  (o) =>
    Effect.gen(function* () {
      if (!(o.speed > 0)) return yield* Effect.fail(new UsageError({ message: "--speed must be above 0" }))
      if (Option.isSome(o.port) && (o.port.value < 0 || o.port.value > 65535)) {
        return yield* Effect.fail(new UsageError({ message: "--port must be from 0 to 65535" }))
      }
      const server = yield* Emulator.serve({
        speed: o.speed,
        port: Option.getOrUndefined(o.port),
        apiKey: Option.getOrUndefined(o.apiKey)
      })
      yield* Console.log(server.url)
      yield* Console.error(`emulator listening on ${server.url} (speed ${o.speed}×); Ctrl-C stops it`)
      return yield* Effect.never
    }).pipe(Effect.scoped)
).pipe(Command.withDescription("Serve the Batch API emulator on 127.0.0.1 and print its base URL"))

export const command = Command.make("batchkit").pipe(
  Command.withDescription("The OpenAI Batch API from the terminal"),
  Command.withSubcommands([retrieve, list, cancel, watch, emulator])
)

export type CliError = BatchError.BatchError | UsageError | Emulator.ListenError
