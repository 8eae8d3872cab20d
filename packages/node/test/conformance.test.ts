/**
 * The official `openai` SDK (6.49.0) as a client of the emulator: its flows pass unchanged and
 * its error classes come out right, which is how we know the emulator speaks the wire protocol
 * and not just our own client's dialect.
 */
import { Simulator } from "@batchkit/core/testing"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import OpenAI, { toFile } from "openai"
import { Emulator } from "../src/index.js"

const apiKey = "sk-conformance-0000"
let server: Awaited<ReturnType<typeof Emulator.start>>
let client: OpenAI

beforeAll(async () => {
  server = await Emulator.start({ apiKey, speed: 200 })
  client = new OpenAI({ apiKey, baseURL: server.url })
})
afterAll(() => server.close())

const jsonl = (n: number) =>
  Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `req-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "gpt-4o-mini", messages: [{ role: "user", content: `hello ${i}` }] }
    })
  ).join("\n")

const waitFor = async (id: string) => {
  for (let i = 0; i < 500; i++) {
    const batch = await client.batches.retrieve(id)
    if (["completed", "failed", "expired", "cancelled"].includes(batch.status)) return batch
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`batch ${id} did not end`)
}

describe("the official openai SDK against the emulator", { timeout: 30_000 }, () => {
  it("uploads with toFile, creates, retrieves, waits for completion and parses the output", async () => {
    const file = await client.files.create({
      file: await toFile(Buffer.from(jsonl(25)), "input.jsonl"),
      purpose: "batch"
    })
    expect(file).toMatchObject({ object: "file", purpose: "batch", filename: "input.jsonl" })
    expect(file.bytes).toBe(Buffer.byteLength(jsonl(25)))
    const created = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { run: "conformance" }
    })
    expect(created).toMatchObject({ object: "batch", status: "validating", metadata: { run: "conformance" } })
    expect((await client.batches.retrieve(created.id)).id).toBe(created.id)
    const done = await waitFor(created.id)
    expect(done.status).toBe("completed")
    expect(done.request_counts).toEqual({ total: 25, completed: 25, failed: 0 })
    const output = await client.files.content(done.output_file_id!)
    const lines = (await output.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
    expect(lines.length).toBe(25)
    expect(new Set(lines.map((l) => l.custom_id)).size).toBe(25)
    expect(lines[0].response.status_code).toBe(200)
    expect(lines[0].response.body.object).toBe("chat.completion")
    const meta = await client.files.retrieve(done.output_file_id!)
    expect(meta.purpose).toBe("batch_output")
  })

  it("lists every batch with for await over three or more pages", async () => {
    const file = await client.files.create({
      file: await toFile(Buffer.from(jsonl(1)), "one.jsonl"),
      purpose: "batch"
    })
    for (let i = 0; i < 7; i++) {
      await client.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h"
      })
    }
    const expected = (await Effect.runPromise(server.simulator.batches)).map((b) => b.id)
    const seen: Array<string> = []
    for await (const batch of client.batches.list({ limit: 3 })) seen.push(batch.id)
    expect(seen).toEqual(expected)
    const pages = (await Effect.runPromise(server.simulator.requests)).filter(
      (r) => r.path === "/v1/batches" && r.method === "GET"
    )
    expect(pages.length).toBeGreaterThanOrEqual(3)
  })

  it("cancels a running batch, then gets a ConflictError for cancelling it again", async () => {
    const file = await client.files.create({
      file: await toFile(Buffer.from(jsonl(5000)), "big.jsonl"),
      purpose: "batch"
    })
    const created = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h"
    })
    const cancelling = await client.batches.cancel(created.id)
    expect(cancelling.status).toBe("cancelling")
    const ended = await waitFor(created.id)
    expect(ended.status).toBe("cancelled")
    const error = await client.batches.cancel(created.id, { maxRetries: 0 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.ConflictError)
    expect((error as InstanceType<typeof OpenAI.ConflictError>).status).toBe(409)
    expect((error as InstanceType<typeof OpenAI.ConflictError>).requestID).toMatch(/^req_/)
  })

  it("gets NotFoundError, AuthenticationError and BadRequestError with the spec's bodies", async () => {
    const notFound = await client.batches.retrieve("batch_nope").catch((e: unknown) => e)
    expect(notFound).toBeInstanceOf(OpenAI.NotFoundError)
    const auth = await new OpenAI({ apiKey: "sk-wrong", baseURL: server.url }).batches
      .list()
      .catch((e: unknown) => e)
    expect(auth).toBeInstanceOf(OpenAI.AuthenticationError)
    expect((auth as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe("invalid_api_key")
    const file = await client.files.create({
      file: await toFile(Buffer.from(jsonl(1)), "x.jsonl"),
      purpose: "batch"
    })
    const bad = await client.batches
      .create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "48h" as "24h" })
      .catch((e: unknown) => e)
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError)
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("completion_window")
    const notJsonl = await client.files
      .create({ file: await toFile(Buffer.from("a,b"), "data.csv"), purpose: "batch" })
      .catch((e: unknown) => e)
    expect(notJsonl).toBeInstanceOf(OpenAI.BadRequestError)
    expect((notJsonl as Error).message).toContain("Must be .jsonl")
  })

  it("gets a RateLimitError once its retries are spent, and succeeds when they are not", async () => {
    await Effect.runPromise(
      server.simulator.inject("batches.list", Simulator.rateLimited({ retryAfter: "10 millis" }), 3)
    )
    const limited = await client.batches.list().catch((e: unknown) => e)
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError)
    await Effect.runPromise(
      server.simulator.inject("batches.list", Simulator.rateLimited({ retryAfter: "10 millis" }), 2)
    )
    const page = await client.batches.list()
    expect(page.data.length).toBeGreaterThan(0)
  })
})
