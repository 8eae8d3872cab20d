/**
 * A webhook receiver on Node: an HTTP server whose one route (`POST /webhooks` by default)
 * verifies OpenAI's signed batch events and publishes them to `Webhooks.Events`, where
 * `BatchService.watch` and `watchMany` pick them up. It binds to 127.0.0.1 unless told otherwise
 * (put it behind your proxy, or give `host: "0.0.0.0"` knowingly).
 *
 * @since 0.2.0
 * @example
 * ```ts
 * import { BatchService, Webhooks } from "@batchkit/core"
 * import { NodeBatch, NodeWebhooks } from "@batchkit/node"
 * import { Effect, Layer, Redacted } from "effect"
 *
 * const program = Effect.flatMap(BatchService.BatchService, (b) => b.await("batch_abc"))
 * const receiver = NodeWebhooks.layer({ secret: Redacted.make(process.env.OPENAI_WEBHOOK_SECRET!), port: 8788 })
 * Effect.runPromise(program.pipe(Effect.provide(Layer.merge(NodeBatch.layerConfig(), receiver))))
 * ```
 */
import { Webhooks } from "@batchkit/core"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import { createServer } from "node:http"
import { ListenError } from "./Emulator.js"

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** The endpoint's signing secret (`whsec_…`, as the dashboard shows it). */
  readonly secret: Redacted.Redacted<string>
  /** Default 127.0.0.1. */
  readonly host?: string | undefined
  /** Default 0: a free port. */
  readonly port?: number | undefined
  /** Default `/webhooks`. */
  readonly path?: `/${string}` | undefined
  /** Bodies over this many bytes are refused unread. Default 64 KiB. */
  readonly maxBodyBytes?: number | undefined
}

/**
 * Where the receiver listens.
 *
 * @since 0.2.0
 * @category models
 */
export interface Receiver {
  /** e.g. `http://127.0.0.1:8788/webhooks`: the URL to register (behind whatever proxy reaches it). */
  readonly url: string
  readonly port: number
}

/**
 * @since 0.2.0
 * @category tags
 */
export class NodeWebhookReceiver extends Context.Tag("@batchkit/node/NodeWebhooks/Receiver")<
  NodeWebhookReceiver,
  Receiver
>() {}

/**
 * The receiver and the event hub it publishes to: provide it beside the batch services, and
 * watchers wake on events.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Webhooks.Events | NodeWebhookReceiver, ListenError> => {
  const path = options.path ?? "/webhooks"
  const host = options.host ?? "127.0.0.1"
  const router = HttpRouter.empty.pipe(HttpRouter.post(path, Webhooks.receiver(options)))
  const server = NodeHttpServer.layer(() => createServer(), { port: options.port ?? 0, host }).pipe(
    Layer.mapError(
      (e) => new ListenError({ message: `cannot listen on ${host}:${options.port ?? 0}: ${e.message}` })
    )
  )
  const receiver = Layer.effect(
    NodeWebhookReceiver,
    HttpServer.addressWith((address) =>
      Effect.succeed(
        address._tag === "TcpAddress"
          ? { url: `http://${host}:${address.port}${path}`, port: address.port }
          : { url: `unix:${address.path}${path}`, port: 0 }
      )
    )
  )
  return Layer.merge(HttpServer.serve(router), receiver).pipe(
    Layer.provide(server),
    Layer.provideMerge(Webhooks.layerEvents)
  )
}
