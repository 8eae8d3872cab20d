/**
 * The `batchkit` command, per the CLI contract of design.md: every command, its options, its
 * output (tables for people, the API's JSON for scripts; data on stdout only) and exit codes.
 */
import {
  type Batch,
  type BatchError,
  BatchFile,
  BatchLine,
  BatchService,
  FileService,
  Provider
} from "@batchkit/core"
import type { Emulator } from "@batchkit/node"
import type { Jobs } from "@batchkit/jobs"
import type * as NodeJobs from "@batchkit/node/NodeJobs"
import type * as SqlError from "@effect/sql/SqlError"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import type * as CliApp from "@effect/cli/CliApp"
import type * as ValidationError from "@effect/cli/ValidationError"
import * as Console from "effect/Console"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Cause from "effect/Cause"
import {
  type Common,
  common,
  durationOption,
  expiryOption,
  inputFile,
  metadataOption,
  node,
  providerNames,
  webhookOptions,
  withServices,
  withWebhooks
} from "./Common.js"
import { describeError, exitCodes, UsageError } from "./Exit.js"
import {
  batchHeader,
  batchRow,
  checkOutputPath,
  describeBatch,
  fileHeader,
  fileRow,
  formatDuration,
  morePages,
  onePage,
  printLine,
  printListing,
  table,
  type LocalError,
  writeFileAtomically,
  writeStdout
} from "./Output.js"
import { jobCommands, jobs, run as runJob, runner } from "./JobsCli.js"
import * as Progress from "./Progress.js"
import * as Results from "./Results.js"

/** The API's JSON: decoded objects keep every field the server sent, known or not. */
const json = (value: unknown) => JSON.stringify(value)

const printBatch = (o: Common, b: Batch.Batch) => printLine(o.json ? json(b) : describeBatch(b))

const batchId = Args.text({ name: "BATCH_ID" }).pipe(Args.withDescription("the batch's id (batch_…)"))
const fileId = Args.text({ name: "FILE_ID" }).pipe(Args.withDescription("the file's id (file-…)"))
const outputOption = Options.file("output").pipe(
  Options.withAlias("o"),
  Options.withPseudoName("FILE"),
  Options.optional,
  Options.withDescription("write to this file (it appears only when complete) instead of stdout")
)

const setExit = (code: number) =>
  Effect.sync(() => {
    process.exitCode = code
  })

const endedBadly = (b: Batch.Batch) =>
  b.status === "failed" || b.status === "expired" || b.status === "cancelled"

// ---- batches -------------------------------------------------------------------------------

const outputExpiresOption = expiryOption(
  "output-expires-after",
  "delete the batch's output and error files this long after they are made, 1h to 30d (e.g. 7d)"
)

const create = Command.make(
  "create",
  {
    ...common,
    inputFileId: Options.text("input-file-id").pipe(
      Options.withPseudoName("FILE_ID"),
      Options.withDescription("the uploaded input file")
    ),
    endpoint: Options.text("endpoint").pipe(
      Options.withPseudoName("PATH"),
      Options.withDescription("e.g. /v1/chat/completions")
    ),
    completionWindow: Options.text("completion-window").pipe(
      Options.withPseudoName("WINDOW"),
      Options.withDefault("24h"),
      Options.withDescription("only 24h exists (default 24h)")
    ),
    metadata: metadataOption,
    outputExpiresAfter: outputExpiresOption
  },
  (o) =>
    Effect.flatMap(BatchService.BatchService, (s) =>
      s.create({
        input_file_id: o.inputFileId,
        endpoint: o.endpoint as `/v1/${string}`,
        completion_window: o.completionWindow as "24h",
        ...(Object.keys(o.metadata).length > 0 ? { metadata: o.metadata } : {}),
        ...(Option.isSome(o.outputExpiresAfter) ? { output_expires_after: o.outputExpiresAfter.value } : {})
      })
    ).pipe(
      Effect.flatMap((b) => printBatch(o, b)),
      withServices(o)
    )
).pipe(Command.withDescription("Create a batch from an uploaded file"))

const retrieve = Command.make("retrieve", { ...common, batchId }, (o) =>
  Effect.flatMap(BatchService.BatchService, (s) => s.retrieve(o.batchId)).pipe(
    Effect.flatMap((b) => printBatch(o, b)),
    withServices(o)
  )
).pipe(Command.withDescription("Show one batch"))

