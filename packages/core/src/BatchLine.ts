/**
 * The JSONL lines of the Batch API: the input line, the output/error line, and the typed outcome
 * of each request. Decoding and encoding work on byte `Stream`s in constant memory.
 *
 * A per-request HTTP failure sits in the error file with `error: null` and the API's error in
 * `response.body.error`; a request the batch never ran (expired, cancelled) has `response: null`
 * and an `error` of its own. {@link toOutcome} folds both shapes into one tagged union.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Provider from "./Provider.js"
import * as Stream from "effect/Stream"
import { KnownEndpoint } from "./Batch.js"
import { ResponseDecodeError } from "./BatchError.js"
import { LineFailure, lines } from "./internal/jsonl.js"
import { optionalNullable } from "./internal/schema.js"

/**
 * One request of an input file.
 *
 * @since 0.1.0
 * @category schemas
 */
export const InputLine = Schema.Struct({
  custom_id: Schema.String.pipe(Schema.nonEmptyString({ message: () => "custom_id must not be empty" })),
  method: Schema.Literal("POST"),
  url: Schema.String,
  body: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})

/**
 * @since 0.1.0
 * @category models
 */
export type InputLine = typeof InputLine.Type

/**
 * The error body of a failed request, as the endpoint returned it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ErrorBody = Schema.Struct({
  message: Schema.String,
  type: optionalNullable(Schema.String),
  param: optionalNullable(Schema.String),
  code: optionalNullable(Schema.String)
})

/**
 * @since 0.1.0
 * @category models
 */
export type ErrorBody = typeof ErrorBody.Type

/**
 * One line of an output or error file.
 *
 * @since 0.1.0
 * @category schemas
 */
export const OutputLine = Schema.Struct({
  id: optionalNullable(Schema.String),
  custom_id: Schema.String,
  response: optionalNullable(
    Schema.Struct({
      status_code: Schema.Number,
      request_id: optionalNullable(Schema.String),
      body: Schema.optional(Schema.Unknown)
    })
  ),
  error: optionalNullable(
    Schema.Struct({
      code: optionalNullable(Schema.String),
      message: optionalNullable(Schema.String)
    })
  )
})

/**
 * @since 0.1.0
 * @category models
 */
export type OutputLine = typeof OutputLine.Type

/**
 * The request ran and the endpoint answered 2xx; `body` is its answer.
 *
 * @since 0.1.0
 * @category outcomes
 */
export class Succeeded extends Schema.TaggedClass<Succeeded>("@batchkit/core/Succeeded")("Succeeded", {
  customId: Schema.String,
  statusCode: Schema.Number,
  requestId: Schema.optional(Schema.String),
  body: Schema.Unknown,
  line: OutputLine
}) {}

/**
 * The request ran and the endpoint answered with an HTTP error; `error` is the endpoint's
 * `{ message, type, param, code }` when its body had one.
 *
 * @since 0.1.0
 * @category outcomes
 */
export class Failed extends Schema.TaggedClass<Failed>("@batchkit/core/Failed")("Failed", {
  customId: Schema.String,
  statusCode: Schema.Number,
  requestId: Schema.optional(Schema.String),
  error: Schema.optional(ErrorBody),
  body: Schema.Unknown,
  line: OutputLine
}) {}

/**
 * The batch's 24 h window closed before the request ran (`batch_expired`).
 *
 * @since 0.1.0
 * @category outcomes
 */
export class Expired extends Schema.TaggedClass<Expired>("@batchkit/core/Expired")("Expired", {
  customId: Schema.String,
  message: Schema.String,
  line: OutputLine
}) {}

/**
 * The batch was cancelled before the request ran (`batch_cancelled`).
 *
 * @since 0.1.0
 * @category outcomes
 */
export class Cancelled extends Schema.TaggedClass<Cancelled>("@batchkit/core/Cancelled")("Cancelled", {
  customId: Schema.String,
  message: Schema.String,
  line: OutputLine
}) {}

/**
 * The batch did not run the request for another reason, named by `code`.
 *
 * @since 0.1.0
 * @category outcomes
 */
