/** Exit codes, and the one line on stderr that reports an error. */
import type { BatchError } from "@batchkit/core"
import * as Data from "effect/Data"

export const exitCodes = { ok: 0, apiOrNetwork: 1, usage: 2, batchEndedBadly: 3 } as const

/** Bad usage or bad input, found before any request: exit 2. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

type Reportable =
  | BatchError.BatchError
  | UsageError
  | {
      readonly _tag: "LocalError" | "ListenError" | "SqlError" | "EngineBusy" | "StateError"
      readonly message: string
    }
  | { readonly _tag: "JobNotFound" | "JobNotFinished"; readonly message: string }

/** What went wrong, in a few words (status, type, code and message; or the error's kind). */
export const describeError = (error: Reportable): string => report(error, false).line.replace(/^error: /, "")

/**
 * The exit code, and the line for stderr: readable (status, type, code, message, request id) or,
 * with `--json`, a JSON object in the API's error shape.
 */
export const report = (
  error: Reportable,
  json: boolean
): { readonly code: number; readonly line: string } => {
  if (
    error._tag === "UsageError" ||
    error._tag === "InvalidRequest" ||
    error._tag === "JobNotFound" ||
    error._tag === "JobNotFinished"
  ) {
    const param = error._tag === "InvalidRequest" ? error.field : null
    return {
      code: exitCodes.usage,
      line: json
        ? JSON.stringify({ error: { message: error.message, type: "invalid_usage", param, code: null } })
        : `error: ${error.message}`
    }
  }
  if ("status" in error) {
    const requestId = error.requestId ?? null
    if (json) {
      const body = {
        message: error.message,
        type: error.type ?? null,
        param: error.param ?? null,
        code: error.code ?? null
      }
      return {
        code: exitCodes.apiOrNetwork,
        line: JSON.stringify({ error: body, status: error.status, request_id: requestId })
      }
    }
    const head = [String(error.status), error.type, error.code ? `(${error.code})` : undefined]
      .filter(Boolean)
      .join(" ")
    return {
      code: exitCodes.apiOrNetwork,
      line: `error: ${head}: ${error.message}${requestId ? ` [request id ${requestId}]` : ""}`
    }
  }
  const kind = error._tag === "TransportError" ? `${error._tag} (${error.reason})` : error._tag
  // the database's own words ("relation … does not exist"), not only "Failed to execute statement"
  const cause = error._tag === "SqlError" ? (error as { readonly cause?: unknown }).cause : undefined
  const detail = cause instanceof Error && cause.message !== "" ? ` (${cause.message})` : ""
  return {
    code: exitCodes.apiOrNetwork,
    line: json
      ? JSON.stringify({ error: { message: error.message, type: error._tag, param: null, code: null } })
      : `error: ${kind}: ${error.message}${detail}`
  }
}