const list = Command.make(
  "list",
  {
    ...common,
    limit: Options.integer("limit").pipe(
      Options.withPseudoName("N"),
      Options.optional,
      Options.withDescription("page size, 1 to 100 (default 20; with --all: the size of each page)")
    ),
    after: Options.text("after").pipe(
      Options.withPseudoName("BATCH_ID"),
      Options.optional,
      Options.withDescription("start after this batch id")
    ),
    all: Options.boolean("all").pipe(Options.withDescription("follow every page"))
  },
  (o) =>
    Effect.gen(function* () {
      const s = yield* BatchService.BatchService
      const params = {
        ...(Option.isSome(o.limit) ? { limit: o.limit.value } : {}),
        ...(Option.isSome(o.after) ? { after: o.after.value } : {})
      }
      yield* printListing(
        o.all ? s.stream(params) : onePage(s.list(params), morePages("batchkit list", params)),
        o.json,
        batchHeader,
        batchRow
      )
    }).pipe(withServices(o))
).pipe(Command.withDescription("List batches, newest first"))

const cancel = Command.make("cancel", { ...common, batchId }, (o) =>
  Effect.flatMap(BatchService.BatchService, (s) => s.cancel(o.batchId)).pipe(
    Effect.flatMap((b) => (o.json ? printLine(json(b)) : printLine(`${b.id} ${b.status}`))),
    withServices(o)
  )
).pipe(Command.withDescription("Cancel a batch (cancelling takes up to 10 minutes)"))

const pollSchedule = (interval: Option.Option<Duration.Duration>) =>
  Option.match(interval, {
    onNone: () => ({}),
    onSome: (d) => ({ schedule: Schedule.spaced(d) })
  })

/**
 * Watches to the end: NDJSON snapshots with --json, progress on stderr otherwise. A poll that
 * keeps failing is said on stderr as it is retried; an interrupted watch says that the batch goes
 * on and which commands pick it up (`resume`).
 */
const follow = (
  o: Common,
  id: string,
  interval: Option.Option<Duration.Duration>,
  snapshots: boolean,
  resume: string
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const s = yield* BatchService.BatchService
      const progress = yield* Progress.tracker(Progress.isTerminal())
      const onRetry = (r: BatchService.PollRetry) =>
        progress.note(
          `polling ${id} failed (${describeError(r.error)}); retry ${r.attempt} of ${r.of} in ${formatDuration(r.delay)}`
        )
      const last = yield* s.watch(id, { ...pollSchedule(interval), onRetry }).pipe(
        Stream.tap((b) => (snapshots && o.json ? printLine(json(b)) : progress.update(b))),
        Stream.runLast,
        Effect.ensuring(progress.done)
      )
      return Option.getOrThrow(last)
    })
  ).pipe(Effect.onInterrupt(() => Console.error(`interrupted: batch ${id} goes on. ${resume}`)))

/** How to pick a batch up again after an interrupted watch. */
const resumeHint = (id: string, results: string) =>
  `Follow it again with \`batchkit watch ${id}\`; once it has ended, \`${results}\` writes its results.`

const watch = Command.make(
  "watch",
  {
    ...common,
    batchId,
    interval: durationOption("interval", "poll this often (default: adaptive, 1s to 1m)"),
    ...webhookOptions
  },
  (o) =>
    Effect.gen(function* () {
      const ended = yield* withWebhooks(o)(
        follow(
          o,
          o.batchId,
          o.interval,
          true,
          resumeHint(o.batchId, `batchkit results ${o.batchId} --output FILE`)
        )
      )
      if (!o.json) yield* printLine(describeBatch(ended))
      if (endedBadly(ended)) yield* setExit(exitCodes.batchEndedBadly)
    }).pipe(withServices(o))
).pipe(
  Command.withDescription("Follow a batch until it ends; exit 3 if it ends failed, expired or cancelled")
)

// ---- results -------------------------------------------------------------------------------

