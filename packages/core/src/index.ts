/**
 * @batchkit/core: an Effect-native client for the OpenAI Batch API.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Batch from "./Batch.js"

/** @since 0.1.0 */
export * as BatchConfig from "./BatchConfig.js"

/** @since 0.1.0 */
export * as BatchError from "./BatchError.js"

/** @since 0.1.0 */
export * as BatchFile from "./BatchFile.js"

/** @since 0.1.0 */
export * as BatchLine from "./BatchLine.js"

/** @since 0.1.0 */
export * as BatchService from "./BatchService.js"

/** @since 0.1.0 */
export * as FileService from "./FileService.js"

/** @since 0.4.0 */
export * as Provider from "./Provider.js"

/** @since 0.1.0 */
export * as RetryPolicy from "./RetryPolicy.js"

/** @since 0.2.0 */
export * as Webhooks from "./Webhooks.js"