export class Errored extends Schema.TaggedClass<Errored>("@batchkit/core/Errored")("Errored", {
  customId: Schema.String,
  code: Schema.String,
  message: Schema.String,
  line: OutputLine
}) {}

/**
 * What became of one request.
 *
 * @since 0.1.0
 * @category outcomes
 */
export type Outcome = Succeeded | Failed | Expired | Cancelled | Errored

/**
 * The outcome's name in results files: `succeeded`, `failed`, `expired`, `cancelled`, `errored`.
 *
 * @since 0.1.0
 * @category outcomes
 */
export const outcomeName = (
  outcome: Outcome
): "succeeded" | "failed" | "expired" | "cancelled" | "errored" => {
  switch (outcome._tag) {
    case "Succeeded":
      return "succeeded"
    case "Failed":
      return "failed"
    case "Expired":
      return "expired"
    case "Cancelled":
      return "cancelled"
    case "Errored":
      return "errored"
  }
}

/**
 * One line of a results file, as `batchkit results` (and a job) writes it: the request's
 * `custom_id`, its outcome, and what the API gave for it (the response body with its status and
 * request id, or the error).
 *
 * @since 0.2.0
 * @category outcomes
 */
export type ResultRecord =
  | {
      readonly custom_id: string
      readonly outcome: "succeeded"
      readonly status_code: number
      readonly request_id: string | null
      readonly response: unknown
    }
  | {
      readonly custom_id: string
      readonly outcome: "failed"
      readonly status_code: number
      readonly request_id: string | null
      readonly error: ErrorBody | null
      readonly response: unknown
    }
  | {
      readonly custom_id: string
      readonly outcome: "expired" | "cancelled" | "errored"
      readonly error: OutputLine["error"] | null
    }

/**
 * The results-file line of an outcome.
 *
 * @since 0.2.0
 * @category outcomes
 */
export const toResultRecord = (o: Outcome): ResultRecord => {
  switch (o._tag) {
    case "Succeeded":
      return {
        custom_id: o.customId,
        outcome: "succeeded",
        status_code: o.statusCode,
        request_id: o.requestId ?? null,
        response: o.body
      }
    case "Failed":
      return {
        custom_id: o.customId,
        outcome: "failed",
        status_code: o.statusCode,
        request_id: o.requestId ?? null,
        error: o.error ?? null,
        response: o.body
      }
    default:
      return {
        custom_id: o.customId,
        outcome: outcomeName(o) as "expired" | "cancelled" | "errored",
        error: o.line.error ?? null
      }
  }
}

const decodeErrorBody = Schema.decodeUnknownOption(Schema.Struct({ error: ErrorBody }))

/**
 * Folds one output or error line into its outcome.
 *
 * @since 0.1.0
 * @category outcomes
 */
export const toOutcome = (line: OutputLine): Outcome => {
  const customId = line.custom_id
  if (line.error != null) {
    const code = line.error.code ?? "unknown"
    const message = line.error.message ?? ""
    if (code === "batch_expired") return outcome(Expired, { _tag: "Expired", customId, message, line })
    if (code === "batch_cancelled") return outcome(Cancelled, { _tag: "Cancelled", customId, message, line })
    return outcome(Errored, { _tag: "Errored", customId, code, message, line })
  }
  const response = line.response
  if (response == null) {
    const message = "the line has neither a response nor an error"
    return outcome(Errored, { _tag: "Errored", customId, code: "unknown", message, line })
  }
  const ok = response.status_code >= 200 && response.status_code < 300
  const fields: Record<string, unknown> = {
    _tag: ok ? "Succeeded" : "Failed",
    customId,
    statusCode: response.status_code,
    body: response.body,
    line
  }
  if (response.request_id != null) fields.requestId = response.request_id
  if (ok) return outcome(Succeeded, fields)
  const error = decodeErrorBody(response.body)
  if (error._tag === "Some") fields.error = error.value.error
  return outcome(Failed, fields)
}

/**
 * An outcome from fields known to be valid: the class constructor with `disableValidation`
 * still merges defaults field by field, which cost more than parsing the line itself.
 */
