/**
 * @batchkit/core/testing: the simulator, for tests that run batchkit programs without a network.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Responder from "./Responder.js"

/** @since 0.1.0 */
export * as Simulator from "./Simulator.js"
