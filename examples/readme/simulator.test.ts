import { BatchService, FileService } from "@batchkit/core"
import { Responder, Simulator } from "@batchkit/core/testing"
import { expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Stream, TestClock } from "effect"

// 100 chat requests, one JSON object per line
const jsonl = Array.from({ length: 100 }, (_, i) =>
  JSON.stringify({
    custom_id: `request-${i}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "gpt-4o-mini", messages: [{ role: "user", content: `question ${i}` }] }
  })
).join("\n")

it.effect("every request comes back, once", () =>
  Effect.gen(function* () {
    const files = yield* FileService.FileService
    const batches = yield* BatchService.BatchService
    const sim = yield* Simulator.Simulator
    const file = yield* files.upload(FileService.fromBytes("in.jsonl", jsonl))
    yield* sim.inject("batches.create", Simulator.resetAfter) // the server acts, the answer is lost
    const creating = yield* Effect.fork(
      batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions" })
    )
    yield* TestClock.adjust("1 hour") // the retry, validation and the whole run, in no time
    const done = yield* batches.retrieve((yield* Fiber.join(creating)).id)
    const outcomes = Chunk.toArray(yield* Stream.runCollect(files.results(done)))
    expect(done.status).toBe("completed")
    expect(outcomes.filter((o) => o._tag === "Failed").map((o) => o.customId)).toEqual(["request-7"])
    expect((yield* sim.batches).length).toBe(1)
  }).pipe(Effect.provide(Simulator.layer({ responder: Responder.failing(["request-7"]) })))
)
