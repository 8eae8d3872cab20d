/**
 * The main job, end to end on this machine: start the bundled emulator (the Batch API's wire
 * protocol on 127.0.0.1), upload examples/requests.jsonl, create a batch, watch it to the end with a
 * progress line, and write every result, joined by custom_id, to examples/out/results.jsonl.
 *
 * Run it with `bash scripts/demo.sh` (sets up a fresh clone first).
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

  mkdirSync(outDir, { recursive: true })
  const target = `${outDir}results.jsonl`
  const temp = `${target}.partial`
  const lines: Array<readonly [string, string]> = []
  const counts: Record<string, number> = {}
  yield* files.results(ended).pipe(
    Stream.runForEach((o) =>
      Effect.sync(() => {
        const outcome = BatchLine.outcomeName(o)
        counts[outcome] = (counts[outcome] ?? 0) + 1
        lines.push([
          o.customId,
          JSON.stringify({
            custom_id: o.customId,
            outcome,
            ...(o._tag === "Succeeded" || o._tag === "Failed"
              ? { status_code: o.statusCode, body: o.body }
              : { error: o.line.error })
          })
        ])
      })
    )
  )
  // in input order: join the outcomes to the input lines by custom_id
  const order = new Map(Array.from({ length: summary.lines }, (_, i) => [`request-${i + 1}`, i]))
  lines.sort(([a], [b]) => (order.get(a) ?? 0) - (order.get(b) ?? 0))
  writeFileSync(temp, `${lines.map(([, line]) => line).join("\n")}\n`)
  renameSync(temp, target)
  yield* Effect.logInfo(`batch ${ended.status}: ${JSON.stringify(counts)}; results in ${target}`)
  return ended.status
})

const status = await Effect.runPromise(
  program.pipe(Effect.provide(NodeBatch.layer({ apiKey: "sk-demo-key", baseUrl: server.url })))
).finally(() => server.close())
process.exitCode = status === "completed" ? 0 : 3
