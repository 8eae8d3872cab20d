import { BatchService } from "@batchkit/core"
import { NodeBatch } from "@batchkit/node"
import { Effect, Stream } from "effect"

const program = Effect.gen(function* () {
  const batches = yield* BatchService.BatchService
  // every batch not yet ended, followed through list pages: ⌈n/100⌉ requests a cycle
  yield* batches
    .watchMany("unfinished")
    .pipe(Stream.runForEach((b) => Effect.log(b.id, b.status, b.request_counts?.completed ?? 0)))
})

Effect.runPromise(program.pipe(Effect.provide(NodeBatch.layerConfig())))
