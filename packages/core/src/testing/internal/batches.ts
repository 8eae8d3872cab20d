/**
 * The simulator's Batch API: create (with the API's checks on each parameter), retrieve, list
 * (newest first) and cancel, and the batch object as the API shows it.
 */
import * as Effect from "effect/Effect"
import { metadataLimits } from "../../Batch.js"
import * as Provider from "../../Provider.js"
import type { Files } from "./files.js"
import type { NextId } from "./ids.js"
import { type Lifecycle, type StoredBatch, terminal } from "./lifecycle.js"
import {
  errorBody,
  expiresAfterLimits,
  invalidValue,
  json,
  limitOf,
  notFound,
  page,
  parseJsonObject,
  type Reply,
  type Request
} from "./wire.js"

/** The create parameters, or the API's 400 for the first one that is wrong. */
const checkCreate = (
  params: Record<string, unknown>,
  provider: Provider.Profile
):
  | Reply
  | {
      readonly inputFileId: string
      readonly endpoint: string
      readonly metadata: Record<string, string> | null
      readonly outputExpiresAfter: number | undefined
    } => {
  const inputFileId = params.input_file_id
  if (typeof inputFileId !== "string" || inputFileId === "")
    return invalidValue(
      "Missing required parameter: 'input_file_id'.",
      "input_file_id",
      "missing_required_parameter"
    )
  const endpoint = params.endpoint
  const endpoints = provider.limits.endpoints
  if (typeof endpoint !== "string" || (endpoints !== "any" && !endpoints.includes(endpoint)))
    return invalidValue(
      `Invalid value for 'endpoint': ${JSON.stringify(endpoint ?? null)}. Supported values are: ${endpoints === "any" ? "any path" : endpoints.map((e) => `'${e}'`).join(", ")}.`,
      "endpoint"
    )
  const window = params.completion_window
  if (typeof window !== "string" || !Provider.acceptsWindow(provider, window))
    return invalidValue(
      `Invalid value for 'completion_window': ${JSON.stringify(window ?? null)}. Supported values are: ${Provider.describeWindows(provider)}.`,
      "completion_window"
    )
  const metadata = params.metadata ?? null
  if (metadata !== null) {
    if (typeof metadata !== "object" || Array.isArray(metadata))
      return invalidValue("Invalid type for 'metadata': expected an object.", "metadata", "invalid_type")
    const entries = Object.entries(metadata)
    if (entries.length > metadataLimits.pairs)
      return invalidValue(
        `Invalid 'metadata': too many properties. Expected an object with at most ${metadataLimits.pairs} properties, but got an object with ${entries.length} properties instead.`,
        "metadata",
        "object_above_max_properties"
      )
    for (const [k, v] of entries) {
      if (k.length > metadataLimits.keyLength)
        return invalidValue(
          `Invalid 'metadata': keys may be at most ${metadataLimits.keyLength} characters.`,
          "metadata"
        )
      if (typeof v !== "string" || v.length > metadataLimits.valueLength)
        return invalidValue(
          `Invalid 'metadata.${k}': values must be strings of at most ${metadataLimits.valueLength} characters.`,
          `metadata.${k}`
        )
    }
  }
  let outputExpiresAfter: number | undefined
  if (params.output_expires_after != null) {
    const oea = params.output_expires_after as { anchor?: unknown; seconds?: unknown }
    if (oea.anchor !== "created_at")
      return invalidValue(
        "Invalid value for 'output_expires_after.anchor': expected 'created_at'.",
        "output_expires_after.anchor"
      )
    if (
      typeof oea.seconds !== "number" ||
      !Number.isInteger(oea.seconds) ||
      oea.seconds < expiresAfterLimits.min ||
      oea.seconds > expiresAfterLimits.max
    )
      return invalidValue(
        `Invalid 'output_expires_after.seconds': expected an integer between ${expiresAfterLimits.min} and ${expiresAfterLimits.max}.`,
        "output_expires_after.seconds"
      )
    outputExpiresAfter = oea.seconds
  }
  return {
    inputFileId,
    endpoint,
    metadata: metadata as Record<string, string> | null,
    outputExpiresAfter
  }
}

