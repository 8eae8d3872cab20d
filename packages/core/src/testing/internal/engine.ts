/**
 * The simulator's engine: an in-memory Batch and Files API answering HTTP-shaped requests. It
 * checks the key, routes the request, applies an armed fault, and stamps a request id. State is
 * a function of time (see `lifecycle.ts`), so a `TestClock.adjust` moves every batch at once.
 */
import * as Effect from "effect/Effect"
import type * as Provider from "../../Provider.js"
import type * as Responder from "../Responder.js"
import * as Batches from "./batches.js"
import * as Faults from "./faults.js"
import * as Files from "./files.js"
import * as Ids from "./ids.js"
import * as Lifecycle from "./lifecycle.js"
import { errorBody, invalidUrl, json, type Reply, type Request } from "./wire.js"

export type { Fault, FaultRule, Operation } from "./faults.js"
export { faultTags, operations } from "./faults.js"
export type { Reply, Request } from "./wire.js"

export interface EngineOptions extends Lifecycle.Timing {
  readonly responder: Responder.Responder
  readonly apiKey: string | undefined
  /** The time the batches live by, in ms. */
  readonly now: Effect.Effect<number>
  /**
   * The time shown in answers for a time of `now`'s clock: the emulator runs its batches faster
   * than the wall clock but stamps them with times a person reads as now. Default: the same.
   */
  readonly stamp?: ((simulated: number) => number) | undefined
  /** Makes ids repeatable; by default each engine has its own. */
  readonly seed?: string | undefined
  /** Enqueued-token limits by model. */
  readonly tokenLimits?: Readonly<Record<string, number>> | undefined
  /** Whose endpoints, windows and limits apply. */
  readonly provider: Provider.Profile
}

export interface SeenRequest {
  readonly method: string
  readonly path: string
  readonly query: string
  readonly headers: Readonly<Record<string, string | undefined>>
}

export interface Engine {
  readonly handle: (request: Request) => Effect.Effect<Reply>
  readonly inject: (rule: Faults.FaultRule) => Effect.Effect<void>
  readonly clearFaults: Effect.Effect<void>
  readonly pendingFaults: Effect.Effect<ReadonlyArray<Faults.FaultRule>>
  /** The batches as the API would show them now, newest first. */
  readonly batches: Effect.Effect<ReadonlyArray<Record<string, unknown>>>
  readonly files: Effect.Effect<ReadonlyArray<Record<string, unknown>>>
  /** Every request seen, in order, for tests that count traffic (headers without `authorization`). */
  readonly requests: Effect.Effect<ReadonlyArray<SeenRequest>>
  /** The batches that have ended since the last call, each once (what webhooks are sent for). */
  readonly takeEnded: Effect.Effect<ReadonlyArray<EndedBatch>>
  /** The fault armed for the next webhook delivery, if any. */
  readonly deliveryFault: Effect.Effect<Faults.Fault | undefined>
}

export interface EndedBatch {
  readonly id: string
  readonly status: string
  /** Unix seconds, as shown. */
  readonly endedAt: number
}

const idPattern = /^[A-Za-z0-9_-]+$/

