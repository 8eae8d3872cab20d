// pnpm bench: batchkit against the official openai SDK (6.49.0) and raw undici, in one run, with
// the emulator in a process of its own. Prints a table of medians with ratios and targets, and
// writes the same figures to bench-results/bench.json. Not part of the test run.
//
//   node bench/run.mjs [--runs N] [--quick]     (--quick: smaller files and counts, for a smoke run)
import { execFileSync, spawn } from "node:child_process"
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { FormData, request } from "undici"

const argv = process.argv.slice(2)
const quick = argv.includes("--quick")
const only = argv.includes("--only") ? argv[argv.indexOf("--only") + 1] : undefined
// jobs at scale have a script of their own (it exits when done)
if (only === "jobs") await import("./jobs.mjs")
const runs = Number(argv[argv.indexOf("--runs") + 1]) || (quick ? 1 : 3)
const root = fileURLToPath(new URL("..", import.meta.url))
const cli = join(root, "packages/cli/dist/bin.js")
const apiKey = "sk-bench"
const work = mkdtempSync(join(tmpdir(), "batchkit-bench-"))
const sizes = quick
  ? { batches: 1000, fileBytes: 20e6, retrieve: 300, retrieveParallel: 1000, list: 50 }
  : { batches: 10_000, fileBytes: 200e6, retrieve: 2000, retrieveParallel: 5000, list: 300 }
const clients = ["batchkit", "openai", "undici"]
const log = (...a) => console.error(...a)

// ---- the emulator, in a process of its own
const emulator = spawn(process.execPath, [cli, "emulator", "--speed", "1000", "--api-key", apiKey], {
  stdio: ["ignore", "pipe", "inherit"]
})
const baseUrl = await new Promise((resolve, reject) => {
  let out = ""
  emulator.stdout.on("data", (d) => {
    out += d
    if (out.includes("\n")) resolve(out.trim())
  })
  emulator.on("exit", (code) => reject(new Error(`the emulator exited with ${code}`)))
})
const stop = () => {
  emulator.kill()
  rmSync(work, { recursive: true, force: true })
}
process.on("exit", stop)
log(`emulator on ${baseUrl}`)

const headers = { authorization: `Bearer ${apiKey}` }
const api = async (method, path, body) => {
  const res = await request(`${baseUrl}${path}`, {
    method,
    // a fresh connection each time: the orchestrator idles for minutes between its requests
    reset: true,
    headers: body instanceof FormData ? headers : { ...headers, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: body instanceof FormData ? body : JSON.stringify(body) })
  })
  const text = await res.body.text()
  if (res.statusCode !== 200) throw new Error(`${method} ${path}: ${res.statusCode} ${text}`)
  return JSON.parse(text)
}
const uploadPath = async (path, purpose, name) => {
  const form = new FormData()
  form.append("purpose", purpose)
  form.append("file", new Blob([await import("node:fs/promises").then((fs) => fs.readFile(path))]), name)
  return api("POST", "/files", form)
}

/** Writes `bytes` worth of JSONL lines made by `line(i)` to `path`; returns the line count. */
const generate = async (path, bytes, line) => {
  const out = createWriteStream(path)
  let written = 0
  let i = 0
  while (written < bytes) {
    let chunk = ""
    for (let k = 0; k < 1000 && written + chunk.length < bytes; k++) chunk += `${line(i++)}\n`
    written += Buffer.byteLength(chunk)
    if (!out.write(chunk)) await new Promise((r) => out.once("drain", r))
  }
  await new Promise((r) => out.end(r))
  return i
}

