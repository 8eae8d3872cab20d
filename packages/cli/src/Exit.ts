/** Exit codes and the one-line error report of the CLI contract. */
import type { BatchError } from "@batchkit/core"
import * as Data from "effect/Data"

export const exitCodes = { ok: 0, apiOrNetwork: 1, usage: 2, batchEndedBadly: 3 } as const

/** Bad usage found before any request: exit 2. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** The exit code and the line for stderr for an error that ended a command. */
export const report = (
  error: BatchError.BatchError | UsageError | { readonly _tag: "ListenError"; readonly message: string },
  json: boolean
): { code: number; line: string } => {
  if (error._tag === "ListenError") {
    const line = json
      ? JSON.stringify({ error: { type: "listen", message: error.message } })
      : `error: ${error.message}`
    return { code: exitCodes.apiOrNetwork, line }
  }
  if (error._tag === "UsageError" || error._tag === "InvalidRequest") {
    return {
      code: exitCodes.usage,
      line: json
        ? JSON.stringify({
            error: {
              type: "usage",
              message: error.message,
              ...("field" in error ? { param: error.field } : {})
            }
          })
        : `error: ${error.message}`
    }
  }
  if (json) {
    const body =
      "status" in error
        ? {
            status: error.status,
            message: error.message,
            type: error.type ?? null,
            code: error.code ?? null,
            param: error.param ?? null,
            request_id: error.requestId ?? null
          }
        : { message: error.message, type: error._tag, code: "reason" in error ? error.reason : null }
    return { code: exitCodes.apiOrNetwork, line: JSON.stringify({ error: body }) }
  }
  if ("status" in error) {
    const parts = [`${error.status}`, error.type, error.code ? `code ${error.code}` : undefined]
      .filter(Boolean)
      .join(" ")
    return {
      code: exitCodes.apiOrNetwork,
      line: `error: ${parts}: ${error.message}${error.requestId ? ` (request id ${error.requestId})` : ""}`
    }
  }
  return { code: exitCodes.apiOrNetwork, line: `error: ${error._tag}: ${error.message}` }
}