/** Writes the results of `batch` to `output` (or stdout), in input order when `ids` are given. */
const writeResults = (
  batch: Batch.Batch,
  output: Option.Option<string>,
  ids: ReadonlyArray<string> | undefined
) =>
  Effect.gen(function* () {
    const files = yield* FileService.FileService
    const tally: Results.Tally = { counts: {}, missing: [] }
    const outcomes = files.results(batch)
    const bytes =
      ids === undefined ? Results.unordered(outcomes, tally) : Results.ordered(outcomes, ids, tally)
    if (Option.isSome(output)) yield* writeFileAtomically(output.value, bytes)
    else yield* Stream.runForEach(bytes, writeStdout)
    yield* Console.error(
      `${batch.id}: ${Results.summary(tally)}${Option.isSome(output) ? ` written to ${output.value}` : ""}`
    )
    if (tally.missing.length > 0) {
      const shown = tally.missing.slice(0, 10).join(", ")
      yield* Console.error(
        `${tally.missing.length} input line(s) have no result: ${shown}${tally.missing.length > 10 ? ", …" : ""}`
      )
    }
  })

const results = Command.make(
  "results",
  {
    ...common,
    batchId,
    input: Options.file("input").pipe(
      Options.withPseudoName("FILE.jsonl"),
      Options.optional,
      Options.withDescription("the input JSONL: write results in its order, and report lines with no result")
    ),
    output: outputOption
  },
  (o) =>
    Effect.gen(function* () {
      const output = Option.isSome(o.output)
        ? Option.some(yield* checkOutputPath(o.output.value))
        : Option.none()
      const ids = Option.isSome(o.input) ? yield* Results.inputIds(o.input.value) : undefined
      const batch = yield* Effect.flatMap(BatchService.BatchService, (s) => s.retrieve(o.batchId))
      yield* writeResults(batch, output, ids)
    }).pipe(withServices(o))
).pipe(
  Command.withDescription(
    "Write a batch's results as JSONL: custom_id, outcome, and the response or error (output and error files joined)"
  )
)

// ---- submit --------------------------------------------------------------------------------

const upload = (
  path: string,
  purpose: BatchFile.UploadPurpose,
  expiresAfter: Option.Option<{ readonly anchor: "created_at"; readonly seconds: number }> = Option.none()
) =>
  Effect.gen(function* () {
    const files = yield* FileService.FileService
    const { NodeFileSource } = yield* node
    const source = yield* NodeFileSource.fromPath(path)
    const progress = Progress.uploadProgress(source.size, Progress.isTerminal())
    // progress is counted off the byte stream, so a shown bar sends that instead of the Blob
    const sent = progress.shown
      ? {
          ...source,
          blob: undefined,
          stream: Stream.tap(source.stream, (chunk) => Effect.sync(() => progress.sent(chunk.byteLength)))
        }
      : source
    const options = { purpose, ...(Option.isSome(expiresAfter) ? { expiresAfter: expiresAfter.value } : {}) }
    return yield* files.upload(sent, options).pipe(Effect.ensuring(Effect.sync(progress.done)))
  })

/** A failure that may have come after the server acted: the batch may exist. */
const mayHaveActed = (cause: Cause.Cause<unknown>) =>
  Cause.isInterrupted(cause) ||
  Option.match(Cause.failureOption(cause), {
    onNone: () => true,
    onSome: (e) => {
      const tag = (e as { readonly _tag?: string })._tag
      return (
        tag === "TransportError" ||
        tag === "ServerError" ||
        (tag === "UnexpectedStatus" && (e as { readonly status: number }).status === 408)
      )
    }
  })

/**
 * After a create that did not give a batch, the uploaded input is deleted when the batch surely
 * does not exist; when it may (the answer was lost, or the command was interrupted), it is kept,
 * and stderr says which file that is and why.
 */
const afterFailedCreate =
  (fileId: string) =>
  <E>(cause: Cause.Cause<E>): Effect.Effect<void, never, FileService.FileService> =>
    mayHaveActed(cause)
      ? Console.error(
          `kept the uploaded file ${fileId}: the batch may have been created before the answer was lost (see \`batchkit list\`); \`batchkit files delete ${fileId}\` removes it if not`
        )
      : Effect.flatMap(FileService.FileService, (files) => files.delete(fileId)).pipe(
          Effect.matchEffect({
            onSuccess: () =>
              Console.error(`deleted the uploaded file ${fileId}: no batch was created from it`),
            onFailure: (e) =>
              Console.error(
                `could not delete the uploaded file ${fileId} (${describeError(e)}): delete it with \`batchkit files delete ${fileId}\``
              )
          })
        )

