/**
 * The simulator's engine: an in-memory Batch and Files API, answering HTTP-shaped requests.
 * State is a function of time: a batch stores when it was created (and cancelled); its status,
 * counts and files follow from the clock whenever it is looked at, so a `TestClock.adjust`
 * moves every batch at once and nothing runs in the background.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import { KnownEndpoint, metadataLimits } from "../Batch.js"
import * as BatchLine from "../BatchLine.js"
import * as Responder from "../testing/Responder.js"
import * as Multipart from "./multipart.js"

export type Operation =
  | "batches.create"
  | "batches.retrieve"
  | "batches.list"
  | "batches.cancel"
  | "files.upload"
  | "files.retrieve"
  | "files.list"
  | "files.delete"
  | "files.content"

export const operations: ReadonlyArray<Operation> = [
  "batches.create",
  "batches.retrieve",
  "batches.list",
  "batches.cancel",
  "files.upload",
  "files.retrieve",
  "files.list",
  "files.delete",
  "files.content"
]

export type Fault =
  | {
      readonly _tag: "RateLimited"
      readonly retryAfterMillis?: number | undefined
      readonly quota?: boolean | undefined
    }
  | { readonly _tag: "ServerError"; readonly status?: number | undefined }
  | { readonly _tag: "ResetBefore" }
  | { readonly _tag: "ResetAfter" }
  | { readonly _tag: "Slow"; readonly delayMillis: number }
  | { readonly _tag: "TruncatedBody" }

export interface FaultRule {
  readonly operation: Operation | "*"
  readonly fault: Fault
  /** How many matching calls it hits. Default 1. */
  readonly times?: number | undefined
}

export interface EngineOptions {
  readonly validationMillis: number
  readonly requestsPerSecond: number
  readonly finalizingMillis: number
  readonly cancellingMillis: number
  readonly windowMillis: number
  readonly responder: Responder.Responder
  readonly apiKey: string | undefined
  readonly now: Effect.Effect<number>
}

export interface Request {
  readonly method: string
  /** The URL's path, e.g. `/v1/batches`. */
  readonly path: string
  readonly query: URLSearchParams
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly body: Uint8Array
}

export type Reply =
  | {
      readonly _tag: "Answer"
      readonly status: number
      readonly headers: Record<string, string>
      readonly body: Uint8Array
      /** Send the headers and half the body, then cut the connection. */
      readonly truncate?: boolean
    }
  | { readonly _tag: "Reset" }

interface StoredFile {
  readonly id: string
  readonly filename: string
  readonly purpose: string
  readonly createdAt: number
  readonly expiresAt: number | null
  readonly content: Uint8Array
}

interface Validated {
  readonly problems: ReadonlyArray<BatchLine.InputProblem>
  readonly lines: ReadonlyArray<BatchLine.InputLine>
  readonly responses: ReadonlyArray<Responder.Response>
  /** failedBefore[k] = how many of the first k lines failed. */
  readonly failedBefore: Int32Array
  readonly model: string | null
}

