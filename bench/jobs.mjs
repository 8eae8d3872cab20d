// pnpm bench --only jobs (or node bench/jobs.mjs [--quick]): jobs at scale.
//   planning: 1,000,000 lines (about 400 MB) checked and cut into shards, in MB/s and peak RSS growth
//   a job of 1,000,000 requests end to end against the emulator: wall time and peak RSS of the CLI
//   the results merge (`batchkit jobs results`): MB/s of the results file written in input order
//   the same job on Postgres, with 1 and with 3 `batchkit runner`s (a server of the bench's own,
//   scripts/postgres.mjs): wall time, peak RSS of each runner, the requests each watch cycle
//   spent (list pages and retrieves, counted by the emulator); --no-postgres skips it
// Prints a table and writes bench-results/jobs.json.
import { spawn } from "node:child_process"
import {
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const quick = process.argv.includes("--quick")
const lines = quick ? 100_000 : 1_000_000
const root = fileURLToPath(new URL("..", import.meta.url))
const cli = join(root, "packages/cli/dist/bin.js")
const work = mkdtempSync(join(tmpdir(), "batchkit-bench-jobs-"))
const log = (...a) => console.error(...a)
process.on("exit", () => rmSync(work, { recursive: true, force: true }))

// ---- the input: chat requests of about 400 bytes a line
const input = join(work, "input.jsonl")
{
  const out = createWriteStream(input)
  const filler = "Summarise the following passage in one sentence. ".repeat(5)
  for (let i = 0; i < lines; i += 1000) {
    let chunk = ""
    for (let k = i; k < Math.min(lines, i + 1000); k++)
      chunk += `${JSON.stringify({ custom_id: `req-${k}`, method: "POST", url: "/v1/chat/completions", body: { model: "gpt-4o-mini", max_tokens: 64, messages: [{ role: "user", content: `${filler}#${k}` }] } })}\n`
    if (!out.write(chunk)) await new Promise((r) => out.once("drain", r))
  }
  await new Promise((r) => out.end(r))
}
const inputBytes = statSync(input).size
log(`input: ${lines} lines, ${(inputBytes / 1e6).toFixed(0)} MB`)

/** Runs `args` with node, sampling its RSS: wall seconds and peak RSS growth over node -e 0's. */
const measure = (args, env = {}) =>
  new Promise((resolve, reject) => {
    const start = performance.now()
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    let peak = 0
    // the kernel keeps the peak (VmHWM): reading it now and then is enough
    const sample = setInterval(() => {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, "utf8")
        const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024
        peak = Math.max(peak, hwm)
      } catch {}
    }, 100)
    child.on("close", (code) => {
      clearInterval(sample)
      if (code !== 0) reject(new Error(`${args.join(" ")} exited ${code}: ${stderr.slice(-2000)}`))
      else resolve({ seconds: (performance.now() - start) / 1000, peak, stdout, stderr })
    })
  })

const baseline = (await measure(["-e", "setTimeout(() => {}, 300)"])).peak
log(`node's own RSS: ${(baseline / 1e6).toFixed(0)} MB`)

// ---- planning alone (what `run --dry-run` does): every line checked, the shards cut
const plan = await measure([cli, "run", input, "--dry-run", "--json"])
const planned = JSON.parse(plan.stdout)
const cliBase = (await measure([cli, "jobs", "list", "--state", join(work, "empty.db")])).peak
// what this machine can parse: the same file through JSON.parse, line by line, and nothing else
const floor = await measure([join(root, "bench/json-floor.mjs"), input])
if (Number(floor.stdout.trim()) !== lines) throw new Error(`json-floor parsed ${floor.stdout.trim()} lines`)
const planning = {
  jsonParseMbPerSecond: inputBytes / 1e6 / floor.seconds,
  mbPerSecond: inputBytes / 1e6 / plan.seconds,
  seconds: plan.seconds,
  rssGrowthMb: (plan.peak - cliBase) / 1e6,
  shards: planned.shards.length
}
log(
  `planning: ${planning.seconds.toFixed(2)} s, ${planning.mbPerSecond.toFixed(0)} MB/s (read + JSON.parse of every line alone: ${planning.jsonParseMbPerSecond.toFixed(0)} MB/s), +${planning.rssGrowthMb.toFixed(0)} MB over the CLI's own ${(cliBase / 1e6).toFixed(0)} MB`
)