const submit = Command.make(
  "submit",
  {
    ...common,
    file: Args.text({ name: "FILE.jsonl" }).pipe(
      Args.withDescription("the requests, one JSON object per line (custom_id, method, url, body)")
    ),
    endpoint: Options.text("endpoint").pipe(
      Options.withPseudoName("PATH"),
      Options.optional,
      Options.withDescription("the batch's endpoint (default: the url of the lines)")
    ),
    metadata: metadataOption,
    outputExpiresAfter: outputExpiresOption,
    dryRun: Options.boolean("dry-run").pipe(
      Options.withDescription("check everything submit checks, print a summary, send nothing")
    ),
    wait: Options.boolean("wait").pipe(Options.withDescription("watch to the end and write the results")),
    output: outputOption,
    interval: durationOption("interval", "with --wait: poll this often (default: adaptive)"),
    ...webhookOptions
  },
  (o) =>
    Effect.gen(function* () {
      const path = yield* inputFile(o.file, "FILE.jsonl")
      const output = Option.isSome(o.output)
        ? Option.some(yield* checkOutputPath(o.output.value))
        : Option.none()
      if (Option.isSome(output) && !o.wait) {
        return yield* Effect.fail(
          new UsageError({ message: "--output needs --wait (results exist once the batch ends)" })
        )
      }
      // everything submit checks happens here, before any upload, and the dry run stops after it
      const { NodeFileSource } = yield* node
      // the provider's endpoints and limits: a file good for one may not be for another
      const provider = Provider.profiles[o.provider]
      const summary = yield* BatchLine.validateInput(NodeFileSource.stream(path), {
        endpoint: Option.getOrUndefined(o.endpoint),
        provider
      }).pipe(Effect.mapError((e) => new UsageError({ message: `${path}: cannot read: ${e.message}` })))
      if (summary.problemCount > 0) {
        const lines = summary.problems.map(
          (p) => `${path}${p.line !== null ? `:${p.line}` : ""}: ${p.message} (${p.code})`
        )
        const more = summary.problemCount - summary.problems.length
        return yield* Effect.fail(
          new UsageError({
            message: `${path} would fail validation, nothing was sent:\n${lines.join("\n")}${more > 0 ? `\n… and ${more} more` : ""}`
          })
        )
      }
      const params = {
        endpoint: (Option.getOrUndefined(o.endpoint) ?? summary.endpoint) as `/${string}`,
        ...(Object.keys(o.metadata).length > 0 ? { metadata: o.metadata } : {}),
        ...(Option.isSome(o.outputExpiresAfter) ? { output_expires_after: o.outputExpiresAfter.value } : {})
      }
      yield* BatchService.checkCreate({ ...params, input_file_id: "file-dry-run" }, { provider })
      if (o.dryRun) {
        const facts = {
          file: path,
          lines: summary.lines,
          bytes: summary.bytes,
          endpoint: params.endpoint,
          model: summary.model ?? null
        }
        return yield* printLine(
          o.json
            ? json(facts)
            : table([
                ["file", path],
                ["lines", String(summary.lines)],
                ["bytes", String(summary.bytes)],
                ["endpoint", params.endpoint],
                ["model", summary.model ?? "-"],
                ["valid", "yes (dry run: nothing was sent)"]
              ])
        )
      }
      // validation has read every custom_id already: results are joined on them in input order
      const ids = o.wait ? summary.customIds : undefined
      yield* Effect.gen(function* () {
        const file = yield* upload(path, "batch").pipe(
          Effect.onInterrupt(() => Console.error(`interrupted while uploading ${path}: nothing was created`))
        )
        yield* Console.error(`uploaded ${path} as ${file.id} (${file.bytes} bytes)`)
        const batch = yield* Effect.flatMap(BatchService.BatchService, (s) =>
          s.create({ ...params, input_file_id: file.id })
        ).pipe(Effect.onError(afterFailedCreate(file.id)))
        if (!o.wait) return yield* printBatch(o, batch)
        yield* Console.error(`created ${batch.id}; watching it (Ctrl-C stops watching, not the batch)`)
        const results = `batchkit results ${batch.id} --input ${path} --output ${Option.getOrElse(output, () => "FILE")}`
        const ended = yield* withWebhooks(o)(
          follow(o, batch.id, o.interval, false, resumeHint(batch.id, results))
        )
        if (ended.status === "failed") {
          for (const e of ended.errors?.data ?? []) {
            yield* Console.error(
              `${path}${e.line != null ? `:${e.line}` : ""}: ${e.message ?? ""} (${e.code ?? "error"})`
            )
          }
        } else {
          // completed, expired or cancelled: every result that exists is saved before the exit code says how it ended
          yield* writeResults(ended, output, ids)
        }
        if (Option.isSome(output)) yield* printBatch(o, ended)
        else yield* Console.error(`${ended.id} ended ${ended.status}`)
        if (endedBadly(ended)) yield* setExit(exitCodes.batchEndedBadly)
      }).pipe(withServices(o))
    })
).pipe(
  Command.withDescription(
    "Validate a JSONL file locally, upload it and create a batch; --wait follows it and writes the results"
  )
)