const outcome = <A>(klass: { readonly prototype: A }, fields: object): A =>
  Object.setPrototypeOf(fields, klass.prototype as object)

const decodeOutputLine = Schema.decodeUnknownEither(OutputLine)

const optString = (u: unknown) => u == null || typeof u === "string"

/** The shape {@link OutputLine} accepts, checked without ParseResult (8× faster per line). */
const outputLineOk = (u: unknown): u is OutputLine => {
  if (typeof u !== "object" || u === null) return false
  const line = u as Record<string, unknown>
  if (typeof line.custom_id !== "string" || !optString(line.id)) return false
  const response = line.response as Record<string, unknown> | null | undefined
  if (
    response != null &&
    (typeof response !== "object" ||
      typeof response.status_code !== "number" ||
      !optString(response.request_id))
  ) {
    return false
  }
  const error = line.error as Record<string, unknown> | null | undefined
  return error == null || (typeof error === "object" && optString(error.code) && optString(error.message))
}

/**
 * Decodes the bytes of an output or error file into outcomes, line by line, in constant memory.
 * A line that is not JSON or not an output line fails the stream with a `ResponseDecodeError`
 * naming `source` and the line number.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeOutcomes =
  (source: string) =>
  <E, R>(bytes: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Outcome, E | ResponseDecodeError, R> =>
    lines<Outcome, E, R, ResponseDecodeError>(bytes, (text, line) => {
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch (e) {
        throw new LineFailure(
          new ResponseDecodeError({
            message: `line ${line} is not JSON: ${(e as Error).message}`,
            request: `${source}:${line}`
          })
        )
      }
      // the common, valid shape is checked by hand; anything else gets the full decode and its message
      if (outputLineOk(json)) return toOutcome(json)
      const decoded = decodeOutputLine(json)
      if (Either.isLeft(decoded)) {
        throw new LineFailure(
          new ResponseDecodeError({
            message: `line ${line} is not a batch output line: ${ParseResult.TreeFormatter.formatErrorSync(decoded.left)}`,
            request: `${source}:${line}`
          })
        )
      }
      return toOutcome(decoded.right)
    })

const encoder = new TextEncoder()

/**
 * Encodes values as JSONL bytes, one `JSON.stringify` line each.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeLines = <A, E, R>(values: Stream.Stream<A, E, R>): Stream.Stream<Uint8Array, E, R> =>
  Stream.mapChunks(values, (chunk) => {
    let text = ""
    for (const value of chunk) text += `${JSON.stringify(value)}\n`
    return text === "" ? Chunk.empty<Uint8Array>() : Chunk.of(encoder.encode(text))
  })

/**
 * The tokens one answer used, from its body's `usage` in any of the API's shapes (chat
 * completions' `prompt_tokens` / `completion_tokens` with their details, responses'
 * `input_tokens` / `output_tokens`, embeddings' `prompt_tokens`).
 *
 * @since 0.2.0
 * @category outcomes
 */
export interface TokenUsage {
  readonly input: number
  readonly cached: number
  readonly output: number
  readonly reasoning: number
}

const count = (u: unknown): number => (typeof u === "number" && Number.isFinite(u) ? u : 0)

/**
 * The {@link TokenUsage} of a response body; zeros when it has no `usage`.
 *
 * @since 0.2.0
 * @category outcomes
 */
export const tokenUsage = (body: unknown): TokenUsage => {
  const usage = (body as { usage?: Record<string, unknown> } | null | undefined)?.usage
  if (usage == null || typeof usage !== "object") return { input: 0, cached: 0, output: 0, reasoning: 0 }
  const inputDetails = (usage.prompt_tokens_details ?? usage.input_tokens_details) as
    | Record<string, unknown>
    | undefined
  const outputDetails = (usage.completion_tokens_details ?? usage.output_tokens_details) as
    | Record<string, unknown>
    | undefined
  return {
    input: count(usage.prompt_tokens ?? usage.input_tokens),
    cached: count(inputDetails?.cached_tokens),
    output: count(usage.completion_tokens ?? usage.output_tokens),
    reasoning: count(outputDetails?.reasoning_tokens)
  }
}