export const make = (options: {
  readonly files: Files
  readonly lifecycle: Lifecycle
  readonly nextId: NextId
  readonly stamp: (simulated: number) => number
  readonly batches: Map<string, StoredBatch>
  readonly provider: Provider.Profile
}) => {
  const { files, lifecycle, nextId, batches } = options
  /** Batches not yet seen ended by `takeEnded`. */
  const running = new Set<string>()
  /** Newest first, as the list route answers. */
  const order: Array<string> = []
  const sec = (ms: number) => Math.floor(options.stamp(ms) / 1000)
  const seconds = (v: number | null) => (v === null ? null : sec(v))

  const view = (batch: StoredBatch, now: number) =>
    Effect.map(lifecycle.settle(batch, now), (p) => {
      const validated = p.validated
      const n = validated?.count ?? 0
      const failed = validated?.failedBefore[p.finished] ?? 0
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

  const noBatch = (id: string) => notFound(`No batch found with id '${id}'.`, "batch_id")

  const create = (req: Request, now: number): Effect.Effect<Reply> =>
    Effect.suspend(() => {
      const params = parseJsonObject(req.body)
      if (params === undefined)
        return Effect.succeed(json(400, errorBody("We could not parse the JSON body of your request.")))
      const checked = checkCreate(params, options.provider)
      if ("_tag" in checked) return Effect.succeed(checked)
      const file = files.get(checked.inputFileId)
      if (file === undefined)
        return Effect.succeed(notFound(`No such File object: ${checked.inputFileId}`, "input_file_id"))
      if (file.purpose !== "batch")
        return Effect.succeed(
          invalidValue(
            `File ${checked.inputFileId} has purpose '${file.purpose}'; a batch needs a file uploaded with purpose 'batch'.`,
            "input_file_id",
            null
          )
        )
      const batch: StoredBatch = {
        id: nextId("batch_"),
        ...checked,
        createdAt: now,
        validated: undefined,
        cancelRequestedAt: undefined,
        outputFileId: undefined,
        errorFileId: undefined,
        usage: undefined
      }
      batches.set(batch.id, batch)
      order.unshift(batch.id)
      running.add(batch.id)
      return Effect.map(view(batch, now), (b) => json(200, b))
    })

  const list = (req: Request, now: number): Effect.Effect<Reply> =>
    Effect.suspend(() => {
      const limit = limitOf(req.query, 20, 100)
      if (typeof limit !== "number") return Effect.succeed(limit)
      const p = page(
        order.map((id) => ({ id })),
        req.query.get("after"),
        limit
      )
      return Effect.map(
        Effect.forEach(p.data, (b) => view(batches.get(b.id)!, now)),
        (data) => json(200, { ...p, data })
      )
    })

  const retrieve = (id: string, now: number): Effect.Effect<Reply> =>
    Effect.suspend(() => {
      const batch = batches.get(id)
      return batch === undefined
        ? Effect.succeed(noBatch(id))
        : Effect.map(view(batch, now), (b) => json(200, b))
    })

  const cancel = (id: string, now: number): Effect.Effect<Reply> =>
    Effect.gen(function* () {
      const batch = batches.get(id)
      if (batch === undefined) return noBatch(id)
      const before = yield* lifecycle.phase(batch, now)
      if (terminal.has(before.status))
        return json(409, errorBody(`Cannot cancel a batch with status '${before.status}'.`))
      if (batch.cancelRequestedAt === undefined) batch.cancelRequestedAt = now
      return json(200, yield* view(batch, now))
    })

  /** The batches that have ended since the last call, each once, with their status and when. */
  const takeEnded = (now: number) =>
    Effect.gen(function* () {
      const ended: Array<{ readonly id: string; readonly status: string; readonly endedAt: number }> = []
      for (const id of running) {
        const p = yield* lifecycle.settle(batches.get(id)!, now)
        if (!terminal.has(p.status)) continue
        running.delete(id)
        const at = p.at.completed_at ?? p.at.expired_at ?? p.at.cancelled_at ?? p.at.failed_at ?? now
        ended.push({ id, status: p.status, endedAt: Math.floor(options.stamp(at) / 1000) })
      }
      return ended
    })

  return {
    create,
    takeEnded,
    list,
    retrieve,
    cancel,
    /** Every batch as the API would show it now, newest first. */
    all: (now: number) => Effect.forEach(order, (id) => view(batches.get(id)!, now))
  }
}
