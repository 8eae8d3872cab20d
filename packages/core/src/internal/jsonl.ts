import { Chunk, Effect, Stream } from "effect"

/**
 * Splits a byte stream into lines and hands each non-blank line to `onLine` with its 1-based
 * line number. The work per chunk is synchronous (an effect per line would cost 8× the time);
 * `onLine` returns the value to emit, `undefined` to emit nothing, or throws a `LineFailure`
 * to fail the stream with its error. Memory is bounded by the longest line, never the file.
 */
export class LineFailure<E> {
  constructor(readonly error: E) {}
}

export const lines = <A, E, R, E2>(
  bytes: Stream.Stream<Uint8Array, E, R>,
  onLine: (text: string, line: number) => A | undefined
): Stream.Stream<A, E | E2, R> =>
  Stream.suspend(() => {
    const decoder = new TextDecoder("utf-8", { fatal: false })
    let rest = ""
    let lineNo = 0
    const take = (text: string, out: Array<A>) => {
      let start = 0
      let nl = text.indexOf("\n", start)
      while (nl !== -1) {
        emit(text.slice(start, nl), out)
        start = nl + 1
        nl = text.indexOf("\n", start)
      }
      return text.slice(start)
    }
    const emit = (raw: string, out: Array<A>) => {
      lineNo++
      const line = raw.charCodeAt(raw.length - 1) === 13 ? raw.slice(0, -1) : raw
      // a line of JSON starts with "{"; only otherwise is it worth asking whether it is blank
      if (line.charCodeAt(0) !== 123 && line.trim() === "") return
      const value = onLine(line, lineNo)
      if (value !== undefined) out.push(value)
    }
    const run = (f: (out: Array<A>) => void): Effect.Effect<Chunk.Chunk<A>, E2> => {
      const out: Array<A> = []
      try {
        f(out)
      } catch (e) {
        if (e instanceof LineFailure) return Effect.fail(e.error as E2)
        throw e
      }
      return Effect.succeed(Chunk.unsafeFromArray(out))
    }
    const body = bytes.pipe(
      Stream.mapChunksEffect((chunk) =>
        run((out) => {
          for (const bytes of chunk) rest = take(rest + decoder.decode(bytes, { stream: true }), out)
        })
      )
    )
    const flush = Stream.flatMap(
      Stream.fromEffect(
        Effect.suspend(() =>
          run((out) => {
            const last = rest + decoder.decode()
            rest = ""
            if (last !== "") emit(last, out)
          })
        )
      ),
      Stream.fromChunk
    )
    return Stream.concat(body, flush)
  })
