/**
 * The results file: JSONL, one line per request, with its `custom_id`, its outcome and the
 * response body or error as the API gave it. Given the input file, lines come in input order and
 * an input line with no result gets `"outcome": "missing"`; this works in memory proportional to
 * the number of requests, never to the size of the results.
 */
import { BatchLine } from "@batchkit/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import { createReadStream, existsSync, statSync } from "node:fs"
import { type FileHandle, open, unlink } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { UsageError } from "./Exit.js"
import { encoder, LocalError } from "./Output.js"

export type OutcomeName = ReturnType<typeof BatchLine.outcomeName> | "missing"

/** One line of the results file. */
export const record = (o: BatchLine.Outcome): Record<string, unknown> => {
  const outcome = BatchLine.outcomeName(o)
  switch (o._tag) {
    case "Succeeded":
      return {
        custom_id: o.customId,
        outcome,
        status_code: o.statusCode,
        request_id: o.requestId ?? null,
        response: o.body
      }
    case "Failed":
      return {
        custom_id: o.customId,
        outcome,
        status_code: o.statusCode,
        request_id: o.requestId ?? null,
        error: o.error ?? null,
        response: o.body
      }
    default:
      return { custom_id: o.customId, outcome, error: o.line.error ?? null }
  }
}

/**
 * The `custom_id`s of an input file, in order, read by the same validation `submit` uses; a line
 * that is not a request line is bad input (exit 2). Other problems (a url or model that differs)
 * do not matter for joining results and are ignored.
 */
export const inputIds = (
  path: string,
  option = "--input"
): Effect.Effect<ReadonlyArray<string>, UsageError> =>
  Effect.gen(function* () {
    if (!existsSync(path) || !statSync(path).isFile()) {
      return yield* Effect.fail(new UsageError({ message: `${option}: ${path}: no such file` }))
    }
    const bytes = Stream.fromAsyncIterable(
      createReadStream(path) as AsyncIterable<Uint8Array>,
      (e) => e as Error
    )
    const summary = yield* BatchLine.validateInput(bytes, { maxProblems: 20 }).pipe(
      Effect.mapError((e) => new UsageError({ message: `${option}: cannot read ${path}: ${e.message}` }))
    )
    const broken = summary.problems.filter((p) => p.code === "invalid_json_line" || p.code === "invalid_line")
    if (broken.length > 0) {
      const lines = broken.map((p) => `${path}:${p.line}: ${p.message}`)
      return yield* Effect.fail(new UsageError({ message: `${option}: ${lines.join("\n")}` }))
    }
    return summary.customIds
  })

export interface Tally {
  readonly counts: Record<string, number>
  readonly missing: Array<string>
}

const lineBytes = (chunk: Chunk.Chunk<BatchLine.Outcome>, tally: Tally) => {
  let text = ""
  for (const o of chunk) {
    const line = JSON.stringify(record(o))
    tally.counts[BatchLine.outcomeName(o)] = (tally.counts[BatchLine.outcomeName(o)] ?? 0) + 1
    text += `${line}\n`
  }
  return encoder.encode(text)
}

/** Results as bytes, in the files' order. */
export const unordered = <E, R>(outcomes: Stream.Stream<BatchLine.Outcome, E, R>, tally: Tally) =>
  Stream.mapChunks(outcomes, (chunk) => Chunk.of(lineBytes(chunk, tally)))

/**
 * Results as bytes in input order: the outcomes are first spooled to a temporary file with the
 * offset of each line noted, then read back in the order of `ids`. Results whose custom_id is not
 * in the input follow at the end, so nothing is dropped.
 */
export const ordered = <E, R>(
  outcomes: Stream.Stream<BatchLine.Outcome, E, R>,
  ids: ReadonlyArray<string>,
  tally: Tally
): Stream.Stream<Uint8Array, E | LocalError, R> => {
  const spool = join(tmpdir(), `batchkit-results-${process.pid}-${randomBytes(4).toString("hex")}.jsonl`)
  const local = (cause: unknown) =>
    new LocalError({ message: `spool file ${spool}: ${(cause as Error).message}` })
  const acquire = Effect.tryPromise({ try: () => open(spool, "w+"), catch: local })
  const release = (handle: FileHandle) =>
    Effect.promise(() =>
      handle
        .close()
        .catch(() => undefined)
        .then(() => unlink(spool).catch(() => undefined))
    )
  return Stream.unwrapScoped(
    Effect.gen(function* () {
      const handle = yield* Effect.acquireRelease(acquire, release)
      const index = new Map<string, { offset: number; length: number }>()
      let offset = 0
      yield* Stream.runForEach(outcomes.pipe(Stream.chunks), (chunk) => {
        let text = ""
        for (const o of chunk) {
          const line = `${JSON.stringify(record(o))}\n`
          const length = Buffer.byteLength(line)
          index.set(o.customId, { offset: offset + Buffer.byteLength(text), length })
          tally.counts[BatchLine.outcomeName(o)] = (tally.counts[BatchLine.outcomeName(o)] ?? 0) + 1
          text += line
        }
        const bytes = encoder.encode(text)
        const at = offset
        offset += bytes.byteLength
        return Effect.tryPromise({ try: () => handle.write(bytes, 0, bytes.byteLength, at), catch: local })
      })
      const read = (entry: { offset: number; length: number }) =>
        Effect.tryPromise({
          try: async () => {
            const buffer = new Uint8Array(entry.length)
            await handle.read(buffer, 0, entry.length, entry.offset)
            return buffer
          },
          catch: local
        })
      const inInput = new Set(ids)
      const inOrder = Stream.fromIterable(ids).pipe(
        Stream.mapEffect((id) => {
          const entry = index.get(id)
          if (entry !== undefined) return read(entry)
          tally.missing.push(id)
          tally.counts.missing = (tally.counts.missing ?? 0) + 1
          return Effect.succeed(encoder.encode(`${JSON.stringify({ custom_id: id, outcome: "missing" })}\n`))
        })
      )
      const extra = Stream.fromIterable([...index.entries()].filter(([id]) => !inInput.has(id))).pipe(
        Stream.mapEffect(([, entry]) => read(entry))
      )
      return Stream.concat(inOrder, extra).pipe(
        Stream.rechunk(256),
        Stream.mapChunks((c) => Chunk.of(new Uint8Array(Buffer.concat(Chunk.toArray(c)))))
      )
    })
  )
}

/** "300 succeeded, 2 failed" for stderr. */
export const summary = (tally: Tally) =>
  Object.entries(tally.counts)
    .map(([k, n]) => `${n} ${k}`)
    .join(", ") || "no results"
