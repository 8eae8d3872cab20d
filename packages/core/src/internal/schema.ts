import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { type InvalidRequest, invalid } from "../BatchError.js"

/** A field the API may send as a value, as `null`, or not at all. */
export const optionalNullable = <S extends Schema.Schema.Any>(schema: S) =>
  Schema.optional(Schema.NullOr(schema))

/**
 * Decodes caller-supplied parameters; the first problem becomes an `InvalidRequest` naming the
 * field (its path joined with dots, prefixed by `root` when given).
 */
export const decodeParams =
  <A, I>(schema: Schema.Schema<A, I>, root?: string) =>
  (input: unknown): Effect.Effect<A, InvalidRequest> => {
    const result = Schema.decodeUnknownEither(schema, { errors: "first", onExcessProperty: "ignore" })(input)
    if (Either.isRight(result)) return Effect.succeed(result.right)
    const [issue] = ParseResult.ArrayFormatter.formatErrorSync(result.left)
    const path = [root, ...(issue?.path ?? []).map(String)].filter((p) => p !== undefined && p !== "")
    return Effect.fail(invalid(path.join(".") || "params", issue?.message ?? "is invalid"))
  }

const idPattern = /^[A-Za-z0-9_-]+$/

/** Checks an id bound for a URL path against `ResourceId` (passed in); a valid one skips the schema. */
export const checkId = (resourceId: Schema.Schema<string>, field: string) => {
  const decode = decodeParams(resourceId, field)
  return (id: unknown): Effect.Effect<string, InvalidRequest> =>
    typeof id === "string" && idPattern.test(id) ? Effect.succeed(id) : decode(id)
}
