/**
 * The emulator: the simulator of `@batchkit/core/testing` served over the real wire protocol on
 * 127.0.0.1, for clients that speak HTTP (the official SDKs, curl, the CLI, benchmarks).
 *
 * Its batches move `speed` times faster than the wall clock; the times in its answers are wall
 * clock times (a batch made now says so, and one that takes a simulated hour shows a minute at
 * speed 60). Ids are unique per emulator, so two emulators never hand out the same one.
 *
 * Faults can be armed at start (`faults`) and at run time through an admin route:
 *
 * - `POST /__admin/faults` with `{"operation": "batches.create", "fault": {"_tag": "ResetAfter"}, "times": 1}`
 *   (or an array of them) arms faults; `GET` lists the armed ones; `DELETE` disarms all.
 * - `GET /__admin/batches` lists every batch as the API would show it now.
 * - `GET /__admin/requests` lists every API request so far (method, path, query), in order.
 *
 * @since 0.1.0
 */
import { Webhooks } from "@batchkit/core"
import { Simulator } from "@batchkit/core/testing"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Data from "effect/Data"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

/**
 * @since 0.1.0
 * @category models
 */
export interface WebhookTarget {
  /** Where events are POSTed. */
  readonly url: string
  /** The endpoint's signing secret (`whsec_…`). */
  readonly secret: Redacted.Redacted<string> | string
}

export interface Options extends Omit<Simulator.Options, "now" | "stamp"> {
  /**
   * Endpoints that get a signed `batch.completed` / `failed` / `expired` / `cancelled` event when
   * a batch ends, the way OpenAI's webhooks deliver them (Standard Webhooks signing). Faults aimed
   * at `webhooks.deliver` sign one with the wrong secret (`BadSignature`) or drop it (`Lost`).
   */
  readonly webhooks?: ReadonlyArray<WebhookTarget> | undefined
  /**
   * Told of each API request before the simulator acts on it and after (before the answer is
   * sent): for tests that act at an exact point of a client's work, such as killing it right
   * after the server made a batch and before the client heard of it. `headers` and `body` are the
   * request's own (the body read whole).
   */
  readonly onRequest?:
    | ((
        request: {
          readonly method: string
          readonly path: string
          readonly headers: Readonly<Record<string, string>>
          readonly body: Uint8Array
        },
        when: "before" | "after"
      ) => void | Promise<void>)
    | undefined
  /** Default 0: a free port. */
  readonly port?: number | undefined
  /**
   * How much faster than the wall clock the batches move. Default 60: a minute a second, so a
   * batch of a few hundred lines completes in seconds and the 24 h window closes in 24 minutes.
   */
  readonly speed?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** e.g. `http://127.0.0.1:43111/v1` (Azure: `…/openai`): what clients take as their base URL. */
  readonly url: string
  readonly port: number
  /** The simulator behind it: arm faults, look at batches and requests. */
  readonly simulator: Simulator.Service
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Emulator extends Context.Tag("@batchkit/node/Emulator")<Emulator, Service>() {}

/**
 * The server could not listen (the port is taken, say).
 *
 * @since 0.1.0
 * @category errors
 */
export class ListenError extends Data.TaggedError("ListenError")<{ readonly message: string }> {}

const readBody = (req: IncomingMessage) =>
  new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)))
    req.on("error", reject)
  })

const sendJson = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, {
    "content-type": "application/json",
    "x-request-id": `req_admin_${randomUUID().replaceAll("-", "")}`
  })
  res.end(JSON.stringify(body))
}

const admin = async (
  simulator: Simulator.Service,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  body: Uint8Array
) => {
  if (path === "/__admin/faults") {
    if (req.method === "GET")
      return sendJson(res, 200, { faults: await Effect.runPromise(simulator.pendingFaults) })
    if (req.method === "DELETE") {
      await Effect.runPromise(simulator.clearFaults)
      return sendJson(res, 200, { faults: [] })
    }
    if (req.method === "POST") {
      let rules: unknown
      try {
        rules = JSON.parse(new TextDecoder().decode(body))
      } catch {
        return sendJson(res, 400, {
          error: { message: "the body must be JSON", type: "invalid_request_error", param: null, code: null }
        })
      }
      const list = (Array.isArray(rules) ? rules : [rules]) as Array<Simulator.FaultRule>
      const tags = new Set<string>(Simulator.faultTags)
      for (const rule of list) {
        const known =
          rule?.operation === "*" || Simulator.operations.includes(rule?.operation as Simulator.Operation)
        if (!known || !tags.has(rule?.fault?._tag)) {
          return sendJson(res, 400, {
            error: {
              message: `each fault needs an operation (${["*", ...Simulator.operations].join(", ")}) and a fault._tag (${[...tags].join(", ")})`,
              type: "invalid_request_error",
              param: "fault",
              code: null
            }
          })
        }
      }
      for (const rule of list)
        await Effect.runPromise(simulator.inject(rule.operation, rule.fault, rule.times ?? 1))
      return sendJson(res, 200, { faults: await Effect.runPromise(simulator.pendingFaults) })
    }
  }
  if (path === "/__admin/requests" && req.method === "GET") {
    // what a test or a benchmark counts: method, path and query of each API request, in order
    // (never the headers: they carry the key)
    const seen = await Effect.runPromise(simulator.requests)
    return sendJson(res, 200, {
      data: seen.map((r) => ({ method: r.method, path: r.path, query: r.query }))
    })
  }
  if (path === "/__admin/batches" && req.method === "GET") {
    return sendJson(res, 200, { data: await Effect.runPromise(simulator.batches) })
  }
  sendJson(res, 404, {
    error: {
      message: `no admin route ${req.method} ${path}`,
      type: "invalid_request_error",
      param: null,
      code: null
    }
  })
}

