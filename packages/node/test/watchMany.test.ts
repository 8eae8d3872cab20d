/**
 * watchMany against the emulator over HTTP: a thousand batches in flight are followed with list
 * pages, ⌈1000/100⌉ = 10 requests a cycle at most, counted on the emulator.
 */
import { BatchService, FileService } from "@batchkit/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schedule, Stream } from "effect"
import { Emulator, NodeBatch } from "../src/index.js"

const apiKey = "sk-watch-many"
const line = (i: number) =>
  JSON.stringify({
    custom_id: `c${i}`,
    method: "POST",
    url: "/v1/embeddings",
    body: { model: "text-embedding-3-small", input: `text ${i}` }
  })

describe("watchMany", () => {
  it.live(
    "follows 1,000 batches to the end with at most 10 list requests per cycle and no retrieves",
    () =>
      Effect.gen(function* () {
        const emulator = yield* Emulator.Emulator
        const batches = yield* BatchService.BatchService
        const files = yield* FileService.FileService
        // batches of 1 to 20 lines end at different times
        const inputs = yield* Effect.forEach(
          Array.from({ length: 20 }, (_, k) => k + 1),
          (n) =>
            files.upload(
              FileService.fromBytes(
                `in-${n}.jsonl`,
                `${Array.from({ length: n }, (_, i) => line(i)).join("\n")}\n`
              )
            ),
          { concurrency: 4 }
        )
        const created = yield* Effect.forEach(
          Array.from({ length: 1000 }, (_, i) => i),
          (i) =>
            batches.create(
              { input_file_id: inputs[i % 20]!.id, endpoint: "/v1/embeddings" },
              { idempotent: false }
            ),
          { concurrency: 16 }
        )
        const ids = created.map((b) => b.id)
        const requests = () =>
          Effect.map(emulator.simulator.requests, (all) =>
            all.filter((r) => r.path.startsWith("/v1/batches"))
          )
        const perCycle: Array<{ list: number; retrieve: number }> = []
        let seen = (yield* requests()).length
        const countCycle = Effect.flatMap(requests(), (all) =>
          Effect.sync(() => {
            const cycle = all.slice(seen)
            seen = all.length
            perCycle.push({
              list: cycle.filter((r) => r.path === "/v1/batches").length,
              retrieve: cycle.filter((r) => r.path !== "/v1/batches").length
            })
          })
        )
        const snapshots = yield* batches
          .watchMany(ids, {
            schedule: Schedule.spaced("100 millis").pipe(Schedule.tapInput(() => countCycle))
          })
          .pipe(Stream.runCollect)
        yield* countCycle
        const last = new Map([...snapshots].map((b) => [b.id, b]))
        expect(last.size).toBe(1000)
        expect([...last.values()].every((b) => b.status === "completed")).toBe(true)
        expect(perCycle.length).toBeGreaterThan(5)
        expect(Math.max(...perCycle.map((c) => c.list))).toBeLessThanOrEqual(10)
        expect(perCycle.every((c) => c.retrieve === 0)).toBe(true)
        // each batch's snapshots change from one to the next, and the first is at once
        const byId = new Map<string, Array<typeof last extends Map<string, infer B> ? B : never>>()
        for (const b of snapshots) byId.set(b.id, [...(byId.get(b.id) ?? []), b])
        for (const list of byId.values()) {
          const keys = list.map((b) => `${b.status}|${JSON.stringify(b.request_counts)}`)
          expect(new Set(keys).size).toBe(keys.length)
        }
      }).pipe(
        Effect.provide(
          Layer.unwrapEffect(
            Effect.map(Emulator.Emulator, (e) => NodeBatch.layer({ apiKey, baseUrl: e.url }))
          ).pipe(Layer.provideMerge(Emulator.layer({ apiKey, speed: 5, requestsPerSecond: 2 })))
        )
      ),
    { timeout: 120_000 }
  )
})