/**
 * An estimate of the tokens a request puts in the queue (what the API's enqueued-token limits
 * count): the characters of its `body` as JSON / 4, plus the output it may produce
 * (`max_tokens`, `max_completion_tokens` or `max_output_tokens`). Given the `line` it was read
 * from, the body's characters are counted off the line (no re-encoding). It is an estimate, not
 * the API's count; jobs take another in its place.
 *
 * @since 0.2.0
 * @category validation
 */
export const estimateTokens = (request: InputLine, line?: string): number => {
  const body = request.body
  // given the line as written, its body is the line less the rest: exact for a compact line
  // (`{"custom_id":…,"method":"POST","url":…,"body":…}`), a little more for a spaced one
  const chars =
    line === undefined
      ? JSON.stringify(body).length
      : Math.max(2, line.length - 49 - request.custom_id.length - request.url.length)
  const max = body.max_tokens ?? body.max_completion_tokens ?? body.max_output_tokens
  return Math.ceil(chars / 4) + (typeof max === "number" && max > 0 ? max : 0)
}

/**
 * How many inputs an `/v1/embeddings` request embeds (its `input` array's length, else 1): the
 * API caps a batch at 50,000 of them.
 *
 * @since 0.2.0
 * @category validation
 */
export const embeddingInputs = (request: InputLine): number =>
  Array.isArray(request.body.input) ? request.body.input.length : 1

/**
 * The limits the API puts on one input file.
 *
 * @since 0.1.0
 * @category constants
 */
export const inputLimits = { lines: 50_000, bytes: 200 * 1024 * 1024, embeddingInputs: 50_000 } as const

/**
 * One problem found in an input file: the API's code for it (or, for what the API refuses at
 * upload or at create, a code of ours), a message, and the line.
 *
 * @since 0.1.0
 * @category validation
 */
export interface InputProblem {
  readonly line: number | null
  readonly code:
    | "invalid_json_line"
    | "invalid_line"
    | "invalid_encoding"
    | "duplicate_custom_id"
    | "url_mismatch"
    | "model_mismatch"
    | "empty_file"
    | "too_many_tasks"
    | "file_too_large"
    | "unknown_endpoint"
  readonly message: string
}

/**
 * What local validation found in an input file.
 *
 * @since 0.1.0
 * @category validation
 */
