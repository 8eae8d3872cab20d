/**
 * Layers that give both batchkit services over Node's undici HTTP client.
 *
 * @since 0.1.0
 * @example
 * ```ts
 * import { BatchService } from "@batchkit/core"
 * import { NodeBatch } from "@batchkit/node"
 * import { Effect } from "effect"
 *
 * const program = Effect.flatMap(BatchService.BatchService, (batches) => batches.retrieve("batch_abc"))
 * // OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_PROJECT_ID from the environment
 * Effect.runPromise(program.pipe(Effect.provide(NodeBatch.layerConfig())))
 * ```
 */
import { BatchConfig, BatchService, FileService } from "@batchkit/core"
import type { ConfigError } from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as HttpClient from "./internal/httpClient.js"

/**
 * Both services over undici, given a `BatchConfig`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerServices: Layer.Layer<
  BatchService.BatchService | FileService.FileService,
  never,
  BatchConfig.BatchConfig
> = Layer.mergeAll(BatchService.layer, FileService.layer).pipe(
  // a body that stops arriving for `timeout` fails (a download's headers are bounded by core)
  Layer.provide(
    Layer.unwrapEffect(
      Effect.map(BatchConfig.BatchConfig, (config) => HttpClient.layer({ bodyIdleTimeout: config.timeout }))
    )
  )
)

/**
 * Both services, configured explicitly.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: BatchConfig.Options
): Layer.Layer<BatchService.BatchService | FileService.FileService> =>
  layerServices.pipe(Layer.provide(BatchConfig.layer(options)))

/**
 * Both services, configured from `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_ORG_ID` and
 * `OPENAI_PROJECT_ID`; `overrides` win over the environment.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  overrides?: Partial<BatchConfig.Options>
): Layer.Layer<BatchService.BatchService | FileService.FileService, ConfigError> =>
  layerServices.pipe(Layer.provide(BatchConfig.layerConfig(overrides)))
