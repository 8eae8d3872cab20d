import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { Job, Planner, Prices } from "../src/index.js"

const enc = new TextEncoder()
const req = (id: string, url: string, body: Record<string, unknown>) =>
  JSON.stringify({ custom_id: id, method: "POST", url, body })
const input = (name: string, lines: Array<string>) => ({
  name,
  bytes: Stream.fromIterable(lines.map((l) => enc.encode(`${l}\n`)))
})
const plan = (inputs: Array<ReturnType<typeof input>>, options: Job.Options = {}) =>
  Planner.plan(inputs, { options: Job.resolve(options) })

describe("Planner", () => {
  it.effect(
    "groups by (url, model) and cuts in input order by requests, bytes, embedding inputs and tokens",
    () =>
      Effect.gen(function* () {
        const chat = (i: number, model: string) =>
          req(`c${i}`, "/v1/chat/completions", {
            model,
            messages: [{ role: "user", content: "x".repeat(40) }]
          })
        const mixed = yield* plan(
          [input("a.jsonl", [chat(0, "m1"), chat(1, "m2"), chat(2, "m1"), chat(3, "m1"), chat(4, "m2")])],
          { maxRequests: 2 }
        )
        expect(mixed.shards.map((s) => `${s.shard}:${s.model}:${s.requests}`)).toEqual([
          "s0:m1:2",
          "s1:m2:2",
          "s2:m1:1"
        ])
        expect(mixed.models).toEqual(["m1", "m2"])
        const lineBytes = enc.encode(`${chat(0, "m1")}\n`).length
        const bytes = yield* plan(
          [
            input(
              "a.jsonl",
              [0, 1, 2, 3, 4].map((i) => chat(i, "m1"))
            )
          ],
          {
            maxBytes: lineBytes * 2
          }
        )
        expect(bytes.shards.map((s) => s.requests)).toEqual([2, 2, 1])
        const embed = (i: number, n: number) =>
          req(`e${i}`, "/v1/embeddings", { model: "e", input: Array.from({ length: n }, () => "t") })
        const inputs = yield* plan([input("e.jsonl", [embed(0, 3), embed(1, 3), embed(2, 3)])], {
          maxEmbeddingInputs: 6
        })
        expect(inputs.shards.map((s) => s.requests)).toEqual([2, 1])
        const tokens = yield* plan(
          [
            input(
              "a.jsonl",
              [0, 1, 2, 3].map((i) => chat(i, "m1"))
            )
          ],
          {
            maxEnqueuedTokens: { m1: 60 }
          }
        )
        // each request ≈ 25 tokens: two fit under 60
        expect(tokens.shards.map((s) => s.requests)).toEqual([2, 2])
        expect(tokens.shards[0]!.tokens).toBeLessThanOrEqual(60)
      })
  )

  it.effect(
    "a request too large for any batch, an unknown endpoint, and an empty file are problems with their place",
    () =>
      Effect.gen(function* () {
        const big = req("big", "/v1/chat/completions", {
          model: "m",
          messages: [{ role: "user", content: "x".repeat(500) }]
        })
        const error = yield* Effect.flip(
          plan(
            [
              input("a.jsonl", [big, req("z", "/chat/completions", { model: "m" })]),
              input("empty.jsonl", [])
            ],
            {
              maxBytes: 200
            }
          )
        )
        expect(error.problems.map((p) => `${p.file}:${p.line ?? "-"} ${p.code}`)).toEqual([
          "a.jsonl:1 request_too_large",
          "a.jsonl:2 unknown_endpoint",
          "empty.jsonl:- empty_file"
        ])
        expect(error.message).toContain("did you mean /v1/chat/completions?")
      })
  )
})

describe("Prices", () => {
  it("prices tokens per model at batch prices, cached input at its own price, dated snapshots by their base", () => {
    expect(
      Prices.cost(Prices.batch2026, "gpt-4o-mini-2024-07-18", {
        input: 1_000_000,
        cached: 0,
        output: 1_000_000
      })
    ).toBeCloseTo(0.375)
    expect(
      Prices.cost(Prices.batch2026, "gpt-4o-mini", { input: 1_000_000, cached: 1_000_000, output: 0 })
    ).toBeCloseTo(0.0375)
    expect(Prices.cost(Prices.batch2026, "not-a-model", { input: 1, cached: 0, output: 1 })).toBeUndefined()
    const own = Prices.fromJson(
      '{"date":"2027-01-01","source":"mine","models":{"m":{"input":1,"cached_input":0.5,"output":2}}}'
    )
    expect(own._tag === "Right" && Prices.cost(own.right, "m", { input: 2e6, cached: 0, output: 1e6 })).toBe(
      4
    )
    expect(Prices.fromJson('{"date":1}')._tag).toBe("Left")
  })
})
