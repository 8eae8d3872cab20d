/**
 * The results file: JSONL, one line per request, with its `custom_id`, its outcome and the
 * response body or error as the API gave it. Given the input file, lines come in input order and
 * an input line with no result gets `"outcome": "missing"`; this works in memory proportional to
 * the number of requests, never to the size of the results.
 */
import { BatchLine } from "@batchkit/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import {
  closeSync,
  createReadStream,
  existsSync,
  openSync,
  readSync,
  statSync,
  unlinkSync,
  writeSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { UsageError } from "./Exit.js"
import { encoder, LocalError } from "./Output.js"

export type OutcomeName = ReturnType<typeof BatchLine.outcomeName> | "missing"

/** One line of the results file. */
export const record = BatchLine.toResultRecord

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

/** How many bytes of results one read-back gathers before handing them on. */
const windowBytes = 1 << 20

/**
 * Results as bytes in input order. The outcomes are first spooled to a temporary file as they
 * come, noting where each request's line starts (by its position in the input: two numbers a
 * request); then the lines are read back in input order, a window of about 1 MiB at a time with
 * one `pread` per line. Memory follows the number of requests, never the size of the results.
 * Results whose custom_id is not in the input follow at the end, so nothing is dropped.
 */
export const ordered = <E, R>(
  outcomes: Stream.Stream<BatchLine.Outcome, E, R>,
  ids: ReadonlyArray<string>,
  tally: Tally
): Stream.Stream<Uint8Array, E | LocalError, R> => {
  const spool = join(tmpdir(), `batchkit-results-${process.pid}-${randomBytes(4).toString("hex")}.jsonl`)
  const local = (cause: unknown) =>
    new LocalError({ message: `spool file ${spool}: ${(cause as Error).message}` })
  const acquire = Effect.try({ try: () => openSync(spool, "w+"), catch: local })
  const release = (fd: number) =>
    Effect.sync(() => {
      try {
        closeSync(fd)
      } catch {}
      try {
        unlinkSync(spool)
      } catch {}
    })
  return Stream.unwrapScoped(
    Effect.gen(function* () {
      const fd = yield* Effect.acquireRelease(acquire, release)
      const position = new Map<string, number>()
      for (let i = 0; i < ids.length; i++) position.set(ids[i]!, i)
      // where each input request's line lies in the spool; -1: no result (yet)
      const offsets = new Float64Array(ids.length)
      const lengths = new Int32Array(ids.length).fill(-1)
      const extra: Array<readonly [offset: number, length: number]> = []
      let offset = 0
      yield* Stream.runForEach(outcomes.pipe(Stream.chunks), (chunk) =>
        Effect.try({
          try: () => {
            let text = ""
            let at = offset
            for (const o of chunk) {
              const line = `${JSON.stringify(record(o))}\n`
              const length = Buffer.byteLength(line)
              const i = position.get(o.customId)
              if (i === undefined) extra.push([at, length])
              else {
                // a second result for one request is kept too, after the input's lines
                if (lengths[i] !== -1) extra.push([offsets[i]!, lengths[i]!])
                offsets[i] = at
                lengths[i] = length
              }
              const name = BatchLine.outcomeName(o)
              tally.counts[name] = (tally.counts[name] ?? 0) + 1
              text += line
              at += length
            }
            const bytes = Buffer.from(text)
            writeSync(fd, bytes, 0, bytes.byteLength, offset)
            offset += bytes.byteLength
          },
          catch: local
        })
      )
      /** Reads the lines of entries [from, to) into one buffer; missing ones are written out. */
      const gather = (from: number, to: number, entry: (k: number) => readonly [number, number] | string) => {
        const parts: Array<readonly [number, number] | Buffer> = []
        let size = 0
        for (let k = from; k < to; k++) {
          const e = entry(k)
          const part = typeof e === "string" ? Buffer.from(e) : e
          parts.push(part)
          size += typeof e === "string" ? (part as Buffer).byteLength : e[1]
        }
        const out = Buffer.allocUnsafe(size)
        let at = 0
        for (const part of parts) {
          if (Buffer.isBuffer(part)) at += part.copy(out, at)
          else at += readSync(fd, out, at, part[1], part[0])
        }
        return new Uint8Array(out.buffer, out.byteOffset, at)
      }
      const inputEntry = (k: number): readonly [number, number] | string => {
        if (lengths[k] !== -1) return [offsets[k]!, lengths[k]!]
        const id = ids[k]!
        tally.missing.push(id)
        tally.counts.missing = (tally.counts.missing ?? 0) + 1
        return `${JSON.stringify({ custom_id: id, outcome: "missing" })}\n`
      }
      /** Windows of about `windowBytes` over n entries. */
      const windows = (n: number, bytesOf: (k: number) => number) =>
        Stream.unfold(0, (from) => {
          if (from >= n) return Option.none()
          let to = from
          let size = 0
          while (to < n && (to === from || size < windowBytes)) size += bytesOf(to++)
          return Option.some([[from, to] as const, to] as const)
        })
      const inOrder = windows(ids.length, (k) => Math.max(lengths[k]!, 64)).pipe(
        Stream.mapEffect(([from, to]) =>
          Effect.try({ try: () => gather(from, to, inputEntry), catch: local })
        )
      )
      const extras = windows(extra.length, (k) => extra[k]![1]).pipe(
        Stream.mapEffect(([from, to]) =>
          Effect.try({ try: () => gather(from, to, (k) => extra[k]!), catch: local })
        )
      )
      return Stream.concat(inOrder, extras)
    })
  )
}

/** "300 succeeded, 2 failed" for stderr. */
export const summary = (tally: Tally) =>
  Object.entries(tally.counts)
    .map(([k, n]) => `${n} ${k}`)
    .join(", ") || "no results"
