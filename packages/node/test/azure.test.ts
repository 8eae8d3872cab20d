/**
 * Azure OpenAI, end to end here: the emulator plays it (`provider: Provider.azure`: `/openai`
 * paths with an `api-version`, or `/openai/v1`; the key in an `api-key` header, or an Entra ID
 * token as a bearer; lines with `url: "/chat/completions"`), the official SDK's `AzureOpenAI`
 * client (openai 6.49.0) runs the batch and file flow against it, and so does batchkit's library
 * with the `azure` provider.
 */
import { BatchConfig, BatchService, FileService, Provider } from "@batchkit/core"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { AzureOpenAI, toFile } from "openai"
import { Emulator, NodeBatch } from "../src/index.js"

const apiKey = "azure-key-0123456789abcdef"
let server: Awaited<ReturnType<typeof Emulator.start>>
let endpoint: string

beforeAll(async () => {
  server = await Emulator.start({ apiKey, speed: 500, provider: Provider.azure })
  endpoint = server.url.replace(/\/openai$/, "")
})
afterAll(() => server.close())

/** Azure's lines: no /v1 in the url, the deployment's name as the model. */
const jsonl = (n: number, url = "/chat/completions") =>
  Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `task-${i}`,
      method: "POST",
      url,
      body: { model: "my-gpt-4o-mini-batch", messages: [{ role: "user", content: `hello ${i}` }] }
    })
  ).join("\n")

