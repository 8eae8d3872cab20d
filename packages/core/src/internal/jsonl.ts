import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"

/**
 * Splits a byte stream into lines and hands each non-blank line to `onLine` with its 1-based
 * line number. The work per chunk is synchronous (an effect per line would cost 8× the time);
 * `onLine` returns the value to emit, `undefined` to emit nothing, or throws a `LineFailure`
 * to fail the stream with its error. Memory is bounded by the longest line, never the file.
 *
 * Lines are found in the bytes (a `\n` byte is never part of a multi-byte UTF-8 character) and
 * each is decoded on its own: no chunk-sized string is built, concatenated or sliced, which
 * makes this faster than `TextDecoder` + `split("\n")` over the chunk text.
 */
export class LineFailure<E> {
  constructor(readonly error: E) {}
}

const NL = 10
const CR = 13
const OPEN_BRACE = 123

export interface LineOptions {
  /**
   * Hand every line to `onLine` as it is: blank lines and a byte order mark included, and a line
   * that is not valid UTF-8 to `onInvalidUtf8` instead. For validating input files, where each of
   * these is something the API refuses. Default: skip blank lines, drop a BOM, decode leniently.
   */
  readonly strict?: boolean | undefined
  readonly onInvalidUtf8?: ((line: number) => void) | undefined
}

export const lines = <A, E, R, E2>(
  bytes: Stream.Stream<Uint8Array, E, R>,
  /** `bytes`: the line's length in the input, its line end included. */
  onLine: (text: string, line: number, bytes: number) => A | undefined,
  options?: LineOptions
): Stream.Stream<A, E | E2, R> =>
  Stream.suspend(() => {
    const strict = options?.strict === true
    // the start of a line that runs past the end of its chunk
    let pending: Array<Uint8Array> = []
    let pendingBytes = 0
    let lineNo = 0

    const emit = (line: Uint8Array, out: Array<A>) => {
      lineNo++
      let end = line.length
      if (end > 0 && line[end - 1] === CR) end--
      if (strict) {
        let text: string
        try {
          text = fatal.decode(line.subarray(0, end))
        } catch {
          options?.onInvalidUtf8?.(lineNo)
          return
        }
        const value = onLine(text, lineNo, line.length + 1)
        if (value !== undefined) out.push(value)
        return
      }
      if (end === 0) return
      // only the file's first line may start with a byte order mark, which is dropped
      const text = (lineNo === 1 ? dropBom : keepBom).decode(line.subarray(0, end))
      // a line of JSON starts with "{"; only otherwise is it worth asking whether it is blank
      if (line[0] !== OPEN_BRACE && text.trim() === "") return
      const value = onLine(text, lineNo, line.length + 1)
      if (value !== undefined) out.push(value)
    }

    /**
     * The whole lines in `chunk` from `start` to the `\n` at `last`, decoded in one call: a
     * decode per line costs more than the lines' own work. A run that is not valid UTF-8 (when
     * strict) goes line by line, so that the line is named.
     */
    const emitRun = (chunk: Uint8Array, start: number, last: number, out: Array<A>) => {
      let text: string
      try {
        text = (strict ? fatal : keepBom).decode(chunk.subarray(start, last))
      } catch {
        let nl = chunk.indexOf(NL, start)
        while (nl !== -1 && nl <= last) {
          emit(chunk.subarray(start, nl), out)
          start = nl + 1
          nl = chunk.indexOf(NL, start)
        }
        return
      }
      let from = 0
      let at = start
      for (;;) {
        const cut = text.indexOf("\n", from)
        const end = cut === -1 ? text.length : cut
        const nl = cut === -1 ? last : chunk.indexOf(NL, at)
        lineNo++
        // the line's bytes with its end: up to and with its `\n`
        const bytes = nl - at + 1
        const line =
          end > from && text.charCodeAt(end - 1) === CR ? text.slice(from, end - 1) : text.slice(from, end)
        if (strict || (line.length > 0 && (line.charCodeAt(0) === OPEN_BRACE || line.trim() !== ""))) {
          const value = onLine(line, lineNo, bytes)
          if (value !== undefined) out.push(value)
        }
        if (cut === -1) return
        from = cut + 1
        at = nl + 1
      }
    }

    const take = (chunk: Uint8Array, out: Array<A>) => {
      let start = 0
      let nl = chunk.indexOf(NL)
      if (nl !== -1 && pendingBytes > 0) {
        pending.push(chunk.subarray(0, nl))
        emit(concat(pending, pendingBytes + nl), out)
        pending = []
        pendingBytes = 0
        start = nl + 1
        nl = chunk.indexOf(NL, start)
      }
      // the file's first line on its own: a byte order mark there is the decoder's to drop
      if (nl !== -1 && lineNo === 0) {
        emit(chunk.subarray(start, nl), out)
        start = nl + 1
        nl = chunk.indexOf(NL, start)
      }
      if (nl !== -1) {
        const last = chunk.lastIndexOf(NL)
        emitRun(chunk, start, last, out)
        start = last + 1
      }
      if (start < chunk.length) {
        // copied (a Buffer's own slice would not copy): the source may reuse its buffer
        pending.push(Uint8Array.prototype.slice.call(chunk, start))
        pendingBytes += chunk.length - start
      }
    }

    // Stream.mapChunks, not mapChunksEffect: an effect per chunk links each chunk's values to
    // the next until a full GC, so a 200 MB file promoted ~100 MB of dead outcomes to the old
    // space. A failing line's error is kept here: the values before it are emitted, the input
    // stops at its next chunk, and the stream fails where the flush would run.
    let failure: { readonly error: E2 } | undefined
    const run = (f: (out: Array<A>) => void): Chunk.Chunk<A> => {
      const out: Array<A> = []
      try {
        f(out)
      } catch (e) {
        // the lines before the failing one are still delivered
        if (e instanceof LineFailure) failure = { error: e.error as E2 }
        else throw e
      }
      return Chunk.unsafeFromArray(out)
    }
    const body = bytes.pipe(
      Stream.takeWhile(() => failure === undefined),
      Stream.mapChunks((chunk) =>
        run((out) => {
          for (const bytes of chunk) take(bytes, out)
        })
      )
    )
    const flush = Stream.suspend(() => {
      const last =
        failure === undefined && pendingBytes > 0
          ? run((out) => emit(concat(pending, pendingBytes), out))
          : Chunk.empty<A>()
      pending = []
      pendingBytes = 0
      return failure !== undefined ? Stream.fail(failure.error) : Stream.fromChunk(last)
    })
    return Stream.concat(body, flush)
  })

// shared: a decode call without `stream` keeps no state between lines
const dropBom = new TextDecoder("utf-8", { fatal: false })
const keepBom = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true })
const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

const concat = (parts: ReadonlyArray<Uint8Array>, length: number): Uint8Array => {
  if (parts.length === 1) return parts[0] as Uint8Array
  const out = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}
