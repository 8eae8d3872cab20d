/**
 * Webhooks end to end: the emulator signs and delivers batch events, NodeWebhooks receives and
 * verifies them, and a watcher wakes on them; the official SDK agrees with the signatures.
 */
import { BatchService, FileService, Webhooks } from "@batchkit/core"
import { Simulator } from "@batchkit/core/testing"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Queue, Redacted, Schedule, type Scope, Stream } from "effect"
import OpenAI from "openai"
import { Emulator, NodeBatch, NodeWebhooks } from "../src/index.js"

const apiKey = "sk-hooks"
const secretText = `whsec_${Buffer.from("thirty-two bytes of webhook key!").toString("base64")}`
const secret = Redacted.make(secretText)
const line = (i: number) =>
  JSON.stringify({
    custom_id: `c${i}`,
    method: "POST",
    url: "/v1/embeddings",
    body: { model: "e", input: `t${i}` }
  })

/** The receiver, an emulator delivering to it, and the batch services over the emulator. */
const withStack = <A, E>(
  f: (
    emulator: Emulator.Service,
    receiver: NodeWebhooks.Receiver
  ) => Effect.Effect<
    A,
    E,
    BatchService.BatchService | FileService.FileService | Webhooks.Events | Scope.Scope
  >
) =>
  Effect.gen(function* () {
    const receiver = yield* NodeWebhooks.NodeWebhookReceiver
    const emulator = yield* Emulator.serve({ apiKey, speed: 50, webhooks: [{ url: receiver.url, secret }] })
    return yield* f(emulator, receiver).pipe(
      Effect.provide(NodeBatch.layer({ apiKey, baseUrl: emulator.url }))
    )
  }).pipe(Effect.scoped, Effect.provide(NodeWebhooks.layer({ secret })))

const submit = Effect.gen(function* () {
  const files = yield* FileService.FileService
  const file = yield* files.upload(FileService.fromBytes("in.jsonl", `${line(0)}\n${line(1)}\n`))
  return yield* Effect.flatMap(BatchService.BatchService, (b) =>
    b.create({ input_file_id: file.id, endpoint: "/v1/embeddings" })
  )
})

const retrieves = (emulator: Emulator.Service, id: string) =>
  Effect.map(emulator.simulator.requests, (all) => all.filter((r) => r.path === `/v1/batches/${id}`).length)

describe("webhooks from the emulator to a watcher", () => {
  it.live(
    "a delivered event wakes the watcher at once, which then stops polling that batch",
    () =>
      withStack((emulator) =>
        Effect.gen(function* () {
          const batch = yield* submit
          const start = Date.now()
          // the fallback poll would come after 30 s: the event must end the watch well before
          const ended = yield* Effect.flatMap(BatchService.BatchService, (b) => b.await(batch.id))
          expect(ended.status).toBe("completed")
          expect(Date.now() - start).toBeLessThan(10_000)
          expect(yield* retrieves(emulator, batch.id)).toBe(2)
          yield* Effect.sleep("500 millis")
          expect(yield* retrieves(emulator, batch.id)).toBe(2)
        })
      ),
    { timeout: 20_000 }
  )

  it.live(
    "a delivery with a bad signature is refused and does not wake anyone; a lost one neither: the fallback poll ends the watch",
    () =>
      withStack((emulator) =>
        Effect.gen(function* () {
          const events = yield* Webhooks.Events
          const heard = yield* events.subscribe
          for (const fault of [Simulator.badSignature, Simulator.lostDelivery]) {
            yield* emulator.simulator.inject("webhooks.deliver", fault, 1)
            const batch = yield* submit
            const ended = yield* Effect.flatMap(BatchService.BatchService, (b) =>
              b.await(batch.id, { schedule: Schedule.spaced("2 seconds") })
            )
            expect(ended.status).toBe("completed")
            expect(yield* retrieves(emulator, batch.id)).toBeGreaterThanOrEqual(2)
            const got = Chunk.toArray(yield* Queue.takeAll(heard))
            expect(got.filter((e) => Webhooks.isBatchEvent(e) && e.data.id === batch.id)).toEqual([])
          }
        })
      ),
    { timeout: 30_000 }
  )

  it.live("watchMany wakes on events too", () =>
    withStack(() =>
      Effect.gen(function* () {
        const ids = [(yield* submit).id, (yield* submit).id, (yield* submit).id]
        const start = Date.now()
        const all = yield* Effect.flatMap(BatchService.BatchService, (b) =>
          Stream.runCollect(b.watchMany(ids))
        )
        expect(
          new Set(
            Chunk.toArray(all)
              .filter((b) => b.isTerminal)
              .map((b) => b.id)
          )
        ).toEqual(new Set(ids))
        expect(Date.now() - start).toBeLessThan(10_000)
      })
    )
  )

  it.live("the receiver answers only genuine, small deliveries; everything else gets a bare 400", () =>
    withStack((_, receiver) =>
      Effect.gen(function* () {
        const body = JSON.stringify({
          id: "evt_1",
          object: "event",
          type: "batch.completed",
          created_at: 1,
          data: { id: "batch_1" }
        })
        const now = Math.floor(Date.now() / 1000)
        const signature = yield* Webhooks.sign(secret, "msg_1", now, body)
        const post = (headers: Record<string, string>, payload: string) =>
          Effect.promise(async () => {
            const res = await fetch(receiver.url, { method: "POST", headers, body: payload })
            return { status: res.status, text: await res.text() }
          })
        const headers = {
          "webhook-id": "msg_1",
          "webhook-timestamp": String(now),
          "webhook-signature": signature
        }
        expect((yield* post(headers, body)).status).toBe(200)
        for (const [h, b] of [
          [headers, body.replace("batch_1", "batch_2")],
          [{ ...headers, "webhook-timestamp": String(now - 1000) }, body],
          [{ "webhook-id": "msg_1" }, body],
          [headers, "x".repeat(100_000)]
        ] as const) {
          const answer = yield* post(h, b)
          expect(answer).toEqual({ status: 400, text: "" })
        }
        expect(receiver.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/webhooks$/)
      })
    )
  )
})

describe("signatures the official SDK agrees with", () => {
  it.live(
    "openai.webhooks.unwrap accepts what Webhooks.sign makes, and Webhooks.verify what it would accept",
    () =>
      Effect.gen(function* () {
        const body = JSON.stringify({
          id: "evt_9",
          object: "event",
          type: "batch.expired",
          created_at: 1,
          data: { id: "batch_9" }
        })
        const now = Math.floor(Date.now() / 1000)
        const headers = {
          "webhook-id": "msg_9",
          "webhook-timestamp": String(now),
          "webhook-signature": yield* Webhooks.sign(secret, "msg_9", now, body)
        }
        const client = new OpenAI({ apiKey: "sk-unused", webhookSecret: secretText })
        const unwrapped = yield* Effect.promise(() => client.webhooks.unwrap(body, headers))
        expect(unwrapped.type).toBe("batch.expired")
        const ours = yield* Webhooks.verify(secret, headers, body)
        expect(ours).toBeInstanceOf(Webhooks.BatchExpired)
      })
  )
})