describe("Azure OpenAI against the emulator", { timeout: 30_000 }, () => {
  it("the official AzureOpenAI client runs the batch and file flow (classic api-version form)", async () => {
    const client = new AzureOpenAI({ apiKey, endpoint, apiVersion: "2024-10-21" })
    const file = await client.files.create({
      file: await toFile(Buffer.from(jsonl(12)), "input.jsonl"),
      purpose: "batch"
    })
    expect(file).toMatchObject({ object: "file", purpose: "batch" })
    const created = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/chat/completions" as never,
      completion_window: "24h"
    })
    expect(created.endpoint).toBe("/chat/completions")
    let done = created
    for (let i = 0; i < 500 && !["completed", "failed", "expired", "cancelled"].includes(done.status); i++) {
      await new Promise((r) => setTimeout(r, 20))
      done = await client.batches.retrieve(created.id)
    }
    expect(done.status).toBe("completed")
    expect(done.request_counts).toEqual({ total: 12, completed: 12, failed: 0 })
    const lines = (await (await client.files.content(done.output_file_id!)).text()).trim().split("\n")
    expect(lines.map((l) => JSON.parse(l).custom_id).sort()).toEqual(
      Array.from({ length: 12 }, (_, i) => `task-${i}`).sort()
    )
    const listed: Array<string> = []
    for await (const b of client.batches.list({ limit: 2 })) listed.push(b.id)
    expect(listed).toContain(created.id)
    expect((await client.batches.cancel(created.id).catch((e) => e)).status).toBe(409)
  })

  it("the SDK's errors come out as Azure's: a wrong key is a 401, a path without api-version a 404", async () => {
    const wrong = new AzureOpenAI({
      apiKey: "not-the-key",
      endpoint,
      apiVersion: "2024-10-21",
      maxRetries: 0
    })
    const denied = await wrong.batches.list().catch((e) => e)
    expect(denied.status).toBe(401)
    expect(denied.message).toContain("Access denied due to invalid subscription key")
    const bare = await fetch(`${server.url}/batches`, { headers: { "api-key": apiKey } })
    expect(bare.status).toBe(404)
    expect(await bare.json()).toEqual({ error: { code: "404", message: "Resource not found" } })
    const v1 = await fetch(`${server.url}/v1/batches`, { headers: { "api-key": apiKey } })
    expect(v1.status).toBe(200)
  })

  it.live("batchkit's library with the azure provider: api-key header, api-version on every request", () =>
    Effect.gen(function* () {
      const files = yield* FileService.FileService
      const batches = yield* BatchService.BatchService
      const before = (yield* server.simulator.requests).length
      const file = yield* files.upload({
        filename: "in.jsonl",
        stream: Stream.make(new TextEncoder().encode(jsonl(5))),
        size: Buffer.byteLength(jsonl(5))
      })
      const created = yield* batches.create({ input_file_id: file.id, endpoint: "/chat/completions" })
      const done = yield* batches.await(created.id)
      expect(done.status).toBe("completed")
      const outcomes = yield* Stream.runCollect(files.results(done))
      expect(outcomes.length).toBe(5)
      // OpenAI's spelling is Azure's mistake here, told before anything is sent
      const refused = yield* Effect.flip(
        batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions" })
      )
      expect(refused.message).toContain("did you mean /chat/completions?")
      // every request went to Azure's path with its api-version (the emulator saw them so)
      const seen = (yield* server.simulator.requests).slice(before)
      expect(seen.length).toBeGreaterThanOrEqual(4)
      for (const r of seen) {
        expect(r.path).toMatch(/^\/openai\/(batches|files)/)
        expect(new URLSearchParams(r.query).get("api-version")).toBe("2024-10-21")
      }
      expect(JSON.stringify(seen)).not.toContain(apiKey)
    }).pipe(
      Effect.provide(
        NodeBatch.layer({ apiKey, provider: "azure", baseUrl: endpoint, apiVersion: "2024-10-21" })
      )
    )
  )

  it.effect("…and the v1 form, authenticated with an Entra ID token as a bearer", () =>
    Effect.gen(function* () {
      const before = (yield* server.simulator.requests).length
      const batches = yield* BatchService.BatchService
      const page = yield* batches.list({ limit: 1 })
      expect(page.object).toBe("list")
      // the config the service ran with: a bearer, no api-version on the v1 path
      const config = yield* BatchConfig.BatchConfig
      expect(config.auth).toBe("bearer")
      expect(config.query).toEqual({})
      const seen = (yield* server.simulator.requests).slice(before)
      expect(seen.map((r) => `${r.path}?${r.query}`)).toEqual(["/openai/v1/batches?limit=1"])
    }).pipe(
      Effect.provide(
        NodeBatch.layerServices.pipe(
          Layer.provideMerge(
            BatchConfig.layer({ azureAdToken: apiKey, provider: "azure", baseUrl: `${endpoint}/openai/v1` })
          )
        )
      )
    )
  )

  it.live(
    "…or with an Entra ID token provider, asked before each request; its failure is a TransportError",
    () =>
      Effect.gen(function* () {
        let asked = 0
        const provider = Effect.sync(() => {
          asked++
          return apiKey
        })
        const layer = NodeBatch.layer({
          azureAdTokenProvider: provider,
          provider: "azure",
          baseUrl: endpoint,
          apiVersion: "2024-10-21"
        })
        yield* Effect.provide(
          Effect.flatMap(BatchService.BatchService, (batches) =>
            Effect.zipRight(batches.list({ limit: 1 }), batches.list({ limit: 1 }))
          ),
          layer
        )
        expect(asked).toBe(2)
        const failing = NodeBatch.layer({
          azureAdTokenProvider: Effect.fail(new Error("no credential")),
          provider: "azure",
          baseUrl: endpoint,
          apiVersion: "2024-10-21",
          maxRetries: 0
        })
        const error = yield* Effect.flip(
          Effect.provide(
            Effect.flatMap(BatchService.BatchService, (batches) => batches.list()),
            failing
          )
        )
        expect(error._tag).toBe("TransportError")
        expect(error.message).toContain("the Entra ID token provider failed: no credential")
      })
  )

  it("a classic Azure URL without an api-version is a configuration error, before any request", () => {
    expect(() => BatchConfig.make({ apiKey, provider: "azure", baseUrl: endpoint })).toThrow(
      /needs an api-version/
    )
    // the api-version may come in the URL itself, and is sent on every request
    const config = BatchConfig.make({
      apiKey,
      provider: "azure",
      baseUrl: `${endpoint}/openai?api-version=2024-10-21`
    })
    expect(config.baseUrl).toBe(`${endpoint}/openai`)
    expect(config.query).toEqual({ "api-version": "2024-10-21" })
    expect(config.auth).toBe("api-key")
  })
})