const wrongSecret = Redacted.make(`whsec_${Buffer.from("not the endpoint's secret").toString("base64")}`)

/** One event to one endpoint: three tries, a second apart, as a sender that gives up would. */
const deliver = (target: WebhookTarget, body: string, fault: Simulator.Fault | undefined) =>
  Effect.gen(function* () {
    if (fault?._tag === "Lost") return
    const secret = typeof target.secret === "string" ? Redacted.make(target.secret) : target.secret
    const id = `msg_${randomUUID().replaceAll("-", "")}`
    const attempt = Effect.gen(function* () {
      const timestamp = Math.floor(Date.now() / 1000)
      const signature = yield* Webhooks.sign(
        fault?._tag === "BadSignature" ? wrongSecret : secret,
        id,
        timestamp,
        body
      )
      const response = yield* Effect.tryPromise(() =>
        fetch(target.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "webhook-id": id,
            "webhook-timestamp": String(timestamp),
            "webhook-signature": signature
          },
          body,
          signal: AbortSignal.timeout(10_000)
        })
      )
      yield* Effect.promise(() => response.arrayBuffer())
      if (!response.ok && fault?._tag !== "BadSignature") return yield* Effect.fail(response.status)
    })
    yield* attempt.pipe(
      Effect.retry(Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(2)))),
      Effect.ignore
    )
  })

/** Sends the events of batches that have ended, as they end. */
const deliverWebhooks = (simulator: Simulator.Service, targets: ReadonlyArray<WebhookTarget>) =>
  Effect.gen(function* () {
    for (const ended of yield* simulator.takeEnded) {
      const body = JSON.stringify({
        id: `evt_${randomUUID().replaceAll("-", "")}`,
        object: "event",
        type: `batch.${ended.status}`,
        created_at: ended.endedAt,
        data: { id: ended.id }
      })
      for (const target of targets)
        yield* Effect.forkDaemon(Effect.flatMap(simulator.deliveryFault, (f) => deliver(target, body, f)))
    }
  }).pipe(Effect.repeat(Schedule.spaced("100 millis")))

/**
 * Starts the emulator for the life of the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = (options: Options = {}): Effect.Effect<Service, ListenError, Scope.Scope> =>
  Effect.gen(function* () {
    const speed = options.speed ?? 60
    if (!(speed > 0)) return yield* Effect.dieMessage("Emulator: speed must be above 0")
    // batches live on a clock `speed` times faster than the wall clock, from now on; the times
    // they show are mapped back to the wall clock, so a batch made now says it was made now
    const origin = Date.now()
    const simulator = yield* Simulator.make({
      ...options,
      now: Effect.sync(() => origin + (Date.now() - origin) * speed),
      stamp: (simulated) => origin + (simulated - origin) / speed
    })
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1")
      readBody(req)
        .then(async (body) => {
          if (url.pathname.startsWith("/__admin/")) return admin(simulator, req, res, url.pathname, body)
          const headers: Record<string, string> = {}
          for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v
          const seen = { method: req.method ?? "GET", path: url.pathname, headers, body }
          await options.onRequest?.(seen, "before")
          const reply = await Effect.runPromise(
            simulator.handle({
              method: req.method ?? "GET",
              path: url.pathname,
              query: url.searchParams,
              headers,
              body
            })
          )
          await options.onRequest?.(seen, "after")
          if (reply._tag === "Reset") return void req.socket.destroy()
          res.writeHead(reply.status, { ...reply.headers, "content-length": String(reply.body.byteLength) })
          if (reply.truncate) {
            res.write(reply.body.subarray(0, Math.floor(reply.body.byteLength / 2)), () => res.destroy())
            return
          }
          res.end(reply.body)
        })
        .catch((error: unknown) => {
          if (res.headersSent) return void res.destroy()
          sendJson(res, 500, {
            error: {
              message: `emulator failure: ${String(error)}`,
              type: "server_error",
              param: null,
              code: null
            }
          })
        })
    })
    // keep idle connections longer than clients do (undici: 4 s), so a client never reuses one
    // the server is closing; the Node default of 5 s races with them
    server.keepAliveTimeout = 65_000
    server.headersTimeout = 66_000
    yield* Effect.async<void, ListenError>((resume) => {
      server.once("error", (error) =>
        resume(
          Effect.fail(
            new ListenError({ message: `cannot listen on 127.0.0.1:${options.port ?? 0}: ${error.message}` })
          )
        )
      )
      server.listen(options.port ?? 0, "127.0.0.1", () => resume(Effect.void))
    })
    yield* Effect.addFinalizer(() =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
    )
    if ((options.webhooks ?? []).length > 0)
      yield* Effect.forkScoped(deliverWebhooks(simulator, options.webhooks!))
    const { port } = server.address() as AddressInfo
    // Azure clients take the resource endpoint's /openai (with an api-version) or /openai/v1
    return {
      url: `http://127.0.0.1:${port}${options.provider?.name === "azure" ? "/openai" : "/v1"}`,
      port,
      simulator
    }
  })

/**
 * The emulator as a layer: started when the layer is built, stopped when it is released.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<Emulator, ListenError> =>
  Layer.scoped(Emulator, serve(options))

/**
 * Starts the emulator outside Effect (for test suites of other clients): `close()` stops it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = async (
  options?: Options
): Promise<Service & { readonly close: () => Promise<void> }> => {
  const scope = Effect.runSync(Scope.make())
  const service = await Effect.runPromise(Scope.extend(serve(options), scope)).catch(
    async (error: unknown) => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      throw error
    }
  )
  return { ...service, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}
