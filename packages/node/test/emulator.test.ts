import { BatchService } from "@batchkit/core"
import { Simulator } from "@batchkit/core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Emulator, NodeBatch } from "../src/index.js"

// Emulator.layer with faults armed from the start, and the client layer built from its URL
const Live = Layer.unwrapEffect(
  Effect.map(Emulator.Emulator, (emulator) => NodeBatch.layer({ apiKey: "sk-layer", baseUrl: emulator.url }))
).pipe(
  Layer.provideMerge(
    Emulator.layer({
      apiKey: "sk-layer",
      faults: [{ operation: "batches.list", fault: Simulator.serverError(503), times: 1 }]
    })
  )
)

describe("Emulator.layer", () => {
  layer(Live, { excludeTestServices: true })((it) => {
    it.effect("serves from the layer, with faults armed at start hitting the first calls", () =>
      Effect.gen(function* () {
        const emulator = yield* Emulator.Emulator
        expect(emulator.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/)
        expect(yield* emulator.simulator.pendingFaults).toHaveLength(1)
        const page = yield* Effect.flatMap(BatchService.BatchService, (b) => b.list())
        expect(page.data).toEqual([])
        expect(yield* emulator.simulator.pendingFaults).toHaveLength(0)
        const lists = (yield* emulator.simulator.requests).filter((r) => r.path === "/v1/batches")
        expect(lists).toHaveLength(2)
      })
    )
  })
})
