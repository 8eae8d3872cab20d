/**
 * @batchkit/jobs: batch work of any size as one durable job, on Effect's workflow engine.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Job from "./Job.js"

/** @since 0.1.0 */
export * as Jobs from "./Jobs.js"

/** @since 0.1.0 */
export * as Planner from "./Planner.js"

/** @since 0.1.0 */
export * as Prices from "./Prices.js"
