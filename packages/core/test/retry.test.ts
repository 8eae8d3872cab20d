import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Schedule, TestClock } from "effect"
import { BatchService, RetryPolicy } from "../src/index.js"
import { batchJson, errorJson, makeMock, type Reply, servicesLayer } from "./support/mock.js"

/** Answers with `failures` in turn, then with a batch. */
const scripted = (failures: Array<Reply>, options: Parameters<typeof servicesLayer>[1] = {}) => {
  let n = 0
  const mock = makeMock(() => failures[n++] ?? { status: 200, json: batchJson("batch_1") })
  return { mock, layer: servicesLayer(mock, options) }
}

const retrieveIn = (layer: ReturnType<typeof scripted>["layer"]) =>
  BatchService.BatchService.pipe(
    Effect.flatMap((s) => s.retrieve("batch_1")),
    Effect.provide(layer),
    Effect.either,
    Effect.fork
  )

const limited = (headers: Record<string, string>): Reply => ({
  status: 429,
  json: errorJson("slow down", "requests", "rate_limit_exceeded"),
  headers
})

describe("retry", () => {
  it.effect("honours retry-after-ms", () =>
    Effect.gen(function* () {
      const { mock, layer } = scripted([limited({ "retry-after-ms": "1500", "retry-after": "30" })])
      const fiber = yield* retrieveIn(layer)
      yield* TestClock.adjust("1499 millis")
      expect(mock.requests.length).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect((yield* Fiber.join(fiber))._tag).toBe("Right")
      expect(mock.requests.length).toBe(2)
    })
  )

  it.effect("honours retry-after in seconds", () =>
    Effect.gen(function* () {
      const { mock, layer } = scripted([limited({ "retry-after": "10" })])
      const fiber = yield* retrieveIn(layer)
      yield* TestClock.adjust("9 seconds")
      expect(mock.requests.length).toBe(1)
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(fiber))._tag).toBe("Right")
    })
  )

  it.effect("honours retry-after as an HTTP date", () =>
    Effect.gen(function* () {
      // TestClock starts at 0, so the epoch plus 20 s is 20 s from now
      const { mock, layer } = scripted([limited({ "retry-after": new Date(20_000).toUTCString() })])
      const fiber = yield* retrieveIn(layer)
      yield* TestClock.adjust("19 seconds")
      expect(mock.requests.length).toBe(1)
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(fiber))._tag).toBe("Right")
    })
  )

  it.effect("falls back to the backoff when the server asks for more than 60 s", () =>
    Effect.gen(function* () {
      const { mock, layer } = scripted([limited({ "retry-after": "3600" })])
      const fiber = yield* retrieveIn(layer)
      yield* TestClock.adjust("500 millis")
      expect((yield* Fiber.join(fiber))._tag).toBe("Right")
      expect(mock.requests.length).toBe(2)
    })
  )

  it.effect("backs off 0.5 s, 1 s, 2 s … capped at 8 s, with at most 25% jitter off", () =>
    Effect.gen(function* () {
      const failures = Array.from(
        { length: 6 },
        (): Reply => ({ status: 500, json: errorJson("boom", "server_error") })
      )
      const { mock, layer } = scripted(failures, { maxRetries: 6 })
      const fiber = yield* retrieveIn(layer)
      yield* TestClock.adjust("1 minute")
      const gaps = mock.requests.slice(1).map((r, i) => r.at - mock.requests[i]!.at)
      const expected = [500, 1000, 2000, 4000, 8000, 8000]
      expect(gaps.length).toBe(expected.length)
      for (const [i, delay] of expected.entries()) {
        expect(gaps[i]).toBeGreaterThanOrEqual(delay * 0.75)
        expect(gaps[i]).toBeLessThanOrEqual(delay)
      }
      expect((yield* Fiber.join(fiber))._tag).toBe("Right")
    })
  )

  it.effect("gives up after maxRetries with the last error", () =>
    Effect.gen(function* () {
      const failures = Array.from(
        { length: 5 },
        (): Reply => ({ status: 503, json: errorJson("busy", "server_error") })
      )
      const { mock, layer } = scripted(failures)
      const fiber = yield* retrieveIn(layer)
      yield* TestClock.adjust("1 minute")
      const result = yield* Fiber.join(fiber)
      expect(result._tag === "Left" && result.left._tag).toBe("ServerError")
      expect(mock.requests.length).toBe(3)
    })
  )

  it.effect("retries resets, 408 and 5xx", () =>
    Effect.gen(function* () {
      const { mock, layer } = scripted(
        [{ reset: "before" }, { status: 408, text: "" }, { status: 502, text: "" }],
        { maxRetries: 3 }
      )
      const fiber = yield* retrieveIn(layer)
      yield* TestClock.adjust("1 minute")
      expect((yield* Fiber.join(fiber))._tag).toBe("Right")
      expect(mock.requests.length).toBe(4)
    })
  )

  it.effect("never retries a quota 429, a 409, a 400 or a 404", () =>
    Effect.gen(function* () {
      const once: Array<Reply> = [
        { status: 429, json: errorJson("quota", "insufficient_quota", "insufficient_quota") },
        { status: 409, json: errorJson("Cannot cancel a batch with status 'completed'.") },
        { status: 400, json: errorJson("bad") },
        { status: 404, json: errorJson("missing") }
      ]
      for (const reply of once) {
        const { mock, layer } = scripted([reply, reply, reply])
        const fiber = yield* retrieveIn(layer)
        yield* TestClock.adjust("1 minute")
        expect((yield* Fiber.join(fiber))._tag).toBe("Left")
        expect(mock.requests.length).toBe(1)
      }
    })
  )

  it.effect("x-should-retry wins both ways", () =>
    Effect.gen(function* () {
      const no = scripted([{ status: 503, json: errorJson("busy"), headers: { "x-should-retry": "false" } }])
      const f1 = yield* retrieveIn(no.layer)
      yield* TestClock.adjust("1 minute")
      expect((yield* Fiber.join(f1))._tag).toBe("Left")
      expect(no.mock.requests.length).toBe(1)

      const yes = scripted([
        { status: 409, json: errorJson("try again"), headers: { "x-should-retry": "true" } }
      ])
      const f2 = yield* retrieveIn(yes.layer)
      yield* TestClock.adjust("1 minute")
      expect((yield* Fiber.join(f2))._tag).toBe("Right")
      expect(yes.mock.requests.length).toBe(2)
    })
  )

  it.effect("a hung attempt times out and is retried", () =>
    Effect.gen(function* () {
      const { mock, layer } = scripted([{ hang: true }], { timeout: "5 seconds" })
      const fiber = yield* retrieveIn(layer)
      yield* TestClock.adjust("5 seconds")
      expect(mock.requests.length).toBe(1)
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(fiber))._tag).toBe("Right")
      expect(mock.requests.length).toBe(2)
    })
  )

  it.effect("a timeout on the last attempt is a TransportError with reason Timeout", () =>
    Effect.gen(function* () {
      const { layer } = scripted([{ hang: true }], { timeout: "5 seconds", maxRetries: 0 })
      const fiber = yield* retrieveIn(layer)
      yield* TestClock.adjust("5 seconds")
      const result = yield* Fiber.join(fiber)
      expect(result._tag === "Left" && result.left._tag === "TransportError" && result.left.reason).toBe(
        "Timeout"
      )
    })
  )

  it.effect("the policy is a Schedule a user can replace", () =>
    Effect.gen(function* () {
      const failures = Array.from({ length: 4 }, (): Reply => ({ status: 500, text: "" }))
      const { mock, layer } = scripted(failures, {
        retry: Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(4)))
      })
      const fiber = yield* retrieveIn(layer)
      yield* TestClock.adjust("3 seconds")
      expect(mock.requests.length).toBe(4)
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(fiber))._tag).toBe("Right")
    })
  )

  it.effect("RetryPolicy.none never retries", () =>
    Effect.gen(function* () {
      const { mock, layer } = scripted([{ status: 503, text: "" }], { retry: RetryPolicy.none })
      const fiber = yield* retrieveIn(layer)
      yield* TestClock.adjust("1 minute")
      expect((yield* Fiber.join(fiber))._tag).toBe("Left")
      expect(mock.requests.length).toBe(1)
    })
  )
})