// ---- the whole job against the emulator, in a process of its own, as fast as it goes
const emulator = spawn(process.execPath, [cli, "emulator", "--speed", "1000000", "--api-key", "sk-bench"], {
  stdio: ["ignore", "pipe", "inherit"]
})
process.on("exit", () => emulator.kill())
const baseUrl = await new Promise((resolve) => {
  let out = ""
  emulator.stdout.on("data", (d) => {
    out += d
    if (out.includes("\n")) resolve(out.trim())
  })
})
const env = { OPENAI_API_KEY: "sk-bench", OPENAI_BASE_URL: baseUrl }
const state = join(work, "state.db")
const output = join(work, "results.jsonl")
const job = await measure([cli, "run", input, "--output", output, "--state", state], env)
const outputBytes = statSync(output).size
const jobId = /job (job_[a-z0-9]+)/.exec(job.stderr)?.[1]
const endToEnd = { seconds: job.seconds, peakRssMb: job.peak / 1e6, batches: planned.shards.length }
log(`end to end: ${endToEnd.seconds.toFixed(1)} s, peak RSS ${endToEnd.peakRssMb.toFixed(0)} MB`)

// ---- the results merge alone: the store's results in input order, to a file
const merged = await measure([
  cli,
  "jobs",
  "results",
  jobId,
  "--output",
  join(work, "again.jsonl"),
  "--state",
  state
])
const merge = {
  mbPerSecond: outputBytes / 1e6 / merged.seconds,
  seconds: merged.seconds,
  outputMb: outputBytes / 1e6,
  peakRssMb: merged.peak / 1e6
}
log(
  `merge: ${merge.outputMb.toFixed(0)} MB in ${merge.seconds.toFixed(2)} s, ${merge.mbPerSecond.toFixed(0)} MB/s`
)
// its batches and files are in memory: the Postgres cases start emulators of their own
emulator.kill()

