import { BatchService, FileService } from "@batchkit/core"
import { NodeBatch, NodeFileSource } from "@batchkit/node"
import { Effect, Stream } from "effect"

const program = Effect.gen(function* () {
  const batches = yield* BatchService.BatchService
  const files = yield* FileService.FileService

  // streamed from disk, never whole in memory; a retried upload re-reads the file
  const file = yield* files.upload(yield* NodeFileSource.fromPath("requests.jsonl"))
  // retried on 429/5xx/resets without ever making two batches (see "Idempotent create")
  const batch = yield* batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions" })
  // polls about every second, backing off to once a minute while nothing changes
  const ended = yield* batches.await(batch.id)
  // output and error files merged, typed per line, in constant memory
  yield* files.results(ended).pipe(
    Stream.runForEach(
      (outcome) => Effect.log(outcome.customId, outcome._tag) // Succeeded | Failed | Expired | Cancelled | Errored
    )
  )
})

// OPENAI_API_KEY (required), OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_PROJECT_ID
Effect.runPromise(program.pipe(Effect.provide(NodeBatch.layerConfig())))
