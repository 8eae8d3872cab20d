// How much of a fiber's result outlives it through young-generation collections: the cost that
// keeps a page returned by `Effect.runPromise` from dying young (README, Performance).
//   node --expose-gc bench/fiber-retention.mjs
// For each way of producing a 70 KB JSON value (100 batches) it runs 60 of them, and after each
// one's end and two event-loop turns measures how much old space two minor collections add:
// about the value's size when the value survived them, about 0 when it died young.
import { Deferred, Effect } from "effect"
import { getHeapSpaceStatistics } from "node:v8"

if (typeof globalThis.gc !== "function") throw new Error("run with node --expose-gc")
const batch = {
  id: "batch_abc123",
  object: "batch",
  endpoint: "/v1/chat/completions",
  errors: null,
  input_file_id: "file-abc123",
  completion_window: "24h",
  status: "completed",
  output_file_id: "file-cvaTdG",
  error_file_id: "file-HOWS94",
  created_at: 1711471533,
  request_counts: { total: 100, completed: 95, failed: 5 },
  metadata: { customer_id: "user_123456789", batch_description: "Nightly eval job" }
}
const text = JSON.stringify({
  object: "list",
  data: Array.from({ length: 100 }, (_, i) => ({ ...batch, id: `batch_${i}` })),
  has_more: false
})
const oldSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === "old_space").space_used_size
const turn = () => new Promise((resolve) => setImmediate(resolve))

const ways = {
  "a promise, no fiber": () => new Promise((resolve) => setImmediate(() => resolve(JSON.parse(text)))),
  "a fiber, Effect.sync": () => Effect.runPromise(Effect.sync(() => JSON.parse(text))),
  "a fiber, yieldNow then sync": () =>
    Effect.runPromise(
      Effect.zipRight(
        Effect.yieldNow(),
        Effect.sync(() => JSON.parse(text))
      )
    ),
  "a fiber, Effect.async": () =>
    Effect.runPromise(Effect.async((resume) => setImmediate(() => resume(Effect.succeed(JSON.parse(text)))))),
  "a fiber, Deferred.await": () =>
    Effect.runPromise(
      Effect.flatMap(Deferred.make(), (deferred) => {
        setImmediate(() => Deferred.unsafeDone(deferred, Effect.succeed(JSON.parse(text))))
        return Deferred.await(deferred)
      })
    ),
  "a fiber, Effect.async then map": () =>
    Effect.runPromise(
      Effect.map(
        Effect.async((resume) => setImmediate(() => resume(Effect.void))),
        () => JSON.parse(text)
      )
    )
}

for (const [name, run] of Object.entries(ways)) {
  let kept = 0
  for (let i = 0; i < 60; i++) {
    await run()
    await turn()
    await turn()
    const before = oldSpace()
    globalThis.gc({ type: "minor" })
    globalThis.gc({ type: "minor" })
    if (i >= 10) kept += oldSpace() - before
  }
  console.log(`${name.padEnd(32)} ${(kept / 50 / 1024).toFixed(1).padStart(6)} KB kept per run`)
}
