// One measurement in a process of its own, so that its peak RSS growth is its own:
//   node case.mjs <client> <case> <json-args>
// prints one JSON object: { value, unit, rssGrowthMb, ... }.
import { BatchService, FileService } from "@batchkit/core"
import { NodeBatch, NodeFileSource } from "@batchkit/node"
import { Effect, Layer, ManagedRuntime, Stream } from "effect"
import { createReadStream, openAsBlob } from "node:fs"
import OpenAI from "openai"
import { FormData, request } from "undici"

const [client, name, rawArgs] = process.argv.slice(2)
const args = JSON.parse(rawArgs ?? "{}")
const { baseUrl, apiKey } = args

// ---- the peak RSS while the measured part runs, sampled every 5 ms
let peak = 0
const sample = () => {
  peak = Math.max(peak, process.memoryUsage.rss())
}
const sampler = setInterval(sample, 5)
const measure = async (run) => {
  globalThis.gc?.()
  const before = process.memoryUsage.rss()
  peak = before
  const start = performance.now()
  const extra = await run()
  const seconds = (performance.now() - start) / 1000
  sample()
  return { seconds, rssGrowthMb: (peak - before) / 1024 / 1024, ...extra }
}

// ---- the three clients, each doing the work its users would write
const batchkit = ManagedRuntime.make(Layer.mergeAll(NodeBatch.layer({ apiKey, baseUrl, maxRetries: 0 })))
const sdk = new OpenAI({ apiKey, baseURL: baseUrl, maxRetries: 0 })
const headers = { authorization: `Bearer ${apiKey}` }
const undiciJson = async (path) => {
  const res = await request(`${baseUrl}${path}`, { headers })
  if (res.statusCode !== 200) throw new Error(`${path}: ${res.statusCode}`)
  return JSON.parse(await res.body.text())
}

const withBatches = (f) => batchkit.runPromise(Effect.flatMap(BatchService.BatchService, f))
const withFiles = (f) => batchkit.runPromise(Effect.flatMap(FileService.FileService, f))

const pool = async (n, concurrency, task) => {
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++
        await task()
      }
    })
  )
}

const cases = {
  retrieve: {
    batchkit: (id) => withBatches((s) => s.retrieve(id)),
    openai: (id) => sdk.batches.retrieve(id),
    undici: (id) => undiciJson(`/batches/${id}`)
  },
  list: {
    batchkit: () => withBatches((s) => s.list({ limit: 100 })),
    openai: () => sdk.batches.list({ limit: 100 }),
    undici: () => undiciJson("/batches?limit=100")
  },
  stream: {
    batchkit: () => withBatches((s) => Stream.runCount(s.stream({ limit: 100 }))),
    openai: async () => {
      let n = 0
      for await (const _ of sdk.batches.list({ limit: 100 })) n++
      return n
    },
    undici: async () => {
      let n = 0
      let after
      for (;;) {
        const page = await undiciJson(`/batches?limit=100${after ? `&after=${after}` : ""}`)
        n += page.data.length
        if (!page.has_more || page.data.length === 0) return n
        after = page.data.at(-1).id
      }
    }
  },
  results: {
    // typed outcomes, streamed
    batchkit: (fileId) => withFiles((s) => Stream.runCount(s.results({ output_file_id: fileId }))),
    // what SDK users do: the whole file as text, then split and parse
    openai: async (fileId) => {
      const text = await (await sdk.files.content(fileId)).text()
      let n = 0
      for (const line of text.split("\n")) if (line !== "") JSON.parse(line) && n++
      return n
    },
    // the ceiling: a streamed body split into lines and JSON.parse'd
    undici: async (fileId) => {
      const res = await request(`${baseUrl}/files/${fileId}/content`, { headers })
      const decoder = new TextDecoder()
      let rest = ""
      let n = 0
      for await (const chunk of res.body) {
        const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n")
        rest = lines.pop()
        for (const line of lines) if (line !== "") JSON.parse(line) && n++
      }
      if (rest !== "") JSON.parse(rest) && n++
      return n
    }
  },
  upload: {
    batchkit: (path) =>
      withFiles((s) => Effect.flatMap(NodeFileSource.fromPath(path), (source) => s.upload(source))),
    openai: (path) => sdk.files.create({ file: createReadStream(path), purpose: "batch" }),
    undici: async (path) => {
      const form = new FormData()
      form.append("purpose", "batch")
      form.append("file", await openAsBlob(path), "bench-input.jsonl")
      const res = await request(`${baseUrl}/files`, { method: "POST", body: form, headers })
      return JSON.parse(await res.body.text())
    }
  }
}

// watchMany's cost per cycle: one look at a set of batches through list pages
cases.snapshots = {
  batchkit: (ids) => withBatches((s) => s.snapshots(ids))
}

const run = cases[name]?.[client]
if (run === undefined) throw new Error(`unknown case ${client} ${name}`)

let result
switch (name) {
  case "retrieve": {
    await run(args.id) // warm up the connection and the code
    await pool(200, 1, () => run(args.id))
    const n = args.requests
    const m = await measure(() => pool(n, args.concurrency, () => run(args.id)))
    result = { value: n / m.seconds, unit: "req/s", rssGrowthMb: m.rssGrowthMb }
    break
  }
  case "list": {
    await pool(50, 1, run)
    const n = args.requests
    const m = await measure(() => pool(n, 1, run))
    result = { value: n / m.seconds, unit: "req/s", rssGrowthMb: m.rssGrowthMb }
    break
  }
  case "stream": {
    const m = await measure(async () => ({ items: await run() }))
    if (m.items !== args.expected) throw new Error(`stream saw ${m.items} batches, expected ${args.expected}`)
    result = { value: m.seconds, unit: "s", rssGrowthMb: m.rssGrowthMb }
    break
  }
  case "results": {
    const m = await measure(async () => ({ lines: await run(args.fileId) }))
    if (m.lines !== args.lines) throw new Error(`results saw ${m.lines} lines, expected ${args.lines}`)
    result = { value: args.bytes / 1e6 / m.seconds, unit: "MB/s", rssGrowthMb: m.rssGrowthMb }
    break
  }
  case "snapshots": {
    const cycles = 5
    let list = 0
    let retrieve = 0
    const m = await measure(async () => {
      for (let i = 0; i < cycles; i++) {
        const seen = await run(args.ids)
        if (seen.batches.length !== args.ids.length) throw new Error("snapshots lost batches")
        list += seen.listRequests
        retrieve += seen.retrieveRequests
      }
    })
    result = {
      value: (list + retrieve) / cycles,
      unit: "req/cycle",
      list: list / cycles,
      retrieve: retrieve / cycles,
      seconds: m.seconds / cycles,
      rssGrowthMb: m.rssGrowthMb
    }
    break
  }
  case "upload": {
    const m = await measure(async () => ({ file: await run(args.path) }))
    if (m.file.bytes !== args.bytes)
      throw new Error(`upload stored ${m.file.bytes} bytes, expected ${args.bytes}`)
    result = { value: m.seconds, unit: "s", rssGrowthMb: m.rssGrowthMb }
    break
  }
}
clearInterval(sampler)
await batchkit.dispose()
process.stdout.write(`${JSON.stringify(result)}\n`)
process.exit(0)