// ---- the same job on Postgres, executed by 1 and by 3 runners
const runnersCases = []
if (!process.argv.includes("--no-postgres")) {
  const { startPostgres } = await import("../scripts/postgres.mjs")
  const pg = await startPostgres()
  process.on("exit", () => pg.stop())
  for (const count of [1, 3]) {
    const url = pg.createDatabase(`bench_${count}_runners`)
    const server = spawn(process.execPath, [cli, "emulator", "--speed", "1000000", "--api-key", "sk-bench"], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    const base = await new Promise((resolve) => {
      let out = ""
      server.stdout.on("data", (d) => {
        out += d
        if (out.includes("\n")) resolve(out.trim())
      })
    })
    const pgEnv = { ...env, OPENAI_BASE_URL: base, PGPASSWORD: pg.password }
    const runners = Array.from({ length: count }, () => {
      const child = spawn(process.execPath, [cli, "runner", "--state", url], {
        env: { ...process.env, ...pgEnv },
        stdio: ["ignore", "ignore", "pipe"]
      })
      let said = ""
      child.stderr.on("data", (d) => (said += d))
      const runner = { child, peak: 0, up: () => said.startsWith("runner ") }
      runner.sample = setInterval(() => {
        try {
          const status = readFileSync(`/proc/${child.pid}/status`, "utf8")
          runner.peak = Math.max(runner.peak, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024)
        } catch {}
      }, 100)
      return runner
    })
    while (!runners.every((r) => r.up())) await new Promise((r) => setTimeout(r, 50))
    const started = performance.now()
    const detached = await measure([cli, "run", input, "--state", url, "--detach"], pgEnv)
    const id = detached.stdout.trim()
    await measure([cli, "jobs", "watch", id, "--state", url], pgEnv)
    const seconds = (performance.now() - started) / 1000
    const merged = await measure(
      [cli, "jobs", "results", id, "--state", url, "--output", join(work, `pg-${count}.jsonl`)],
      pgEnv
    )
    for (const r of runners) {
      r.child.kill("SIGTERM")
      await new Promise((resolve) => r.child.once("close", resolve))
      clearInterval(r.sample)
    }
    // a watch cycle starts with the first list page (no `after`); the requests it spends
    // watching are its list pages and the retrieves of batches not on them (collecting a batch
    // retrieves it once more: those are not watching)
    const seen = (await (await fetch(`${base.replace(/\/v1$/, "")}/__admin/requests`)).json()).data
    server.kill()
    const pages = seen.filter((r) => r.method === "GET" && r.path === "/v1/batches")
    const cycles = pages.filter((r) => !new URLSearchParams(r.query).has("after")).length
    const batchCount = seen.filter((r) => r.method === "POST" && r.path === "/v1/batches").length
    const retrieves =
      seen.filter((r) => r.method === "GET" && /^\/v1\/batches\/[^/]+$/.test(r.path)).length - batchCount
    const result = {
      runners: count,
      seconds,
      planSeconds: detached.seconds,
      peakRssMb: runners.map((r) => r.peak / 1e6),
      cycles,
      requestsPerCycle: (pages.length + retrieves) / Math.max(1, cycles),
      listPages: pages.length,
      retrieves,
      mergeMbPerSecond: outputBytes / 1e6 / merged.seconds
    }
    runnersCases.push(result)
    log(
      `postgres, ${count} runner(s): ${seconds.toFixed(1)} s (of which run --detach ${detached.seconds.toFixed(1)} s), peak RSS ${result.peakRssMb.map((m) => m.toFixed(0)).join(" / ")} MB, ${cycles} watch cycles at ${result.requestsPerCycle.toFixed(2)} requests each (${pages.length} list pages, ${retrieves} retrieves while watching), merge ${result.mergeMbPerSecond.toFixed(0)} MB/s`
    )
  }
}

const rows = [
  ["case", "figure", "target", "met"],
  [
    `planning ${lines} lines (${(inputBytes / 1e6).toFixed(0)} MB)`,
    `${planning.mbPerSecond.toFixed(0)} MB/s (JSON.parse alone ${planning.jsonParseMbPerSecond.toFixed(0)}), +${planning.rssGrowthMb.toFixed(0)} MB RSS`,
    "≥100 MB/s, <150 MB",
    planning.mbPerSecond >= 100 && planning.rssGrowthMb < 150 ? "yes" : "NO"
  ],
  [
    `job of ${lines} requests end to end`,
    `${endToEnd.seconds.toFixed(1)} s, ${endToEnd.peakRssMb.toFixed(0)} MB peak RSS`,
    "<300 MB",
    endToEnd.peakRssMb < 300 ? "yes" : "NO"
  ],
  [
    `results merge (${merge.outputMb.toFixed(0)} MB)`,
    `${merge.mbPerSecond.toFixed(0)} MB/s`,
    "≥100 MB/s",
    merge.mbPerSecond >= 100 ? "yes" : "NO"
  ],
  ...runnersCases.map((c) => [
    `same job on Postgres, ${c.runners} runner${c.runners > 1 ? "s" : ""}`,
    `${c.seconds.toFixed(1)} s, peak RSS ${c.peakRssMb.map((m) => m.toFixed(0)).join("/")} MB, ${c.requestsPerCycle.toFixed(2)} requests/watch cycle`,
    "≤⌈batches/100⌉+1 per cycle",
    c.requestsPerCycle <= Math.ceil(planned.shards.length / 100) + 1 ? "yes" : "NO"
  ])
]
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)))
for (const [i, r] of rows.entries()) {
  console.log(`| ${r.map((c, k) => String(c).padEnd(widths[k])).join(" | ")} |`)
  if (i === 0) console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`)
}
mkdirSync(join(root, "bench-results"), { recursive: true })
writeFileSync(
  join(root, "bench-results", "jobs.json"),
  `${JSON.stringify({ date: new Date().toISOString(), lines, inputBytes, planning, endToEnd, merge, postgres: runnersCases }, null, 2)}\n`
)
process.exit(0)