// ---- files ---------------------------------------------------------------------------------

const filesUpload = Command.make(
  "upload",
  {
    ...common,
    file: Args.text({ name: "FILE" }).pipe(Args.withDescription("the file to upload")),
    purpose: Options.choice("purpose", BatchFile.UploadPurpose.literals).pipe(
      Options.withDefault("batch" as const),
      Options.withDescription("what the file is for (default batch)")
    ),
    expiresAfter: expiryOption(
      "expires-after",
      "delete the file this long after it is uploaded, 1h to 30d (batch files: 30d unless set)"
    )
  },
  (o) =>
    Effect.gen(function* () {
      const path = yield* inputFile(o.file, "FILE")
      const file = yield* upload(path, o.purpose, o.expiresAfter).pipe(withServices(o))
      yield* printLine(o.json ? json(file) : table([fileHeader, fileRow(file)]))
    })
).pipe(Command.withDescription("Upload a file (streamed from disk)"))

const filesRetrieve = Command.make("retrieve", { ...common, fileId }, (o) =>
  Effect.flatMap(FileService.FileService, (s) => s.retrieve(o.fileId)).pipe(
    Effect.flatMap((f) => printLine(o.json ? json(f) : table([fileHeader, fileRow(f)]))),
    withServices(o)
  )
).pipe(Command.withDescription("Show one file"))

const filesList = Command.make(
  "list",
  {
    ...common,
    purpose: Options.choice("purpose", BatchFile.FilePurpose.literals).pipe(
      Options.optional,
      Options.withDescription("only files of this purpose (batch outputs are batch_output)")
    ),
    limit: Options.integer("limit").pipe(
      Options.withPseudoName("N"),
      Options.optional,
      Options.withDescription("page size, 1 to 10000 (default 10000)")
    ),
    after: Options.text("after").pipe(
      Options.withPseudoName("FILE_ID"),
      Options.optional,
      Options.withDescription("start after this file id")
    ),
    order: Options.choice("order", ["asc", "desc"]).pipe(
      Options.optional,
      Options.withDescription("by creation time (default desc: newest first)")
    ),
    all: Options.boolean("all").pipe(Options.withDescription("follow every page"))
  },
  (o) =>
    Effect.gen(function* () {
      const s = yield* FileService.FileService
      const params = {
        ...(Option.isSome(o.purpose) ? { purpose: o.purpose.value } : {}),
        ...(Option.isSome(o.limit) ? { limit: o.limit.value } : {}),
        ...(Option.isSome(o.after) ? { after: o.after.value } : {}),
        ...(Option.isSome(o.order) ? { order: o.order.value } : {})
      }
      yield* printListing(
        o.all ? s.stream(params) : onePage(s.list(params), morePages("batchkit files list", params)),
        o.json,
        fileHeader,
        fileRow
      )
    }).pipe(withServices(o))
).pipe(Command.withDescription("List files"))

const filesDelete = Command.make("delete", { ...common, fileId }, (o) =>
  Effect.flatMap(FileService.FileService, (s) => s.delete(o.fileId)).pipe(
    Effect.flatMap((d) => printLine(o.json ? json(d) : `${d.id} ${d.deleted ? "deleted" : "not deleted"}`)),
    withServices(o)
  )
).pipe(Command.withDescription("Delete a file"))

const filesContent = Command.make("content", { ...common, fileId, output: outputOption }, (o) =>
  Effect.gen(function* () {
    const output = Option.isSome(o.output)
      ? Option.some(yield* checkOutputPath(o.output.value))
      : Option.none()
    yield* Effect.gen(function* () {
      const bytes = (yield* FileService.FileService).content(o.fileId)
      if (Option.isSome(output)) yield* writeFileAtomically(output.value, bytes)
      else yield* Stream.runForEach(bytes, writeStdout)
    }).pipe(withServices(o))
  })
).pipe(Command.withDescription("Download a file's content"))

