/**
 * Provider profiles: what a file and a create may be for each provider, told before anything is
 * sent; how the configuration resolves (Azure's URL forms, its api-version, its key header); and
 * the simulator playing Azure, so a user's tests can.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option, Redacted, Schema, Stream } from "effect"
import { Batch, BatchConfig, BatchLine, BatchService, FileService, Provider } from "../src/index.js"
import { Simulator } from "../src/testing/index.js"

const lines = (n: number, url: string, model = "gpt-4o-mini") =>
  Array.from({ length: n }, (_, i) =>
    JSON.stringify({ custom_id: `r${i}`, method: "POST", url, body: { model, messages: [] } })
  ).join("\n")

const validate = (text: string, provider?: Provider.Profile) =>
  BatchLine.validateInput(Stream.make(new TextEncoder().encode(text)), { provider })

describe("the dry run tells providers apart", () => {
  it.effect(
    "Azure's /chat/completions lines are wrong for OpenAI and right for Azure, and the other way round",
    () =>
      Effect.gen(function* () {
        const azureFile = lines(3, "/chat/completions")
        const openaiFile = lines(3, "/v1/chat/completions")
        const forOpenai = yield* validate(azureFile, Provider.openai)
        expect(forOpenai.problems[0]).toMatchObject({ line: 1, code: "unknown_endpoint" })
        expect(forOpenai.problems[0]!.message).toContain("of openai (did you mean /v1/chat/completions?)")
        expect((yield* validate(azureFile, Provider.azure)).problemCount).toBe(0)
        const forAzure = yield* validate(openaiFile, Provider.azure)
        expect(forAzure.problems[0]).toMatchObject({ line: 1, code: "unknown_endpoint" })
        expect(forAzure.problems[0]!.message).toContain("of azure (did you mean /chat/completions?)")
        expect((yield* validate(openaiFile, Provider.openai)).problemCount).toBe(0)
        // Groq batches no embeddings; a compatible server takes any endpoint
        const embeddings = lines(2, "/v1/embeddings", "text-embedding-3-small")
        expect((yield* validate(embeddings, Provider.groq)).problems[0]?.code).toBe("unknown_endpoint")
        expect((yield* validate(embeddings, Provider.compatible)).problemCount).toBe(0)
      })
  )

  it.effect("60,000 requests are too many for OpenAI (50,000) and fit Azure (100,000)", () =>
    Effect.gen(function* () {
      const big = lines(60_000, "/chat/completions")
      const azure = yield* validate(big, Provider.azure)
      expect(azure.problemCount).toBe(0)
      const openai = yield* validate(lines(60_000, "/v1/chat/completions"), Provider.openai)
      expect(openai.problems).toEqual([
        {
          line: null,
          code: "too_many_tasks",
          message: "60000 requests; a batch of openai takes at most 50000"
        }
      ])
      // a compatible server's own limits, given as options
      const small = Provider.withLimits(Provider.compatible, { requests: 10 })
      expect((yield* validate(lines(11, "/v1/anything"), small)).problems[0]?.code).toBe("too_many_tasks")
    })
  )

  it.effect("a create's endpoint and completion_window are checked against the provider", () =>
    Effect.gen(function* () {
      const check = (endpoint: string, completion_window: string, provider: Provider.Profile) =>
        Effect.either(
          BatchService.checkCreate(
            { input_file_id: "file-1", endpoint: endpoint as `/${string}`, completion_window },
            { provider }
          )
        )
      expect((yield* check("/v1/chat/completions", "24h", Provider.openai))._tag).toBe("Right")
      const window = yield* check("/v1/chat/completions", "48h", Provider.openai)
      expect(window._tag === "Left" && window.left.message).toBe(
        "completion_window: 48h is not a completion window of openai; it takes 24h"
      )
      expect((yield* check("/v1/chat/completions", "7d", Provider.groq))._tag).toBe("Right")
      expect((yield* check("/v1/chat/completions", "8d", Provider.groq))._tag).toBe("Left")
      const azure = yield* check("/v1/chat/completions", "24h", Provider.azure)
      expect(azure._tag === "Left" && azure.left.message).toContain("did you mean /chat/completions?")
      expect((yield* check("/chat/completions", "24h", Provider.azure))._tag).toBe("Right")
      expect((yield* check("/v1/whatever", "24h", Provider.compatible))._tag).toBe("Right")
    })
  )
})

describe("BatchConfig with a provider", () => {
  it("Azure: the endpoint alone means its /openai path; the api-version goes in the query; the key in api-key", () => {
    const config = BatchConfig.make({
      apiKey: "k",
      provider: "azure",
      baseUrl: "https://res.openai.azure.com/",
      apiVersion: "2024-10-21"
    })
    expect(config.baseUrl).toBe("https://res.openai.azure.com/openai")
    expect(config.query).toEqual({ "api-version": "2024-10-21" })
    expect(config.auth).toBe("api-key")
    const v1 = BatchConfig.make({
      apiKey: "k",
      provider: "azure",
      baseUrl: "https://res.openai.azure.com/openai/v1"
    })
    expect(v1.query).toEqual({})
    const token = BatchConfig.make({
      azureAdToken: Redacted.make("eyJ0"),
      provider: "azure",
      baseUrl: "https://res.openai.azure.com/openai/v1"
    })
    expect(token.auth).toBe("bearer")
    expect(() =>
      BatchConfig.make({ apiKey: "k", provider: "azure", baseUrl: "https://res.openai.azure.com" })
    ).toThrow(/needs an api-version/)
    expect(() => BatchConfig.make({ apiKey: "k", provider: "azure" })).toThrow(/needs a base URL/)
  })

  it("headers go on every request, but never in place of the key", () => {
    expect(BatchConfig.make({ apiKey: "k", headers: { "X-Team": "search" } }).headers).toEqual({
      "x-team": "search"
    })
    expect(() => BatchConfig.make({ apiKey: "k", headers: { Authorization: "Bearer other" } })).toThrow(
      /set by batchkit/
    )
    expect(() => BatchConfig.make({ apiKey: "k", headers: { "bad header": "v" } })).toThrow(
      /not a valid HTTP header/
    )
    expect(() => BatchConfig.make({ apiKey: "k", provider: "nope" as Provider.Name })).toThrow(
      /unknown provider/
    )
  })

  it.effect("layerConfig reads Azure's variables as the official SDK does", () =>
    Effect.gen(function* () {
      const config = yield* BatchConfig.BatchConfig
      expect(config.provider.name).toBe("azure")
      expect(Redacted.value(config.apiKey)).toBe("azure-key")
      expect(config.baseUrl).toBe("https://res.openai.azure.com/openai")
      expect(config.query).toEqual({ "api-version": "2024-10-21" })
    }).pipe(
      Effect.provide(BatchConfig.layerConfig()),
      Effect.withConfigProvider(
        // these variables only
        ConfigProvider.fromMap(
          new Map([
            ["BATCHKIT_PROVIDER", "azure"],
            ["AZURE_OPENAI_API_KEY", "azure-key"],
            ["AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com"],
            ["OPENAI_API_VERSION", "2024-10-21"]
          ])
        )
      )
    )
  )
})

describe("layerConfig without a key", () => {
  const azureOnly = ConfigProvider.fromMap(
    new Map([
      ["AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com"],
      ["OPENAI_API_VERSION", "2024-10-21"]
    ])
  )

  it.effect("an Entra ID token provider stands for the key", () =>
    Effect.gen(function* () {
      const config = yield* BatchConfig.BatchConfig
      expect(config.auth).toBe("bearer")
      expect(Option.isSome(config.tokenProvider)).toBe(true)
    }).pipe(
      Effect.provide(
        BatchConfig.layerConfig({ provider: "azure", azureAdTokenProvider: Effect.succeed("token") })
      ),
      Effect.withConfigProvider(azureOnly)
    )
  )

  it.effect("with neither, the error names the provider's variable", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Effect.provide(BatchConfig.BatchConfig, BatchConfig.layerConfig({ provider: "azure" }))
      )
      expect(String(error)).toContain("AZURE_OPENAI_API_KEY is not set (or empty)")
    }).pipe(Effect.withConfigProvider(azureOnly))
  )
})

describe("the simulator plays Azure", () => {
  it.effect("a batch of /chat/completions lines over Azure's wire, under TestClock", () =>
    Effect.gen(function* () {
      const files = yield* FileService.FileService
      const batches = yield* BatchService.BatchService
      const text = lines(4, "/chat/completions", "my-deployment")
      const file = yield* files.upload({
        filename: "in.jsonl",
        stream: Stream.make(new TextEncoder().encode(text)),
        size: text.length
      })
      const batch = yield* batches.create({ input_file_id: file.id, endpoint: "/chat/completions" })
      const simulator = yield* Simulator.Simulator
      const seen = yield* simulator.requests
      expect(seen.map((r) => `${r.method} ${r.path}?${r.query}`)).toEqual([
        "POST /openai/files?api-version=2024-10-21",
        "POST /openai/batches?api-version=2024-10-21"
      ])
      expect(seen.every((r) => !("api-key" in r.headers) && !("authorization" in r.headers))).toBe(true)
      expect(batch.endpoint).toBe("/chat/completions")
    }).pipe(Effect.provide(Simulator.layer({ provider: Provider.azure })))
  )

  it.effect("…and refuses OpenAI's spelling of the endpoint as Azure's API would", () =>
    Effect.gen(function* () {
      const simulator = yield* Simulator.Simulator
      const reply = yield* simulator.handle({
        method: "POST",
        path: "/openai/batches",
        query: new URLSearchParams("api-version=2024-10-21"),
        headers: { "api-key": "sk-simulator", "content-type": "application/json" },
        body: new TextEncoder().encode(
          JSON.stringify({
            input_file_id: "file-x",
            endpoint: "/v1/chat/completions",
            completion_window: "24h"
          })
        )
      })
      expect(reply._tag === "Answer" && reply.status).toBe(400)
      const missingVersion = yield* simulator.handle({
        method: "GET",
        path: "/openai/batches",
        query: new URLSearchParams(),
        headers: { "api-key": "sk-simulator" },
        body: new Uint8Array()
      })
      expect(missingVersion._tag === "Answer" && missingVersion.status).toBe(404)
    }).pipe(Effect.provide(Simulator.layer({ provider: Provider.azure })))
  )
})

describe("decoding what the providers send", () => {
  it("Azure's batch: empty-string file ids, null request counts and fields of its own decode; the raw values stay", () => {
    const azure = {
      id: "batch_6caaf24d-54a5-46be-b1b7-518884fcbdde",
      object: "batch",
      endpoint: "/chat/completions",
      errors: null,
      input_file_id: "file-5ad5dd0e6f7c4ba9a1ba2c8c1a6f0b5b",
      completion_window: "24h",
      status: "validating",
      output_file_id: "",
      error_file_id: "",
      created_at: 1719522502,
      in_progress_at: null,
      expires_at: 1719608902,
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: null,
      metadata: null,
      content_filter_results: {}
    }
    const batch = Schema.decodeUnknownSync(Batch.Batch)(azure)
    expect(batch.output_file_id).toBe("")
    expect(batch.outputFileId).toEqual(Option.none())
    expect(batch.errorFileId).toEqual(Option.none())
    expect(batch.endpoint).toBe("/chat/completions")
  })
})