export interface InputSummary {
  readonly lines: number
  readonly bytes: number
  readonly endpoint: string | undefined
  readonly model: string | undefined
  /** The first `maxProblems` problems, in line order. */
  readonly problems: ReadonlyArray<InputProblem>
  /** How many problems there were in all. */
  readonly problemCount: number
  /** Every distinct `custom_id`, in input order: what results are joined on. */
  readonly customIds: ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category validation
 */
export interface ValidateOptions {
  /** The batch's endpoint. Default: the first line's `url`. */
  readonly endpoint?: string | undefined
  /**
   * The endpoints a batch may have. Default: every endpoint the API documents
   * (`Batch.KnownEndpoint`); `"any"` skips the check.
   */
  readonly endpoints?: ReadonlyArray<string> | "any" | undefined
  /**
   * Whose endpoints and limits apply (requests and bytes per batch); default OpenAI's.
   * `endpoints`, when given, wins over the provider's.
   */
  readonly provider?: Provider.Profile | undefined
  /** How many problems to keep (all are counted). Default 100. */
  readonly maxProblems?: number | undefined
}

const decodeInputLine = Schema.decodeUnknownEither(InputLine)

/** The shape {@link InputLine} accepts, checked without ParseResult; anything else gets the schema's message. */
const inputLineOk = (u: unknown): u is InputLine => {
  if (typeof u !== "object" || u === null) return false
  const line = u as Record<string, unknown>
  const body = line.body
  return (
    typeof line.custom_id === "string" &&
    line.custom_id !== "" &&
    line.method === "POST" &&
    typeof line.url === "string" &&
    typeof body === "object" &&
    body !== null &&
    !Array.isArray(body)
  )
}

const BOM = "\uFEFF"

/**
 * The endpoint a `url` likely meant, when it is one: `/chat/completions` → `/v1/chat/completions`
 * for OpenAI, `/v1/chat/completions` → `/chat/completions` for Azure.
 *
 * @since 0.4.0
 * @category validation
 */
export const likelyEndpoint = (url: string, endpoints: ReadonlyArray<string>): string | undefined => {
  const path = `/${url.replace(/^\/+/, "")}`
  return [`/v1${path}`, path.replace(/^\/v\d+\//, "/v1/"), path.replace(/^\/v\d+\//, "/")].find(
    (e) => e !== url && endpoints.includes(e)
  )
}

/**
 * One request line of an input file, as `scanInput` found it.
 *
 * @since 0.2.0
 * @category validation
 */
export interface ScannedLine {
  /** 1-based. */
  readonly line: number
  /** The line as written (without its line end). */
  readonly text: string
  readonly request: InputLine
  /** Its length in the file, line end included. */
  readonly bytes: number
}

/**
 * What an endpoint check says of a `url` the API would not take, with the likely one named
 * (`/chat/completions` → "did you mean /v1/chat/completions?").
 *
 * @since 0.2.0
 * @category validation
 */
export const unknownEndpoint = (
  url: string,
  line: number | null,
  endpoints: ReadonlyArray<string> = KnownEndpoint.literals,
  provider?: string
): InputProblem => {
  const hint = likelyEndpoint(url, endpoints)
  return {
    line,
    code: "unknown_endpoint",
    message: `${line === null ? "endpoint" : "url"} ${url} is not a batch endpoint${provider ? ` of ${provider}` : ""}${hint ? ` (did you mean ${hint}?)` : ""}; batches take ${endpoints.join(", ")}`
  }
}

/**
 * The line-by-line checks of an input file, streamed: each line must be UTF-8 and one JSON
 * request (`custom_id`, `method: "POST"`, `url`, `body`), with no blank line and no byte order
 * mark. Good lines go to `onRequest`, problems to `onProblem`, synchronously, as the bytes
 * arrive; what to make of the requests (one endpoint and model per batch, unique ids, limits) is
 * the caller's. Gives the number of lines and bytes read. (To do work of your own between
 * chunks, `Stream.tap` the bytes you hand it.)
 *
 * @since 0.2.0
 * @category validation
 */
export const scanInput = <E, R>(
  bytes: Stream.Stream<Uint8Array, E, R>,
  handlers: {
    readonly onRequest: (line: ScannedLine) => void
    readonly onProblem: (problem: InputProblem) => void
  }
): Effect.Effect<{ readonly lines: number; readonly bytes: number }, E, R> =>
  Effect.suspend(() => {
    const report = handlers.onProblem
    let count = 0
    let size = 0
    const counted = Stream.tap(bytes, (chunk) =>
      Effect.sync(() => {
        size += chunk.byteLength
      })
    )
    const onLine = (text: string, line: number, length: number): undefined => {
      count++
      if (line === 1 && text.startsWith(BOM)) {
        report({
          line,
          code: "invalid_json_line",
          message:
            "the file starts with a UTF-8 byte order mark (BOM), which the API reads as invalid JSON; save it as UTF-8 without BOM"
        })
        return
      }
      // a request line starts with "{"; only otherwise is it worth asking whether it is blank
      if (text.charCodeAt(0) !== 123 && text.trim() === "") {
        // not a request: a file of blank lines is an empty file too
        count--
        report({
          line,
          code: "invalid_json_line",
          message: "blank line: the API takes one request on every line"
        })
        return
      }
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch (e) {
        report({ line, code: "invalid_json_line", message: `not valid JSON: ${(e as Error).message}` })
        return
      }
      if (inputLineOk(json)) {
        handlers.onRequest({ line, text, request: json, bytes: length })
        return
      }
      const decoded = decodeInputLine(json)
      if (Either.isLeft(decoded)) {
        const [issue] = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
        const where = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : ""
        report({
          line,
          code: "invalid_line",
          message: `${where}${issue?.message ?? "not a batch request line"}`
        })
        return
      }
      handlers.onRequest({ line, text, request: decoded.right, bytes: length })
    }
    const checked = lines<undefined, E, R, never>(counted, onLine, {
      strict: true,
      onInvalidUtf8: (line) => {
        count++
        report({
          line,
          code: "invalid_encoding",
          message: "not valid UTF-8: the API refuses a batch file that is not UTF-8 encoded"
        })
      }
    })
    return Effect.map(Stream.runDrain(checked), () => ({ lines: count, bytes: size }))
  })

/**
 * Checks an input file as the API will, without sending it: UTF-8, one JSON request per line (no
 * blank lines, no byte order mark), unique `custom_id`, an endpoint the API takes and every `url`
 * equal to it, one model, at most 50,000 lines and 200 MB. Line ends may be `\n` or `\r\n`.
 * Runs in memory proportional to the number of `custom_id`s, never the file.
 *
 * @since 0.1.0
 * @category validation
 */
export const validateInput = <E, R>(
  bytes: Stream.Stream<Uint8Array, E, R>,
  options?: ValidateOptions
): Effect.Effect<InputSummary, E, R> =>
  Effect.suspend(() => {
    const maxProblems = options?.maxProblems ?? 100
    const provider = options?.provider
    const accepted =
      options?.endpoints ?? provider?.limits.endpoints ?? (KnownEndpoint.literals as ReadonlyArray<string>)
    const maxLines = provider?.limits.requests ?? inputLimits.lines
    const maxBytes = provider?.limits.bytes ?? inputLimits.bytes
    const of = provider !== undefined ? ` of ${provider.name}` : ""
    const problems: Array<InputProblem> = []
    let problemCount = 0
    const report = (problem: InputProblem) => {
      problemCount++
      if (problems.length < maxProblems) problems.push(problem)
    }
    const ids = new Map<string, number>()
    const order: Array<string> = []
    let endpoint: string | undefined
    let model: string | undefined
    let modelLine = 0
    /** Sets the batch's endpoint, reporting it when the API would not take it. */
    const useEndpoint = (url: string, line: number | null) => {
      endpoint = url
      if (accepted !== "any" && !accepted.includes(url))
        report(unknownEndpoint(url, line, accepted, provider?.name))
    }
    if (options?.endpoint !== undefined) useEndpoint(options.endpoint, null)
    const onRequest = ({ line, request }: ScannedLine) => {
      const first = ids.get(request.custom_id)
      if (first !== undefined) {
        report({
          line,
          code: "duplicate_custom_id",
          message: `custom_id ${JSON.stringify(request.custom_id)} is used more than once (first on line ${first})`
        })
      } else {
        ids.set(request.custom_id, line)
        order.push(request.custom_id)
      }
      if (endpoint === undefined) useEndpoint(request.url, line)
      else if (request.url !== endpoint) {
        report({
          line,
          code: "url_mismatch",
          message: `url ${request.url} differs from the endpoint ${endpoint}`
        })
      }
      const lineModel = request.body.model
      if (typeof lineModel === "string") {
        if (model === undefined) {
          model = lineModel
          modelLine = line
        } else if (lineModel !== model) {
          report({
            line,
            code: "model_mismatch",
            message: `model ${lineModel} differs from ${model} (line ${modelLine}); a batch uses one model`
          })
        }
      }
    }
    return scanInput(bytes, { onRequest, onProblem: report }).pipe(
      Effect.map(({ lines: count, bytes: size }): InputSummary => {
        if (count === 0) report({ line: null, code: "empty_file", message: "the file holds no requests" })
        if (count > maxLines) {
          report({
            line: null,
            code: "too_many_tasks",
            message: `${count} requests; a batch${of} takes at most ${maxLines}`
          })
        }
        if (size > maxBytes) {
          report({
            line: null,
            code: "file_too_large",
            message: `${size} bytes; a batch input file${of} may be at most ${Math.round(maxBytes / 1024 / 1024)} MB`
          })
        }
        return { lines: count, bytes: size, endpoint, model, problems, problemCount, customIds: order }
      })
    )
  })