const unauthorized = (apiKey: string | undefined, header: string | undefined): Reply | undefined => {
  const key = /^Bearer\s+(.+)$/i.exec(header ?? "")?.[1]?.trim()
  if (key === undefined || key === "") {
    return json(
      401,
      errorBody(
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
      )
    )
  }
  if (apiKey !== undefined && key !== apiKey) {
    // the API shows a key's ends only, never the key
    const shown =
      key.length > 8 ? `${key.slice(0, 3)}${"*".repeat(Math.min(20, key.length - 7))}${key.slice(-4)}` : "***"
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

/** Azure's answer to a key it does not take (its well-known 401 body). */
const azureDenied = json(401, {
  error: {
    code: "401",
    message:
      "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."
  }
})

/** Azure's answer to a path it does not serve, or to a classic path without its api-version. */
const azureNotFound = json(404, { error: { code: "404", message: "Resource not found" } })

/**
 * Azure OpenAI's side of the wire, turned into OpenAI's for the engine: `/openai/v1/…` (the v1
 * API) and `/openai/…?api-version=…` (the classic API) serve what `/v1/…` does; its key comes in
 * an `api-key` header, or an Entra ID token as `Authorization: Bearer`.
 */
const fromAzure = (req: Request, apiKey: string | undefined): Request | Reply => {
  let rest: string
  if (req.path.startsWith("/openai/v1/")) rest = req.path.slice("/openai/v1".length)
  else if (req.path.startsWith("/openai/")) {
    const version = req.query.get("api-version")
    if (version === null) return azureNotFound
    if (!/^\d{4}-\d{2}-\d{2}(-preview)?$/.test(version))
      return json(400, { error: { code: "BadRequest", message: "API version not supported" } })
    rest = req.path.slice("/openai".length)
  } else return azureNotFound
  const key = req.headers["api-key"]?.trim()
  const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "")?.[1]?.trim()
  const given = key !== undefined && key !== "" ? key : bearer
  if (given === undefined || given === "" || (apiKey !== undefined && given !== apiKey)) return azureDenied
  const query = new URLSearchParams(req.query)
  query.delete("api-version")
  const { "api-key": _key, ...headers } = req.headers
  return { ...req, path: `/v1${rest}`, query, headers: { ...headers, authorization: `Bearer ${given}` } }
}

export const make = (options: EngineOptions): Effect.Effect<Engine> =>
  Effect.gen(function* () {
    const stamp = options.stamp ?? ((t: number) => t)
    const nextId = Ids.make(options.seed)
    const faults = yield* Faults.make
    const files = Files.make(nextId, stamp)
    const stored = new Map<string, Lifecycle.StoredBatch>()
    const lifecycle = Lifecycle.make({
      timing: options,
      responder: options.responder,
      files,
      nextId,
      tokenLimits: options.tokenLimits,
      provider: options.provider,
      batches: () => stored.values()
    })
    const batches = Batches.make({
      files,
      lifecycle,
      nextId,
      stamp,
      batches: stored,
      provider: options.provider
    })
    const seen: Array<SeenRequest> = []

    /** The operation a request is, and the work of answering it; an unknown route is a 404. */
    const route = (
      req: Request,
      now: number
    ): { readonly operation: Faults.Operation | undefined; readonly run: Effect.Effect<Reply> } => {
      const invalid = { operation: undefined, run: Effect.sync(() => invalidUrl(req)) }
      const path = req.path.replace(/\/+$/, "")
      if (!path.startsWith("/v1/")) return invalid
      const [resource, id, action, ...rest] = path.slice(4).split("/")
      if (rest.length > 0 || (id !== undefined && !idPattern.test(id))) return invalid
      const method = req.method
      if (resource === "batches") {
        if (id === undefined) {
          if (method === "POST") return { operation: "batches.create", run: batches.create(req, now) }
          if (method === "GET") return { operation: "batches.list", run: batches.list(req, now) }
        } else if (action === undefined && method === "GET") {
          return { operation: "batches.retrieve", run: batches.retrieve(id, now) }
        } else if (action === "cancel" && method === "POST") {
          return { operation: "batches.cancel", run: batches.cancel(id, now) }
        }
        return invalid
      }
      if (resource === "files") {
        if (id === undefined) {
          if (method === "POST")
            return { operation: "files.upload", run: Effect.sync(() => files.upload(req, now)) }
          if (method === "GET") return { operation: "files.list", run: Effect.sync(() => files.list(req)) }
          return invalid
        }
        const operation =
          action === "content" && method === "GET"
            ? "files.content"
            : action === undefined && method === "GET"
              ? "files.retrieve"
              : action === undefined && method === "DELETE"
                ? "files.delete"
                : undefined
        if (operation === undefined) return invalid
        return { operation, run: Effect.sync(() => files.one(operation, id)) }
      }
      return invalid
    }

    const handle = (received: Request): Effect.Effect<Reply> =>
      Effect.gen(function* () {
        // what a test sees of a request is what came (Azure's path and api-version included),
        // never its key (Azure's goes as api-key)
        const { authorization: _a, "api-key": _k, ...headers } = received.headers
        seen.push({ method: received.method, path: received.path, query: received.query.toString(), headers })
        const azure = options.provider.name === "azure" ? fromAzure(received, options.apiKey) : received
        if ("_tag" in azure) return azure
        const req = azure
        const { authorization } = req.headers
        const requestId = nextId("req_", 32)
        const withId = (reply: Reply): Reply =>
          reply._tag === "Answer"
            ? { ...reply, headers: { ...reply.headers, "x-request-id": requestId } }
            : reply
        const denied = unauthorized(options.apiKey, authorization)
        if (denied !== undefined) return withId(denied)
        const { operation, run } = route(req, yield* options.now)
        const fault = yield* faults.take(operation)
        return yield* fault === undefined ? Effect.map(run, withId) : Faults.apply(fault, run, withId)
      })

    return {
      handle,
      inject: faults.inject,
      clearFaults: faults.clear,
      pendingFaults: faults.pending,
      batches: Effect.flatMap(options.now, batches.all),
      files: Effect.sync(files.all),
      requests: Effect.sync(() => [...seen]),
      takeEnded: Effect.flatMap(options.now, batches.takeEnded),
      deliveryFault: faults.take("webhooks.deliver")
    } satisfies Engine
  })
