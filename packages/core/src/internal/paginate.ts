import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { ResponseDecodeError } from "../BatchError.js"

/**
 * Every item across pages: the cursor is the id of the last item of a page (as the official
 * SDKs do), and the stream ends on `has_more: false` or an empty page. A server that hands back
 * a cursor it gave before would make this loop for ever, so that fails with a typed error.
 */
export const paginate = <A extends { readonly id: string }, E, R>(
  request: string,
  start: string | undefined,
  page: (
    after: string | undefined
  ) => Effect.Effect<{ readonly data: ReadonlyArray<A>; readonly has_more: boolean }, E, R>
): Stream.Stream<A, E | ResponseDecodeError, R> =>
  Stream.suspend(() => {
    const seen = new Set<string>()
    return Stream.paginateChunkEffect(start, (after) =>
      Effect.flatMap(page(after), (p) => {
        const last = p.data.at(-1)?.id
        if (!p.has_more || last === undefined) {
          return Effect.succeed([Chunk.fromIterable(p.data), Option.none<string>()] as const)
        }
        if (last === after || seen.has(last)) {
          return Effect.fail(
            new ResponseDecodeError({
              message: `the list did not advance: after=${after ?? "(start)"} gave a page ending at ${last} again with has_more: true`,
              request
            })
          )
        }
        seen.add(last)
        return Effect.succeed([Chunk.fromIterable(p.data), Option.some(last)] as const)
      })
    )
  })
