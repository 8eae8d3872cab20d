import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Redacted, Stream, TestClock } from "effect"
import { BatchService, FileService, Webhooks } from "../src/index.js"
import { Simulator } from "../src/testing/index.js"

const secret = Redacted.make(`whsec_${btoa("a secret of thirty-two bytes.....")}`)
const event = (batchId: string, type = "batch.completed") =>
  JSON.stringify({ id: "evt_1", object: "event", type, created_at: 1_700_000_000, data: { id: batchId } })

/** A delivery signed with `key`, stamped `at` (unix seconds). */
const delivery = (body: string, at: number, key = secret) =>
  Effect.map(Webhooks.sign(key, "msg_1", at, body), (signature) => ({
    headers: { "webhook-id": "msg_1", "webhook-timestamp": String(at), "webhook-signature": signature },
    body
  }))

describe("Webhooks.verify", () => {
  it.effect("accepts a genuine delivery and decodes it by type", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(1_700_000_000_000)
      const d = yield* delivery(event("batch_1"), 1_700_000_000)
      const e = yield* Webhooks.verify(secret, d.headers, d.body)
      expect(e).toBeInstanceOf(Webhooks.BatchCompleted)
      expect(Webhooks.isBatchEvent(e) && e.data.id).toBe("batch_1")
      const failed = yield* delivery(event("batch_2", "batch.failed"), 1_700_000_000)
      expect(yield* Webhooks.verify(secret, failed.headers, failed.body)).toBeInstanceOf(Webhooks.BatchFailed)
      const other = yield* delivery(event("resp_1", "response.completed"), 1_700_000_000)
      const o = yield* Webhooks.verify(secret, other.headers, other.body)
      expect(Webhooks.isBatchEvent(o)).toBe(false)
    })
  )

  it.effect(
    "refuses a tampered body, a wrong secret, a stale or future timestamp, missing headers, a body that is not an event",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(1_700_000_000_000)
        const d = yield* delivery(event("batch_1"), 1_700_000_000)
        const reason = (headers: Record<string, string>, body: string) =>
          Effect.map(Effect.flip(Webhooks.verify(secret, headers, body)), (e) => e.reason)
        expect(yield* reason(d.headers, event("batch_2"))).toBe("BadSignature")
        const other = yield* delivery(event("batch_1"), 1_700_000_000, Redacted.make("whsec_b3RoZXI="))
        expect(yield* reason(other.headers, other.body)).toBe("BadSignature")
        const stale = yield* delivery(event("batch_1"), 1_700_000_000 - 301)
        expect(yield* reason(stale.headers, stale.body)).toBe("StaleTimestamp")
        const future = yield* delivery(event("batch_1"), 1_700_000_000 + 301)
        expect(yield* reason(future.headers, future.body)).toBe("StaleTimestamp")
        const within = yield* delivery(event("batch_1"), 1_700_000_000 - 299)
        expect((yield* Webhooks.verify(secret, within.headers, within.body)).id).toBe("evt_1")
        expect(yield* reason({ "webhook-id": "x" }, d.body)).toBe("MissingHeaders")
        const junk = yield* delivery("not json", 1_700_000_000)
        expect(yield* reason(junk.headers, junk.body)).toBe("MalformedBody")
      })
  )

  it.effect("accepts a header with several signatures when one of them matches", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(1_700_000_000_000)
      const d = yield* delivery(event("batch_1"), 1_700_000_000)
      const headers = {
        ...d.headers,
        "webhook-signature": `v1,AAAA v2,zzz ${d.headers["webhook-signature"]}`
      }
      expect((yield* Webhooks.verify(secret, headers, d.body)).id).toBe("evt_1")
      const none = { ...d.headers, "webhook-signature": "v1,AAAA v1,BBBB" }
      expect((yield* Effect.flip(Webhooks.verify(secret, none, d.body))).reason).toBe("BadSignature")
    })
  )
})

describe("watch and watchMany with webhook events", () => {
  const line = (i: number) =>
    JSON.stringify({
      custom_id: `r${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "m", messages: [] }
    })
  const live = Layer.merge(Simulator.layer(), Webhooks.layerEvents)
  const submit = Effect.gen(function* () {
    const files = yield* FileService.FileService
    const batches = yield* BatchService.BatchService
    const file = yield* files.upload(FileService.fromBytes("in.jsonl", `${line(0)}\n${line(1)}\n`))
    return yield* batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions" })
  })
  const retrievesOf = (id: string) =>
    Effect.map(
      Effect.flatMap(Simulator.Simulator, (s) => s.requests),
      (all) => all.filter((r) => r.path === `/v1/batches/${id}`).length
    )

  it.effect("an event wakes the watch at once; the batch is not polled again", () =>
    Effect.gen(function* () {
      const batches = yield* BatchService.BatchService
      const events = yield* Webhooks.Events
      const batch = yield* submit
      const fiber = yield* Effect.fork(Stream.runCollect(batches.watch(batch.id)))
      yield* TestClock.adjust("25 seconds") // it completes at ~20 s; the fallback poll is 30 s out
      expect(yield* retrievesOf(batch.id)).toBe(1)
      yield* events.publish(
        new Webhooks.BatchCompleted({
          id: "evt",
          type: "batch.completed",
          created_at: 0,
          data: { id: batch.id }
        })
      )
      const snapshots = Chunk.toArray(yield* Fiber.join(fiber))
      expect(snapshots.at(-1)?.status).toBe("completed")
      const after = yield* retrievesOf(batch.id)
      expect(after).toBe(2)
      yield* TestClock.adjust("1 hour")
      expect(yield* retrievesOf(batch.id)).toBe(after)
    }).pipe(Effect.provide(live))
  )

  it.effect("a lost event is covered by the fallback poll, for one batch and for many", () =>
    Effect.gen(function* () {
      const batches = yield* BatchService.BatchService
      const one = yield* submit
      const many = [yield* submit, yield* submit, yield* submit]
      const single = yield* Effect.fork(Stream.runCollect(batches.watch(one.id)))
      const set = yield* Effect.fork(Stream.runCollect(batches.watchMany(many.map((b) => b.id))))
      yield* TestClock.adjust("20 minutes")
      expect(Chunk.toArray(yield* Fiber.join(single)).at(-1)?.status).toBe("completed")
      const last = new Map(Chunk.toArray(yield* Fiber.join(set)).map((b) => [b.id, b.status]))
      expect([...last.values()]).toEqual(["completed", "completed", "completed"])
    }).pipe(Effect.provide(live))
  )
})