// ---- data: 10,000 batches, a 200 MB output file, a 200 MB input file
log(`seeding ${sizes.batches} batches…`)
const small = join(work, "small.jsonl")
writeFileSync(
  small,
  `${JSON.stringify({ custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { model: "gpt-4o-mini", messages: [] } })}\n`
)
const input = await uploadPath(small, "batch", "small.jsonl")
let created = 0
const ids = []
await Promise.all(
  Array.from({ length: 16 }, async () => {
    while (created < sizes.batches) {
      created++
      ids.push(
        (
          await api("POST", "/batches", {
            input_file_id: input.id,
            endpoint: "/v1/chat/completions",
            completion_window: "24h"
          })
        ).id
      )
    }
  })
)
// one pass over every batch before measuring: the emulator writes a batch's files the first
// time it sees it ended, and that work must not land on whichever client happens to list first
for (let after, more = true; more; ) {
  const page = await api("GET", `/batches?limit=100${after ? `&after=${after}` : ""}`)
  more = page.has_more
  after = page.data.at(-1)?.id
}
const content = "The quick brown fox jumps over the lazy dog. ".repeat(30)
const outputPath = join(work, "output.jsonl")
log(`generating a ${sizes.fileBytes / 1e6} MB output file…`)
const outputLines = await generate(outputPath, sizes.fileBytes, (i) =>
  JSON.stringify({
    id: `batch_req_${i}`,
    custom_id: `request-${i}`,
    response: {
      status_code: 200,
      request_id: `req_${i}`,
      body: {
        id: `chatcmpl-${i}`,
        object: "chat.completion",
        created: 1711475054,
        model: "gpt-4o-mini",
        choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
        usage: { prompt_tokens: 24, completion_tokens: 300, total_tokens: 324 }
      }
    },
    error: null
  })
)
const outputBytes = statSync(outputPath).size
const outputFile = await uploadPath(outputPath, "user_data", "output.jsonl")
const inputPath = join(work, "bench-input.jsonl")
log(`generating a ${sizes.fileBytes / 1e6} MB input file…`)
await generate(inputPath, sizes.fileBytes, (i) =>
  JSON.stringify({
    custom_id: `request-${i}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "gpt-4o-mini", messages: [{ role: "user", content }] }
  })
)
const inputBytes = statSync(inputPath).size

// ---- a static server in a process of its own, answering one 100-batch page and one batch
const staticPage = join(work, "page.json")
const staticBatch = join(work, "batch.json")
writeFileSync(staticPage, JSON.stringify(await api("GET", "/batches?limit=100")))
writeFileSync(staticBatch, JSON.stringify(await api("GET", `/batches/${ids[0]}`)))
const staticServer = spawn(
  process.execPath,
  [join(root, "bench/static-server.mjs"), staticPage, staticBatch],
  {
    stdio: ["ignore", "pipe", "inherit"]
  }
)
process.on("exit", () => staticServer.kill())
const staticUrl = await new Promise((resolve) => {
  let out = ""
  staticServer.stdout.on("data", (d) => {
    out += d
    if (out.includes("\n")) resolve(out.trim())
  })
})

// ---- the cases
const runCase = (client, name, args) => {
  const out = execFileSync(
    process.execPath,
    ["--expose-gc", join(root, "bench/case.mjs"), client, name, JSON.stringify({ baseUrl, apiKey, ...args })],
    {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      maxBuffer: 1 << 20
    }
  )
  return JSON.parse(out.trim().split("\n").at(-1))
}
const median = (values) => {
  const s = [...values].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const plan = [
  {
    key: "retrieve (sequential)",
    name: "retrieve",
    args: { id: ids[0], requests: sizes.retrieve, concurrency: 1 }
  },
  {
    key: "retrieve (32 in flight)",
    name: "retrieve",
    args: { id: ids[0], requests: sizes.retrieveParallel, concurrency: 32 }
  },
  { key: "list (one 100-item page)", name: "list", args: { requests: sizes.list } },
  {
    key: "list (static server)",
    name: "list",
    args: { requests: sizes.list * 3, baseUrl: staticUrl },
    target: "static-list"
  },
  {
    key: "retrieve (static, 32 in flight)",
    name: "retrieve",
    args: { id: ids[0], requests: sizes.retrieveParallel, concurrency: 32, baseUrl: staticUrl },
    target: "static-retrieve"
  },
  { key: `stream (${sizes.batches} batches)`, name: "stream", args: { expected: sizes.batches } },
  {
    key: `results (${Math.round(outputBytes / 1e6)} MB)`,
    name: "results",
    args: { fileId: outputFile.id, lines: outputLines, bytes: outputBytes }
  },
  {
    key: `upload (${Math.round(inputBytes / 1e6)} MB)`,
    name: "upload",
    args: { path: inputPath, bytes: inputBytes }
  }
]

const figures = {}
for (const step of plan.filter((s) => only === undefined || s.name === only)) {
  figures[step.key] = {}
  const samples = Object.fromEntries(clients.map((c) => [c, []]))
  // rounds of every client, in a rotating order: drift in the shared machine or the emulator's
  // warm-up lands on all clients alike instead of on whichever always goes first
  for (let r = 0; r < runs; r++) {
    for (let k = 0; k < clients.length; k++) {
      const client = clients[(r + k) % clients.length]
      try {
        samples[client].push(runCase(client, step.name, step.args))
      } catch (error) {
        // one failed run is reported, not the end of the whole benchmark
        log(`${step.key} ${client}: run ${r + 1} failed: ${String(error).split("\n")[0]}`)
      }
      if (step.name === "upload") {
        // the emulator keeps uploads in memory: drop what the case stored
        const files = await api("GET", "/files?purpose=batch&limit=10000")
        for (const f of files.data.filter((f) => f.filename === "bench-input.jsonl"))
          await api("DELETE", `/files/${f.id}`)
      }
    }
  }
  for (const client of clients) {
    const runsOf = samples[client]
    if (runsOf.length === 0) {
      figures[step.key][client] = { value: Number.NaN, unit: "failed", rssGrowthMb: Number.NaN, samples: [] }
      continue
    }
    figures[step.key][client] = {
      value: median(runsOf.map((s) => s.value)),
      unit: runsOf[0].unit,
      rssGrowthMb: median(runsOf.map((s) => s.rssGrowthMb)),
      samples: runsOf.map((s) => s.value)
    }
    log(
      `${step.key} ${client}: ${figures[step.key][client].value.toFixed(2)} ${runsOf[0].unit}, +${figures[step.key][client].rssGrowthMb.toFixed(0)} MB RSS`
    )
  }
}

// ---- the CLI's results in input order (--input) against the same results in the files' order
const joinRequests = quick ? 5000 : 50_000
let join_
if (only === undefined || only === "join") {
  const joinInput = join(work, "join-input.jsonl")
  const joinLines = await generate(joinInput, joinRequests * 400, (i) =>
    JSON.stringify({
      custom_id: `join-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: `question ${i} ${"x".repeat(300)}` }]
      }
    })
  )
  const joinFile = await uploadPath(joinInput, "batch", "join-input.jsonl")
  const joinBatch = await api("POST", "/batches", {
    input_file_id: joinFile.id,
    endpoint: "/v1/chat/completions",
    completion_window: "24h"
  })
  log(`waiting for a batch of ${joinLines} requests to complete…`)
  for (let b = joinBatch; b.status !== "completed"; b = await api("GET", `/batches/${joinBatch.id}`)) {
    if (["failed", "expired", "cancelled"].includes(b.status))
      throw new Error(`the join batch ended ${b.status}`)
    await new Promise((r) => setTimeout(r, 500))
  }
  const env = { ...process.env, OPENAI_API_KEY: apiKey, OPENAI_BASE_URL: baseUrl }
  const timeCli = (args) => {
    const samples = []
    for (let r = 0; r < runs; r++) {
      const start = performance.now()
      execFileSync(process.execPath, [cli, ...args], { stdio: "ignore", env })
      samples.push((performance.now() - start) / 1000)
    }
    return median(samples)
  }
  const joined = join(work, "joined.jsonl")
  join_ = {
    requests: joinLines,
    unordered: timeCli(["results", joinBatch.id, "--output", joined]),
    ordered: timeCli(["results", joinBatch.id, "--input", joinInput, "--output", joined])
  }
  log(`results join: unordered ${join_.unordered.toFixed(2)} s, --input ${join_.ordered.toFixed(2)} s`)
}

