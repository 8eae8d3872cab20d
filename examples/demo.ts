/**
 * The main job as a library program: start the bundled emulator (the Batch API's wire protocol
 * on 127.0.0.1), upload examples/requests.jsonl, create a batch, watch it to the end with a
 * progress line, and write every result, joined by custom_id in input order, to
 * examples/out/library-results.jsonl, in the same shape as `batchkit results --input` writes.
 *
 * Run it with `pnpm example` (or `pnpm --filter @batchkit/examples demo`) after `pnpm build`;
 * `bash scripts/demo.sh` runs the same job through the CLI.
 */
import { BatchLine, BatchService, FileService } from "@batchkit/core"
import { Emulator, NodeBatch, NodeFileSource } from "@batchkit/node"
import { Effect, Schedule, Stream } from "effect"
import { mkdirSync, renameSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

const input = fileURLToPath(new URL("./requests.jsonl", import.meta.url))
const outDir = fileURLToPath(new URL("./out/", import.meta.url))

// the emulator's clock runs 20× the wall clock: 300 requests at ten a second take 1.5 s
const server = await Emulator.start({ apiKey: "sk-demo-key", speed: 20 })
process.stderr.write(`emulator on ${server.url}\n`)

const program = Effect.gen(function* () {
  const batches = yield* BatchService.BatchService
  const files = yield* FileService.FileService

  const source = yield* NodeFileSource.fromPath(input)
  const summary = yield* BatchLine.validateInput(source.stream)
  if (summary.problemCount > 0) {
    return yield* Effect.dieMessage(summary.problems.map((p) => `line ${p.line}: ${p.message}`).join("\n"))
  }
  yield* Effect.logInfo(
    `${summary.lines} requests to ${summary.endpoint} (${summary.model}), ${summary.bytes} bytes`
  )

  const file = yield* files.upload(source)
  const batch = yield* batches.create({
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    metadata: { job: "demo" }
  })
  yield* Effect.logInfo(`created ${batch.id}`)

  const started = Date.now()
  const last = yield* batches.watch(batch.id, { schedule: Schedule.spaced("250 millis") }).pipe(
    Stream.tap((b) => {
      const c = b.request_counts
      const seconds = ((Date.now() - started) / 1000).toFixed(1)
      return Effect.sync(() =>
        process.stderr.write(
          `${seconds}s ${b.status} ${c ? `${c.completed + c.failed}/${c.total} done, ${c.failed} failed` : ""}\n`
        )
      )
    }),
    Stream.runLast
  )
  const ended = last._tag === "Some" ? last.value : yield* batches.retrieve(batch.id)

  // the same lines as `batchkit results --input` writes, in input order (joined by custom_id)
  const byId = new Map<string, string>()
  const counts: Record<string, number> = {}
  yield* files.results(ended).pipe(
    Stream.runForEach((o) =>
      Effect.sync(() => {
        const record = BatchLine.toResultRecord(o)
        counts[record.outcome] = (counts[record.outcome] ?? 0) + 1
        byId.set(o.customId, JSON.stringify(record))
      })
    )
  )
  const lines = summary.customIds.map(
    (id) => byId.get(id) ?? JSON.stringify({ custom_id: id, outcome: "missing" })
  )
  mkdirSync(outDir, { recursive: true })
  const target = `${outDir}library-results.jsonl`
  const temp = `${target}.partial`
  writeFileSync(temp, `${lines.join("\n")}\n`)
  renameSync(temp, target)
  yield* Effect.logInfo(`batch ${ended.status}: ${JSON.stringify(counts)}; results in ${target}`)
  return ended.status
})

const status = await Effect.runPromise(
  program.pipe(Effect.provide(NodeBatch.layer({ apiKey: "sk-demo-key", baseUrl: server.url })))
).finally(() => server.close())
process.exitCode = status === "completed" ? 0 : 3
