/**
 * @batchkit/node: Node.js layers for @batchkit/core.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as NodeBatch from "./NodeBatch.js"

/** @since 0.1.0 */
export * as NodeFileSource from "./NodeFileSource.js"

/** @since 0.1.0 */
export * as Emulator from "./Emulator.js"

/** @since 0.2.0 */
export * as NodeWebhooks from "./NodeWebhooks.js"