// ---- watchMany over 1,000 batches: the requests one cycle costs
let watching
if (only === undefined || only === "watch") {
  const newest = []
  for (let after; newest.length < 1000; ) {
    const page = await api("GET", `/batches?limit=100${after ? `&after=${after}` : ""}`)
    newest.push(...page.data.map((b) => b.id))
    after = page.data.at(-1)?.id
    if (!page.has_more) break
  }
  watching = runCase("batchkit", "snapshots", { ids: newest.slice(0, 1000) })
  log(`watchMany over 1000 batches: ${watching.list} list + ${watching.retrieve} retrieve requests a cycle`)
}

// ---- the emulator as a server, against node:http answering the same JSON (the static server)
let serving
if (only === undefined || only === "emulator") {
  const { Agent } = await import("undici")
  const agent = new Agent({ connections: 32 })
  const load = async (base, n) => {
    let i = 0
    const start = performance.now()
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (i++ < n) {
          const res = await request(`${base}/batches/${ids[0]}`, { headers, dispatcher: agent })
          await res.body.text()
        }
      })
    )
    return n / ((performance.now() - start) / 1000)
  }
  const n = quick ? 5000 : 20_000
  await load(baseUrl, 1000)
  await load(staticUrl, 1000)
  const samples = { emulator: [], bare: [] }
  for (let r = 0; r < runs; r++) {
    samples.emulator.push(await load(baseUrl, n))
    samples.bare.push(await load(staticUrl, n))
  }
  serving = { emulator: median(samples.emulator), bare: median(samples.bare), samples }
  await agent.close()
  log(`emulator ${serving.emulator.toFixed(0)} req/s, node:http ${serving.bare.toFixed(0)} req/s`)
}

