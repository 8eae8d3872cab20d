import { BatchService, Provider } from "@batchkit/core"
import { NodeBatch } from "@batchkit/node"
import { Effect } from "effect"

const providers = {
  // OpenAI, the default: OPENAI_API_KEY, OPENAI_BASE_URL
  openai: NodeBatch.layerConfig(),
  // Azure OpenAI: AZURE_OPENAI_API_KEY (or AZURE_OPENAI_AD_TOKEN), AZURE_OPENAI_ENDPOINT and
  // OPENAI_API_VERSION, or an endpoint ending in /openai/v1 without a version
  azure: NodeBatch.layerConfig({ provider: "azure" }),
  // Groq: GROQ_API_KEY, at https://api.groq.com/openai/v1 (or GROQ_BASE_URL)
  groq: NodeBatch.layerConfig({ provider: "groq" }),
  // any OpenAI-shaped server at OPENAI_BASE_URL, with the limits it documents
  compatible: NodeBatch.layerConfig({
    provider: Provider.withLimits(Provider.compatible, { requests: 10_000, completionWindows: ["24h"] })
  })
}

const name = (process.env.BATCHKIT_PROVIDER ?? "openai") as keyof typeof providers

const program = Effect.gen(function* () {
  const batches = yield* BatchService.BatchService
  const page = yield* batches.list({ limit: 10 })
  yield* Effect.log(`${name}: ${page.data.length} batches`)
})

Effect.runPromise(program.pipe(Effect.provide(providers[name])))