const files = Command.make("files").pipe(
  Command.withDescription("Upload, inspect, download and delete files"),
  Command.withSubcommands([filesUpload, filesRetrieve, filesList, filesDelete, filesContent])
)

// ---- emulator ------------------------------------------------------------------------------

const emulator = Command.make(
  "emulator",
  {
    port: Options.integer("port").pipe(
      Options.withPseudoName("N"),
      Options.optional,
      Options.withDescription("default: a free port")
    ),
    speed: Options.float("speed").pipe(
      Options.withPseudoName("FACTOR"),
      Options.withDefault(60),
      Options.withDescription("how many times faster than the wall clock batches move (default 60)")
    ),
    apiKey: Options.text("api-key").pipe(
      Options.withPseudoName("KEY"),
      Options.optional,
      Options.withDescription("the only key accepted (default: any non-empty key)")
    ),
    webhookUrl: Options.text("webhook-url").pipe(
      Options.withPseudoName("URL"),
      Options.optional,
      Options.withDescription("POST a signed event here when a batch ends, as OpenAI's webhooks do")
    ),
    webhookSecret: webhookOptions.webhookSecret,
    tokenLimit: Options.text("token-limit").pipe(
      Options.withPseudoName("MODEL=N"),
      Options.repeated,
      Options.withDescription(
        "an enqueued-token limit for a model: batches over it fail with token_limit_exceeded"
      )
    ),
    transientFailures: Options.float("transient-failures").pipe(
      Options.withPseudoName("FRACTION"),
      Options.optional,
      Options.withDescription(
        "this fraction of requests fails with a 500 on its first attempt only, e.g. 0.01"
      )
    ),
    completionWindow: durationOption("completion-window", "how long until a batch expires (default 24h)"),
    provider: Options.choice("provider", providerNames).pipe(
      Options.withDefault("openai" as const),
      Options.withDescription(
        "whose Batch API to play: azure serves /openai?api-version=… and /openai/v1, takes an api-key header and lines with url /chat/completions (default openai)"
      )
    )
  },
  (o) =>
    Effect.gen(function* () {
      if (!(o.speed > 0)) return yield* Effect.fail(new UsageError({ message: "--speed must be above 0" }))
      if (Option.isSome(o.port) && (o.port.value < 0 || o.port.value > 65535)) {
        return yield* Effect.fail(new UsageError({ message: "--port must be from 0 to 65535" }))
      }
      if (Option.isSome(o.webhookUrl) && Option.isNone(o.webhookSecret)) {
        return yield* Effect.fail(
          new UsageError({
            message: "--webhook-url needs --webhook-secret (or OPENAI_WEBHOOK_SECRET) to sign events"
          })
        )
      }
      const tokenLimits: Record<string, number> = {}
      for (const spec of o.tokenLimit) {
        const m = /^(.+)=(\d+)$/.exec(spec)
        if (m === null)
          return yield* Effect.fail(new UsageError({ message: `--token-limit: '${spec}' is not MODEL=N` }))
        tokenLimits[m[1]!] = Number(m[2])
      }
      if (
        Option.isSome(o.transientFailures) &&
        !(o.transientFailures.value >= 0 && o.transientFailures.value <= 1)
      )
        return yield* Effect.fail(new UsageError({ message: "--transient-failures must be from 0 to 1" }))
      const { Emulator } = yield* node
      const { Responder } = yield* Effect.promise(() => import("@batchkit/core/testing"))
      const share = Option.getOrElse(o.transientFailures, () => 0)
      const server = yield* Emulator.serve({
        provider: Provider.profiles[o.provider],
        enqueuedTokenLimits: tokenLimits,
        ...(share > 0
          ? {
              responder: Responder.transient(
                (line) => Responder.hash(line.custom_id) % 10_000 < share * 10_000
              )
            }
          : {}),
        ...(Option.isSome(o.completionWindow) ? { completionWindow: o.completionWindow.value } : {}),
        speed: o.speed,
        port: Option.getOrUndefined(o.port),
        apiKey: Option.getOrUndefined(o.apiKey),
        webhooks:
          Option.isSome(o.webhookUrl) && Option.isSome(o.webhookSecret)
            ? [{ url: o.webhookUrl.value, secret: o.webhookSecret.value }]
            : []
      })
      yield* printLine(server.url)
      yield* Console.error(`emulator listening on ${server.url} (speed ${o.speed}×); Ctrl-C stops it`)
      return yield* Effect.never
    }).pipe(Effect.scoped)
).pipe(Command.withDescription("Serve the Batch API emulator on 127.0.0.1 and print its base URL"))