interface StoredBatch {
  readonly id: string
  readonly endpoint: string
  readonly inputFileId: string
  readonly metadata: Record<string, string> | null
  readonly createdAt: number
  readonly outputExpiresAfter: number | undefined
  validated: Validated | undefined
  cancelRequestedAt: number | undefined
  outputFileId: string | null | undefined
  errorFileId: string | null | undefined
  usage: Record<string, unknown> | undefined
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const errorBody = (
  message: string,
  type = "invalid_request_error",
  param: string | null = null,
  code: string | null = null
) => ({
  error: { message, type, param, code }
})

const terminal = new Set(["failed", "completed", "expired", "cancelled"])

export interface SeenRequest {
  readonly method: string
  readonly path: string
  readonly query: string
  readonly headers: Readonly<Record<string, string | undefined>>
}

export interface Engine {
  readonly handle: (request: Request) => Effect.Effect<Reply>
  readonly inject: (rule: FaultRule) => Effect.Effect<void>
  readonly clearFaults: Effect.Effect<void>
  readonly pendingFaults: Effect.Effect<ReadonlyArray<FaultRule>>
  /** The batches as the API would show them now, newest first. */
  readonly batches: Effect.Effect<ReadonlyArray<Record<string, unknown>>>
  readonly files: Effect.Effect<ReadonlyArray<Record<string, unknown>>>
  /** Every request seen, in order, for tests that count traffic (headers without `authorization`). */
  readonly requests: Effect.Effect<ReadonlyArray<SeenRequest>>
}

export const make = (options: EngineOptions): Effect.Effect<Engine> =>
  Effect.gen(function* () {
    const files = new Map<string, StoredFile>()
    const batches = new Map<string, StoredBatch>()
    const batchOrder: Array<string> = []
    const seen: Array<SeenRequest> = []
    const faults = yield* Ref.make<ReadonlyArray<{ readonly rule: FaultRule; readonly left: number }>>([])
    let counter = 0
    const nextId = (prefix: string, length = 24) => {
      counter++
      let id = ""
      for (let i = 0; id.length < length; i++)
        id += Responder.hash(`${prefix}${counter}:${i}`).toString(16).padStart(8, "0")
      return `${prefix}${id.slice(0, length)}`
    }
    const perLine = 1000 / options.requestsPerSecond
    const sec = (ms: number) => Math.floor(ms / 1000)

    const json = (status: number, body: unknown, headers: Record<string, string> = {}): Reply => ({
      _tag: "Answer",
      status,
      headers: { "content-type": "application/json", ...headers },
      body: encoder.encode(JSON.stringify(body))
    })

    // ---- validation and the lifecycle -------------------------------------------------------

    const validate = (batch: StoredBatch): Effect.Effect<Validated> =>
      Effect.gen(function* () {
        const file = files.get(batch.inputFileId)
        const content = file?.content ?? new Uint8Array()
        const summary = yield* BatchLine.validateInput(Stream.succeed(content), {
          endpoint: batch.endpoint,
          maxProblems: 1000
        })
        const problems = summary.problems.filter((p) => p.code !== "unknown_endpoint")
        if (problems.length > 0) {
          return {
            problems,
            lines: [],
            responses: [],
            failedBefore: new Int32Array(1),
            model: summary.model ?? null
          }
        }
        const lines: Array<BatchLine.InputLine> = []
        for (const text of decoder.decode(content).split("\n")) {
          if (text.trim() !== "") lines.push(JSON.parse(text) as BatchLine.InputLine)
        }
        const responses = lines.map((line, i) => options.responder(line, i))
        const failedBefore = new Int32Array(lines.length + 1)
        responses.forEach((r, i) => {
          failedBefore[i + 1] = (failedBefore[i] ?? 0) + (r.status >= 200 && r.status < 300 ? 0 : 1)
        })
        return { problems: [], lines, responses, failedBefore, model: summary.model ?? null }
      })

    interface Phase {
      readonly status: string
      readonly validated: Validated | undefined
      /** Lines that ran (finished or, at the end, kept). */
      readonly finished: number
      readonly at: Record<string, number | null>
    }

    const phase = (batch: StoredBatch, now: number): Effect.Effect<Phase> =>
      Effect.gen(function* () {
        const validatedAt = batch.createdAt + options.validationMillis
        const expiresAt = batch.createdAt + options.windowMillis
        const cancelAt = batch.cancelRequestedAt
        const none = {
          in_progress_at: null,
          finalizing_at: null,
          completed_at: null,
          failed_at: null,
          expired_at: null,
          cancelling_at: null,
          cancelled_at: null,
          expires_at: null
        }
        const cancelling = (
          from: number,
          finished: number,
          base: Record<string, number | null>,
          validated: Validated | undefined
        ): Phase => {
          const cancelledAt = from + options.cancellingMillis
          return now < cancelledAt
            ? { status: "cancelling", validated, finished, at: { ...base, cancelling_at: from } }
            : {
                status: "cancelled",
                validated,
                finished,
                at: { ...base, cancelling_at: from, cancelled_at: cancelledAt }
              }
        }
        if (cancelAt !== undefined && cancelAt < validatedAt) return cancelling(cancelAt, 0, none, undefined)
        if (now < validatedAt) return { status: "validating", validated: undefined, finished: 0, at: none }
        if (batch.validated === undefined) batch.validated = yield* validate(batch)
        const validated = batch.validated
        if (validated.problems.length > 0) {
          return { status: "failed", validated, finished: 0, at: { ...none, failed_at: validatedAt } }
        }
        const n = validated.lines.length
        const allDoneAt = validatedAt + n * perLine
        const completedAt = allDoneAt + options.finalizingMillis
        const ranBy = (t: number) => Math.max(0, Math.min(n, Math.floor((t - validatedAt) / perLine)))
        const running = { ...none, in_progress_at: validatedAt, expires_at: expiresAt }
        const ends = Math.min(completedAt, expiresAt)
        if (cancelAt !== undefined && cancelAt < ends) {
          const base = cancelAt >= allDoneAt ? { ...running, finalizing_at: allDoneAt } : running
          return cancelling(cancelAt, ranBy(cancelAt), base, validated)
        }
        if (expiresAt < completedAt && now >= expiresAt) {
          return {
            status: "expired",
            validated,
            finished: ranBy(expiresAt),
            at: {
              ...running,
              ...(expiresAt >= allDoneAt ? { finalizing_at: allDoneAt } : {}),
              expired_at: expiresAt
            }
          }
        }
        if (now >= completedAt) {
          return {
            status: "completed",
            validated,
            finished: n,
            at: { ...running, finalizing_at: allDoneAt, completed_at: completedAt }
          }
        }
        if (now >= allDoneAt)
          return {
            status: "finalizing",
            validated,
            finished: n,
            at: { ...running, finalizing_at: allDoneAt }
          }
        return { status: "in_progress", validated, finished: ranBy(now), at: running }
      })

    const storeFile = (
      filename: string,
      purpose: string,
      content: Uint8Array,
      createdAt: number,
      expiresAfterSeconds?: number
    ) => {
      const file: StoredFile = {
        id: nextId("file-", 22),
        filename,
        purpose,
        createdAt,
        expiresAt: expiresAfterSeconds === undefined ? null : createdAt + expiresAfterSeconds * 1000,
        content
      }
      files.set(file.id, file)
      return file
    }

    /** Writes the output and error files the first time a batch is seen ended. */
    const finish = (batch: StoredBatch, p: Phase, endedAt: number) => {
      if (batch.outputFileId !== undefined) return
      const validated = p.validated
      const out: Array<{ key: number; line: string }> = []
      const err: Array<{ key: number; line: string }> = []
      let input = 0
      let output = 0
      let counted = false
      const lines = validated?.lines ?? []
      const unrun =
        p.status === "expired"
          ? {
              code: "batch_expired",
              message: "This request could not be executed before the completion window expired."
            }
          : {
              code: "batch_cancelled",
              message: "This request was not executed because the batch was cancelled."
            }
      lines.forEach((line, i) => {
        const id = nextId("batch_req_", 24)
        const key = Responder.hash(line.custom_id)
        if (i >= p.finished) {
          err.push({
            key,
            line: JSON.stringify({ id, custom_id: line.custom_id, response: null, error: unrun })
          })
          return
        }
        const response = validated!.responses[i]!
        const entry = JSON.stringify({
          id,
          custom_id: line.custom_id,
          response: { status_code: response.status, request_id: nextId("req_", 32), body: response.body },
          error: null
        })
        if (response.status >= 200 && response.status < 300) {
          out.push({ key, line: entry })
          const usage = (response.body as { usage?: Record<string, number> } | null)?.usage
          if (usage) {
            counted = true
            input += usage.input_tokens ?? usage.prompt_tokens ?? 0
            output += usage.output_tokens ?? usage.completion_tokens ?? 0
          }
        } else err.push({ key, line: entry })
      })
      // the API does not keep input order in its files; neither does the simulator
      const write = (entries: typeof out, suffix: string) => {
        if (entries.length === 0) return null
        entries.sort((a, b) => a.key - b.key)
        const text = `${entries.map((e) => e.line).join("\n")}\n`
        return storeFile(
          `${batch.id}_${suffix}.jsonl`,
          "batch_output",
          encoder.encode(text),
          endedAt,
          batch.outputExpiresAfter
        ).id
      }
      batch.outputFileId = write(out, "output")
      batch.errorFileId = write(err, "error")
      if (counted) {
        batch.usage = {
          input_tokens: input,
          input_tokens_details: { cached_tokens: 0 },
          output_tokens: output,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: input + output
        }
      }
    }

    const view = (batch: StoredBatch, now: number) =>
      Effect.gen(function* () {
        const p = yield* phase(batch, now)
        if (terminal.has(p.status)) {
          const endedAt = p.at.completed_at ?? p.at.expired_at ?? p.at.cancelled_at ?? p.at.failed_at ?? now
          finish(batch, p, endedAt)
        }
        const validated = p.validated
        const n = validated?.lines.length ?? 0
        const failed = validated?.failedBefore[p.finished] ?? 0
        const seconds = (v: number | null | undefined) => (v == null ? null : sec(v))
        const problems = validated?.problems ?? []
        return {
          id: batch.id,
          object: "batch",
          endpoint: batch.endpoint,
          model: validated?.model ?? null,
          errors:
            problems.length > 0
              ? {
                  object: "list",
                  data: problems.map((e) => ({ code: e.code, message: e.message, param: null, line: e.line }))
                }
              : null,
          input_file_id: batch.inputFileId,
          completion_window: "24h",
          status: p.status,
          output_file_id: batch.outputFileId ?? null,
          error_file_id: batch.errorFileId ?? null,
          created_at: sec(batch.createdAt),
          in_progress_at: seconds(p.at.in_progress_at),
          expires_at: seconds(p.at.expires_at),
          finalizing_at: seconds(p.at.finalizing_at),
          completed_at: seconds(p.at.completed_at),
          failed_at: seconds(p.at.failed_at),
          expired_at: seconds(p.at.expired_at),
          cancelling_at: seconds(p.at.cancelling_at),
          cancelled_at: seconds(p.at.cancelled_at),
          request_counts: { total: n, completed: p.finished - failed, failed },
          usage: batch.usage ?? null,
          metadata: batch.metadata
        }
      })

    const fileView = (f: StoredFile) => ({
      id: f.id,
      object: "file",
      bytes: f.content.byteLength,
      created_at: sec(f.createdAt),
      expires_at: f.expiresAt === null ? null : sec(f.expiresAt),
      filename: f.filename,
      purpose: f.purpose,
      status: "processed",
      status_details: null
    })

    // ---- routes ------------------------------------------------------------------------------

    const idPattern = /^[A-Za-z0-9_-]+$/

    const parseJson = (body: Uint8Array): Record<string, unknown> | undefined => {
      try {
        const value = JSON.parse(decoder.decode(body)) as unknown
        return value !== null && typeof value === "object" && !Array.isArray(value)
          ? (value as Record<string, unknown>)
          : undefined
      } catch {
        return undefined
      }
    }

    const createBatch = (req: Request, now: number) =>
      Effect.gen(function* () {
        const params = parseJson(req.body)
        if (params === undefined)
          return json(400, errorBody("We could not parse the JSON body of your request."))
        const inputFileId = params.input_file_id
        if (typeof inputFileId !== "string" || inputFileId === "") {
          return json(
            400,
            errorBody(
              "Missing required parameter: 'input_file_id'.",
              "invalid_request_error",
              "input_file_id",
              "missing_required_parameter"
            )
          )
        }
        const endpoint = params.endpoint
        if (
          typeof endpoint !== "string" ||
          !(KnownEndpoint.literals as ReadonlyArray<string>).includes(endpoint)
        ) {
          return json(
            400,
            errorBody(
              `Invalid value for 'endpoint': ${JSON.stringify(endpoint ?? null)}. Supported values are: ${KnownEndpoint.literals.map((e) => `'${e}'`).join(", ")}.`,
              "invalid_request_error",
              "endpoint",
              "invalid_value"
            )
          )
        }
        if (params.completion_window !== "24h") {
          return json(
            400,
            errorBody(
              `Invalid value for 'completion_window': ${JSON.stringify(params.completion_window ?? null)}. Supported values are: '24h'.`,
              "invalid_request_error",
              "completion_window",
              "invalid_value"
            )
          )
        }
        const metadata = params.metadata ?? null
        if (metadata !== null) {
          if (typeof metadata !== "object" || Array.isArray(metadata))
            return json(
              400,
              errorBody(
                "Invalid type for 'metadata': expected an object.",
                "invalid_request_error",
                "metadata",
                "invalid_type"
              )
            )
          const entries = Object.entries(metadata)
          if (entries.length > metadataLimits.pairs)
            return json(
              400,
              errorBody(
                `Invalid 'metadata': too many properties. Expected an object with at most ${metadataLimits.pairs} properties, but got an object with ${entries.length} properties instead.`,
                "invalid_request_error",
                "metadata",
                "object_above_max_properties"
              )
            )
          for (const [k, v] of entries) {
            if (k.length > metadataLimits.keyLength)
              return json(
                400,
                errorBody(
                  `Invalid 'metadata': keys may be at most ${metadataLimits.keyLength} characters.`,
                  "invalid_request_error",
                  "metadata",
                  "invalid_value"
                )
              )
            if (typeof v !== "string" || v.length > metadataLimits.valueLength)
              return json(
                400,
                errorBody(
                  `Invalid 'metadata.${k}': values must be strings of at most ${metadataLimits.valueLength} characters.`,
                  "invalid_request_error",
                  `metadata.${k}`,
                  "invalid_value"
                )
              )
          }
        }
        let outputExpiresAfter: number | undefined
        if (params.output_expires_after !== undefined && params.output_expires_after !== null) {
          const oea = params.output_expires_after as { anchor?: unknown; seconds?: unknown }
          if (oea.anchor !== "created_at")
            return json(
              400,
              errorBody(
                "Invalid value for 'output_expires_after.anchor': expected 'created_at'.",
                "invalid_request_error",
                "output_expires_after.anchor",
                "invalid_value"
              )
            )
          if (
            typeof oea.seconds !== "number" ||
            !Number.isInteger(oea.seconds) ||
            oea.seconds < 3600 ||
            oea.seconds > 2592000
          ) {
            return json(
              400,
              errorBody(
                "Invalid 'output_expires_after.seconds': expected an integer between 3600 and 2592000.",
                "invalid_request_error",
                "output_expires_after.seconds",
                "invalid_value"
              )
            )
          }
          outputExpiresAfter = oea.seconds
        }
        const file = files.get(inputFileId)
        if (file === undefined)
          return json(
            404,
            errorBody(`No such File object: ${inputFileId}`, "invalid_request_error", "input_file_id")
          )
        if (file.purpose !== "batch")
          return json(
            400,
            errorBody(
              `File ${inputFileId} has purpose '${file.purpose}'; a batch needs a file uploaded with purpose 'batch'.`,
              "invalid_request_error",
              "input_file_id"
            )
          )
        const batch: StoredBatch = {
          id: nextId("batch_"),
          endpoint,
          inputFileId,
          metadata: metadata as Record<string, string> | null,
          createdAt: now,
          outputExpiresAfter,
          validated: undefined,
          cancelRequestedAt: undefined,
          outputFileId: undefined,
          errorFileId: undefined,
          usage: undefined
        }
        batches.set(batch.id, batch)
        batchOrder.unshift(batch.id)
        return json(200, yield* view(batch, now))
      })

    const page = <A extends { id: string }>(items: ReadonlyArray<A>, after: string | null, limit: number) => {
      const start = after === null ? 0 : items.findIndex((i) => i.id === after) + 1
      const data = after !== null && start === 0 ? [] : items.slice(start, start + limit)
      return {
        object: "list",
        data,
        first_id: data[0]?.id ?? null,
        last_id: data.at(-1)?.id ?? null,
        has_more: start + data.length < items.length && data.length > 0
      }
    }

    /** The `limit` query parameter, or the API's 400 for one out of range. */
    const limitOf = (query: URLSearchParams, fallback: number, max: number): number | Reply => {
      const raw = query.get("limit")
      if (raw === null) return fallback
      const n = Number(raw)
      if (Number.isInteger(n) && n >= 1 && n <= max) return n
      const message = `Invalid 'limit': integer must be between 1 and ${max}, got ${raw}.`
      return json(400, errorBody(message, "invalid_request_error", "limit", "integer_out_of_range"))
    }

    const route = (
      req: Request,
      now: number
    ): Effect.Effect<{ readonly operation: Operation | undefined; readonly run: Effect.Effect<Reply> }> =>
      Effect.sync(() => {
        const path = req.path.replace(/\/+$/, "")
        const invalid = {
          operation: undefined,
          run: Effect.succeed(json(404, errorBody(`Invalid URL (${req.method} ${req.path})`)))
        }
        if (!path.startsWith("/v1/")) return invalid
        const parts = path.slice(4).split("/")
        const [resource, id, action, ...rest] = parts
        if (rest.length > 0) return invalid
        if (id !== undefined && !idPattern.test(id)) return invalid
        if (resource === "batches") {
          if (id === undefined && req.method === "POST")
            return { operation: "batches.create", run: createBatch(req, now) }
          if (id === undefined && req.method === "GET") {
            return {
              operation: "batches.list",
              run: Effect.gen(function* () {
                const limit = limitOf(req.query, 20, 100)
                if (typeof limit !== "number") return limit
                const all = batchOrder.map((bid) => ({ id: bid }))
                const p = page(all, req.query.get("after"), limit)
                const data = yield* Effect.forEach(p.data, (b) => view(batches.get(b.id)!, now))
                return json(200, { ...p, data })
              })
            }
          }
          if (id !== undefined && action === undefined && req.method === "GET") {
            return {
              operation: "batches.retrieve",
              run: Effect.suspend(() => {
                const batch = batches.get(id)
                return batch === undefined
                  ? Effect.succeed(
                      json(
                        404,
                        errorBody(`No batch found with id '${id}'.`, "invalid_request_error", "batch_id")
                      )
                    )
                  : Effect.map(view(batch, now), (b) => json(200, b))
              })
            }
          }
          if (id !== undefined && action === "cancel" && req.method === "POST") {
            return {
              operation: "batches.cancel",
              run: Effect.gen(function* () {
                const batch = batches.get(id)
                if (batch === undefined)
                  return json(
                    404,
                    errorBody(`No batch found with id '${id}'.`, "invalid_request_error", "batch_id")
                  )
                const before = yield* phase(batch, now)
                if (terminal.has(before.status))
                  return json(409, errorBody(`Cannot cancel a batch with status '${before.status}'.`))
                if (batch.cancelRequestedAt === undefined) batch.cancelRequestedAt = now
                return json(200, yield* view(batch, now))
              })
            }
          }
          return invalid
        }
        if (resource === "files") {
          if (id === undefined && req.method === "POST")
            return { operation: "files.upload", run: Effect.sync(() => upload(req, now)) }
          if (id === undefined && req.method === "GET") {
            return {
              operation: "files.list",
              run: Effect.sync(() => {
                const limit = limitOf(req.query, 10000, 10000)
                if (typeof limit !== "number") return limit
                const order = req.query.get("order") ?? "desc"
                if (order !== "asc" && order !== "desc")
                  return json(
                    400,
                    errorBody(
                      `Invalid value for 'order': ${order}. Supported values are: 'asc' and 'desc'.`,
                      "invalid_request_error",
                      "order",
                      "invalid_value"
                    )
                  )
                const purpose = req.query.get("purpose")
                const list = [...files.values()].filter((f) => purpose === null || f.purpose === purpose)
                if (order === "desc") list.reverse()
                const p = page(list, req.query.get("after"), limit)
                return json(200, { ...p, data: p.data.map(fileView) })
              })
            }
          }
          if (id !== undefined && (action === undefined || action === "content")) {
            const operation: Operation | undefined =
              action === "content" && req.method === "GET"
                ? "files.content"
                : action === undefined && req.method === "GET"
                  ? "files.retrieve"
                  : action === undefined && req.method === "DELETE"
                    ? "files.delete"
                    : undefined
            if (operation === undefined) return invalid
            return {
              operation,
              run: Effect.sync((): Reply => {
                const file = files.get(id)
                if (file === undefined)
                  return json(404, errorBody(`No such File object: ${id}`, "invalid_request_error", "id"))
                if (operation === "files.delete") {
                  files.delete(id)
                  return json(200, { id, object: "file", deleted: true })
                }
                if (operation === "files.content") {
                  return {
                    _tag: "Answer",
                    status: 200,
                    headers: { "content-type": "application/octet-stream" },
                    body: file.content
                  }
                }
                return json(200, fileView(file))
              })
            }
          }
          return invalid
        }
        return invalid
      })

    const upload = (req: Request, now: number): Reply => {
      const boundary = Multipart.boundaryOf(req.headers["content-type"])
      const parts = boundary === undefined ? undefined : Multipart.parse(req.body, boundary)
      if (parts === undefined)
        return json(400, errorBody("The request must be multipart/form-data with a 'file' and a 'purpose'."))
      const field = (name: string) => {
        const part = parts.find((p) => p.name === name && p.filename === undefined)
        return part === undefined ? undefined : decoder.decode(part.data)
      }
      const file = parts.find((p) => p.name === "file")
      const purpose = field("purpose")
      if (purpose === undefined)
        return json(
          400,
          errorBody(
            "Missing required parameter: 'purpose'.",
            "invalid_request_error",
            "purpose",
            "missing_required_parameter"
          )
        )
      if (!["assistants", "batch", "fine-tune", "vision", "user_data", "evals"].includes(purpose)) {
        return json(
          400,
          errorBody(
            `Invalid value for 'purpose': ${purpose}.`,
            "invalid_request_error",
            "purpose",
            "invalid_value"
          )
        )
      }
      if (file === undefined || file.filename === undefined)
        return json(
          400,
          errorBody(
            "Missing required parameter: 'file'.",
            "invalid_request_error",
            "file",
            "missing_required_parameter"
          )
        )
      if (purpose === "batch" && !file.filename.toLowerCase().endsWith(".jsonl")) {
        return json(
          400,
          errorBody("Invalid file format for Batch API. Must be .jsonl", "invalid_request_error", "file")
        )
      }
      if (purpose === "batch" && file.data.byteLength > BatchLine.inputLimits.bytes)
        return json(400, errorBody("File is too large.", "invalid_request_error", "file"))
      const anchor = field("expires_after[anchor]")
      const seconds = field("expires_after[seconds]")
      let expiresAfter: number | undefined = purpose === "batch" ? 30 * 86400 : undefined
      if (anchor !== undefined || seconds !== undefined) {
        const s = Number(seconds)
        if (anchor !== "created_at" || !Number.isInteger(s) || s < 3600 || s > 2592000) {
          return json(
            400,
            errorBody(
              "Invalid 'expires_after': expected anchor 'created_at' and seconds between 3600 and 2592000.",
              "invalid_request_error",
              "expires_after"
            )
          )
        }
        expiresAfter = s
      }
      // a copy: the part is a view into the request body
      return json(200, fileView(storeFile(file.filename, purpose, file.data.slice(), now, expiresAfter)))
    }

    type Armed = ReadonlyArray<{ readonly rule: FaultRule; readonly left: number }>
    const takeFault = (operation: Operation | undefined): Effect.Effect<Fault | undefined> =>
      Ref.modify(faults, (list: Armed): readonly [Fault | undefined, Armed] => {
        if (operation === undefined) return [undefined, list]
        const index = list.findIndex((f) => f.rule.operation === operation || f.rule.operation === "*")
        if (index === -1) return [undefined, list]
        const hit = list[index]!
        const rest =
          hit.left > 1
            ? list.map((f, i) => (i === index ? { ...f, left: f.left - 1 } : f))
            : list.filter((_, i) => i !== index)
        return [hit.rule.fault, rest]
      })

    const authorize = (req: Request): Reply | undefined => {
      const header = req.headers.authorization ?? ""
      const key = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim()
      if (key === undefined || key === "") {
        return json(
          401,
          errorBody(
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
          )
        )
      }
      if (options.apiKey !== undefined && key !== options.apiKey) {
        const shown =
          key.length > 8
            ? `${key.slice(0, 3)}${"*".repeat(Math.min(20, key.length - 7))}${key.slice(-4)}`
            : "***"
        return json(
          401,
          errorBody(
            `Incorrect API key provided: ${shown}. You can find your API key at https://platform.openai.com/account/api-keys.`,
            "invalid_request_error",
            null,
            "invalid_api_key"
          )
        )
      }
      return undefined
    }

    const handle = (req: Request): Effect.Effect<Reply> =>
      Effect.gen(function* () {
        const { authorization: _, ...headers } = req.headers
        seen.push({ method: req.method, path: req.path, query: req.query.toString(), headers })
        const requestId = nextId("req_", 32)
        const withId = (reply: Reply): Reply =>
          reply._tag === "Answer"
            ? { ...reply, headers: { ...reply.headers, "x-request-id": requestId } }
            : reply
        const denied = authorize(req)
        if (denied !== undefined) return withId(denied)
        const now = yield* options.now
        const { operation, run } = yield* route(req, now)
        const fault = yield* takeFault(operation)
        if (fault === undefined) return withId(yield* run)
        switch (fault._tag) {
          case "ResetBefore":
            return { _tag: "Reset" }
          case "ResetAfter":
            yield* run
            return { _tag: "Reset" }
          case "Slow": {
            // the server does the work at once; its answer is what comes late
            const reply = yield* run
            yield* Effect.sleep(Duration.millis(fault.delayMillis))
            return withId(reply)
          }
          case "TruncatedBody": {
            const reply = yield* run
            return withId(reply._tag === "Answer" ? { ...reply, truncate: true } : reply)
          }
          case "RateLimited": {
            const headers: Record<string, string> = {}
            if (fault.retryAfterMillis !== undefined) {
              headers["retry-after-ms"] = String(fault.retryAfterMillis)
              headers["retry-after"] = String(Math.max(1, Math.ceil(fault.retryAfterMillis / 1000)))
            }
            return withId(
              fault.quota
                ? json(
                    429,
                    errorBody(
                      "You exceeded your current quota, please check your plan and billing details.",
                      "insufficient_quota",
                      null,
                      "insufficient_quota"
                    ),
                    headers
                  )
                : json(
                    429,
                    errorBody(
                      "Rate limit reached for requests. Please try again later.",
                      "requests",
                      null,
                      "rate_limit_exceeded"
                    ),
                    headers
                  )
            )
          }
          case "ServerError": {
            const status = fault.status ?? 500
            return withId(
              json(
                status,
                errorBody(
                  status === 503
                    ? "The server is overloaded or not ready yet."
                    : "The server had an error while processing your request. Sorry about that!",
                  "server_error"
                )
              )
            )
          }
        }
      })

    return {
      handle,
      inject: (rule) =>
        Ref.update(faults, (list) => [...list, { rule, left: Math.max(1, Math.floor(rule.times ?? 1)) }]),
      clearFaults: Ref.set(faults, []),
      pendingFaults: Effect.map(Ref.get(faults), (list) => list.map((f) => ({ ...f.rule, times: f.left }))),
      batches: Effect.flatMap(options.now, (now) =>
        Effect.forEach(batchOrder, (id) => view(batches.get(id)!, now))
      ),
      files: Effect.sync(() => [...files.values()].map(fileView)),
      requests: Effect.sync(() => [...seen])
    } satisfies Engine
  })