// ---- CLI start-up against bare node
const time = (args, n = 21) => {
  const samples = []
  for (let i = 0; i < n; i++) {
    const start = performance.now()
    execFileSync(process.execPath, args, { stdio: "ignore" })
    samples.push(performance.now() - start)
  }
  return median(samples)
}
const bare = time(["-e", "0"])
const startup = {
  "node -e 0": bare,
  "batchkit --version": time([cli, "--version"]),
  "batchkit --help": time([cli, "--help"]),
  "batchkit (bundle) --version": time([join(root, "packages/cli/dist/bundle/main.js"), "--version"])
}

// ---- the table
const faster = (step, a, b) => {
  const x = figures[step][a]
  const y = figures[step][b]
  return x.unit === "s" ? y.value / x.value : x.value / y.value
}
const rows = [
  [
    "case",
    "batchkit",
    "openai",
    "undici",
    "vs openai",
    "vs undici",
    "batchkit RSS",
    "openai RSS",
    "target",
    "met"
  ]
]
const targets = {
  retrieve: (s) => [
    faster(s, "batchkit", "openai") >= 2 && faster(s, "batchkit", "undici") >= 1 / 3,
    "≥2× openai, ≥⅓ undici"
  ],
  list: (s) => [
    faster(s, "batchkit", "openai") >= 2 && faster(s, "batchkit", "undici") >= 1 / 3,
    "≥2× openai, ≥⅓ undici"
  ],
  stream: (s) => [
    faster(s, "batchkit", "openai") >= 2 && faster(s, "batchkit", "undici") >= 1 / 3,
    "≥2× openai, ≥⅓ undici"
  ],
  results: (s) => [
    figures[s].batchkit.value >= 150 && figures[s].batchkit.rssGrowthMb < 64,
    "≥150 MB/s, <64 MB RSS"
  ],
  upload: (s) => [figures[s].batchkit.rssGrowthMb < 64, "<64 MB RSS"],
  "static-list": (s) => [faster(s, "batchkit", "undici") >= 0.8, "≥0.8× undici"],
  "static-retrieve": (s) => [faster(s, "batchkit", "openai") >= 2, "≥2× openai"]
}
const fmt = (f) => `${f.value >= 100 ? f.value.toFixed(0) : f.value.toFixed(2)} ${f.unit}`
for (const step of plan) {
  const f = figures[step.key]
  if (f === undefined) continue
  const [met, target] = targets[step.target ?? step.name](step.key)
  rows.push([
    step.key,
    fmt(f.batchkit),
    fmt(f.openai),
    fmt(f.undici),
    `${faster(step.key, "batchkit", "openai").toFixed(2)}×`,
    `${faster(step.key, "batchkit", "undici").toFixed(2)}×`,
    `${f.batchkit.rssGrowthMb.toFixed(0)} MB`,
    `${f.openai.rssGrowthMb.toFixed(0)} MB`,
    target,
    met ? "yes" : "NO"
  ])
}
if (join_ !== undefined) {
  const ratio = join_.unordered / join_.ordered
  rows.push([
    `CLI results --input (${join_.requests} req)`,
    `${join_.ordered.toFixed(2)} s`,
    "",
    `unordered: ${join_.unordered.toFixed(2)} s`,
    "",
    `${ratio.toFixed(2)}× unordered`,
    "",
    "",
    "≥0.5× unordered",
    ratio >= 0.5 ? "yes" : "NO"
  ])
}
if (watching !== undefined) {
  rows.push([
    "watchMany, 1000 batches",
    `${watching.value} req/cycle`,
    "",
    `${watching.list} list + ${watching.retrieve} retrieve`,
    "",
    "",
    "",
    "",
    "≤10 req/cycle",
    watching.value <= 10 ? "yes" : "NO"
  ])
}
if (serving !== undefined) {
  const ratio = serving.emulator / serving.bare
  rows.push([
    "emulator retrieve (32 in flight)",
    `${serving.emulator.toFixed(0)} req/s`,
    "",
    `node:http: ${serving.bare.toFixed(0)} req/s`,
    "",
    `${ratio.toFixed(2)}× node:http`,
    "",
    "",
    "≥0.5× node:http",
    ratio >= 0.5 ? "yes" : "NO"
  ])
}
const startRatio = startup["batchkit --version"] / bare
rows.push([
  "CLI start (--version)",
  `${startup["batchkit --version"].toFixed(0)} ms`,
  "",
  `node -e 0: ${bare.toFixed(0)} ms`,
  "",
  `${startRatio.toFixed(2)}× node`,
  "",
  "",
  "≤3× node",
  startRatio <= 3 ? "yes" : "NO"
])
rows.push([
  "CLI start (--help)",
  `${startup["batchkit --help"].toFixed(0)} ms`,
  "",
  "",
  "",
  `${(startup["batchkit --help"] / bare).toFixed(2)}× node`,
  "",
  "",
  "",
  ""
])
rows.push([
  "CLI start (bundle, any command)",
  `${startup["batchkit (bundle) --version"].toFixed(0)} ms`,
  "",
  "",
  "",
  `${(startup["batchkit (bundle) --version"] / bare).toFixed(2)}× node`,
  "",
  "",
  "",
  ""
])
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)))
const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(" | ")} |`
console.log(line(rows[0]))
console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`)
for (const r of rows.slice(1)) console.log(line(r))
console.log(`medians of ${runs} run(s) per client and case; ratios > 1 mean batchkit is faster`)

const outDir = join(root, "bench-results")
mkdirSync(outDir, { recursive: true })
writeFileSync(
  join(outDir, "bench.json"),
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, runs, quick, figures, startupMs: startup, resultsJoinSeconds: join_, watchMany: watching, emulatorVsNodeHttp: serving }, null, 2)}\n`
)
console.error(`figures written to ${join(outDir, "bench.json")}`)
if (only === undefined) {
  stop()
  execFileSync(process.execPath, [join(root, "bench/jobs.mjs"), ...(quick ? ["--quick"] : [])], {
    stdio: "inherit"
  })
}
process.exit(0)