const description = "The OpenAI Batch API from the terminal"

const command = Command.make("batchkit").pipe(
  Command.withDescription(description),
  Command.withSubcommands([
    create,
    retrieve,
    list,
    cancel,
    watch,
    submit,
    results,
    runJob,
    jobs,
    runner,
    files,
    emulator
  ])
)

/** Every command by its path, for the help pages (`Help.ts`). */
export const commands: ReadonlyArray<{
  readonly path: ReadonlyArray<string>
  readonly command: Command.Command<string, never, unknown, unknown>
}> = [
  { path: [], command },
  { path: ["submit"], command: submit },
  { path: ["watch"], command: watch },
  { path: ["results"], command: results },
  { path: ["run"], command: runJob },
  { path: ["jobs"], command: jobs },
  { path: ["jobs", "list"], command: jobCommands.jobsList },
  { path: ["jobs", "status"], command: jobCommands.jobsStatus },
  { path: ["jobs", "watch"], command: jobCommands.jobsWatch },
  { path: ["jobs", "resume"], command: jobCommands.jobsResume },
  { path: ["jobs", "cancel"], command: jobCommands.jobsCancel },
  { path: ["jobs", "results"], command: jobCommands.jobsResults },
  { path: ["runner"], command: runner },
  { path: ["create"], command: create },
  { path: ["retrieve"], command: retrieve },
  { path: ["list"], command: list },
  { path: ["cancel"], command: cancel },
  { path: ["files"], command: files },
  { path: ["files", "upload"], command: filesUpload },
  { path: ["files", "retrieve"], command: filesRetrieve },
  { path: ["files", "list"], command: filesList },
  { path: ["files", "delete"], command: filesDelete },
  { path: ["files", "content"], command: filesContent },
  { path: ["emulator"], command: emulator }
] as never

/** The options every command that talks to the API takes, by flag. */
export const commonFlags = Object.keys(common).map(
  (k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
)

export { description }

/** The longest prefix of `args` that names a command (`[]`: the root). */
export const commandPaths = (args: ReadonlyArray<string>): ReadonlyArray<string> => {
  let best: ReadonlyArray<string> = []
  for (const c of commands) {
    if (c.path.length > best.length && c.path.every((s, i) => args[i] === s)) best = c.path
  }
  return best
}

const flagOptions = new Set(["--json"])

/**
 * Moves the common options given before the command (`batchkit --json list`) to after it, where
 * @effect/cli looks for them (`batchkit list --json`).
 */
export const normalizeArgs = (args: ReadonlyArray<string>): ReadonlyArray<string> => {
  const leading: Array<string> = []
  let i = 0
  while (i < args.length) {
    const arg = args[i]!
    const name = arg.split("=")[0]!
    if (!commonFlags.includes(name)) break
    leading.push(arg)
    i++
    if (!arg.includes("=") && !flagOptions.has(name) && i < args.length) leading.push(args[i++]!)
  }
  if (leading.length === 0) return args
  const rest = args.slice(i)
  const path = commandPaths(rest)
  return [...path, ...leading, ...rest.slice(path.length)]
}

/** Everything a command can fail with, each mapped to its exit code by `Exit.report`. */
export type CliError =
  | BatchError.BatchError
  | UsageError
  | LocalError
  | Emulator.ListenError
  | SqlError.SqlError
  | NodeJobs.EngineBusy
  | NodeJobs.StateError
  | Jobs.JobNotFound
  | Jobs.JobNotFinished

/** Runs the CLI on a full `process.argv`. */
export const run: (
  argv: ReadonlyArray<string>,
  version: string
) => Effect.Effect<void, CliError | ValidationError.ValidationError, CliApp.CliApp.Environment> = (
  argv,
  version
) => Command.run(command, { name: "batchkit", version })(argv)
