/**
 * batchkit run and batchkit jobs through the built CLI against the emulator: a 120,000-line
 * input, retry rounds, the enqueued-token limit, an expired batch, a cancelled job, bad input.
 */
import { Responder } from "@batchkit/core/testing"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { apiKey } from "./support/cli.js"
import { batchesOf, cli, embeddings, hooked, jobIdOf, scratch, start } from "./support/jobs.js"

const results = (path: string) =>
  readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))

describe("batchkit run and jobs", { timeout: 180_000 }, () => {
  it("a 120,000-line input runs to one results file of 120,000 lines in input order, across 3 batches", async () => {
    const { server } = await hooked({ speed: 5000 })
    try {
      const dir = scratch()
      embeddings(dir, 120_000)
      const out = join(dir, "out.jsonl")
      const run = await cli(server, ["run", "in.jsonl", "--output", out, "--state", "s.db"], dir)
      expect(run.code, run.stderr).toBe(0)
      expect(run.stderr).toMatch(/job job_\w+: 120000 requests in 3 shards \(text-embedding-3-small\)/)
      expect(run.stderr).toMatch(/finished: 120,000 requests: 120,000 succeeded/)
      const lines = readFileSync(out, "utf8").split("\n")
      expect(lines.length).toBe(120_001)
      for (let i = 0; i < 120_000; i += 997) expect(JSON.parse(lines[i]!).custom_id).toBe(`r${i}`)
      expect(JSON.parse(lines[119_999]!)).toMatchObject({
        custom_id: "r119999",
        outcome: "succeeded",
        attempts: 1
      })
      const batches = await batchesOf(server, jobIdOf(run.stderr)!)
      expect(batches.map((b) => b.ids.length).sort()).toEqual([20_000, 50_000, 50_000])
      // the store holds no key
      for (const f of readdirSync(dir).filter((n) => n.startsWith("s.db")))
        expect(readFileSync(join(dir, f)).includes(Buffer.from(apiKey))).toBe(false)
    } finally {
      await server.close()
    }
  })

  it("retry rounds resend transient failures; the results count attempts; exit 3 when some still failed", async () => {
    const { server } = await hooked({
      speed: 2000,
      responder: Responder.transient(["r3", "r400"], { base: Responder.failing(["r7"]) })
    })
    try {
      const dir = scratch()
      embeddings(dir, 600)
      const out = join(dir, "out.jsonl")
      const run = await cli(
        server,
        ["run", "in.jsonl", "--max-requests", "300", "-o", out, "--state", "s.db"],
        dir
      )
      expect(run.code, run.stderr).toBe(3)
      const lines = results(out)
      expect(lines.length).toBe(600)
      expect(lines[3]).toMatchObject({ custom_id: "r3", outcome: "succeeded", attempts: 2 })
      expect(lines[400]).toMatchObject({ custom_id: "r400", outcome: "succeeded", attempts: 2 })
      expect(lines[7]).toMatchObject({ custom_id: "r7", outcome: "failed", status_code: 400, attempts: 1 })
      // round 1 sent only the two that failed transiently
      const batches = await batchesOf(server, jobIdOf(run.stderr)!)
      expect(batches.find((b) => b.shard.startsWith("r1"))?.ids.sort()).toEqual(["r3", "r400"])
      const status = JSON.parse(
        (await cli(server, ["jobs", "status", jobIdOf(run.stderr)!, "--json", "--state", "s.db"], dir)).stdout
      )
      expect(status).toMatchObject({
        status: "finished",
        requests: { total: 600, succeeded: 599, failed: 1 }
      })
    } finally {
      await server.close()
    }
  })

  it("a batch over the enqueued-token limit goes back to the queue; --max-enqueued-tokens keeps them under it", async () => {
    // 300 requests ≈ 300 × 13 tokens ≈ 3,900: two shards do not fit together under 5,000. At 50×
    // a batch runs about a second, so the two shards' batches overlap even on a busy machine
    // (at 2000× the first could end before the second was validated, and nothing was refused)
    const { server } = await hooked({ speed: 50, enqueuedTokenLimits: { "text-embedding-3-small": 5000 } })
    try {
      const dir = scratch()
      embeddings(dir, 600)
      const out = join(dir, "out.jsonl")
      const requeued = await cli(
        server,
        ["run", "in.jsonl", "--max-requests", "300", "-o", out, "--state", "s.db"],
        dir
      )
      expect(requeued.code, requeued.stderr).toBe(0)
      expect(results(out).every((l) => l.outcome === "succeeded" && l.attempts === 1)).toBe(true)
      const first = await batchesOf(server, jobIdOf(requeued.stderr)!)
      // one shard was refused (token_limit_exceeded), then resubmitted as its next attempt
      expect(first.filter((b) => b.status === "failed").length).toBeGreaterThanOrEqual(1)
      expect(first.filter((b) => b.status === "completed").length).toBe(2)
      const admitted = await cli(
        server,
        [
          "run",
          "in.jsonl",
          "--max-requests",
          "300",
          "--max-enqueued-tokens",
          "5000",
          "-o",
          out,
          "--state",
          "s.db",
          "--new"
        ],
        dir
      )
      expect(admitted.code, admitted.stderr).toBe(0)
      const second = await batchesOf(server, jobIdOf(admitted.stderr)!)
      expect(second.map((b) => b.status)).toEqual(["completed", "completed"])
    } finally {
      await server.close()
    }
  })

  it("an expired batch's finished results are kept; the rest are retried in the next round", async () => {
    const { server } = await hooked({ speed: 500, completionWindow: "30 seconds", requestsPerSecond: 10 })
    try {
      const dir = scratch()
      embeddings(dir, 400)
      const out = join(dir, "out.jsonl")
      const run = await cli(server, ["run", "in.jsonl", "-o", out, "--state", "s.db", "--retries", "1"], dir)
      const lines = results(out)
      expect(lines.length).toBe(400)
      const batches = await batchesOf(server, jobIdOf(run.stderr)!)
      expect(batches.some((b) => b.status === "expired")).toBe(true)
      // finished before the window closed: one attempt; the rest: retried, some expired again
      expect(lines[0]).toMatchObject({ outcome: "succeeded", attempts: 1 })
      expect(lines.some((l) => l.attempts === 2)).toBe(true)
      expect(run.code).toBe(lines.every((l) => l.outcome === "succeeded") ? 0 : 3)
    } finally {
      await server.close()
    }
  })

  it("jobs cancel from another process: the batches are cancelled, partial results kept, a line per request, exit 3", async () => {
    const { server } = await hooked({ speed: 50 })
    try {
      const dir = scratch()
      embeddings(dir, 3000)
      const out = join(dir, "out.jsonl")
      const run = start(
        server,
        ["run", "in.jsonl", "--max-requests", "1000", "-o", out, "--state", "s.db"],
        dir
      )
      for (let i = 0; i < 400; i++) {
        const inProgress = (await Effect.runPromise(server.simulator.batches)).filter(
          (b) => b.status === "in_progress"
        )
        if (inProgress.length > 0) break
        await new Promise((r) => setTimeout(r, 50))
      }
      const jobId = jobIdOf(run.stderr())!
      const cancel = await cli(server, ["jobs", "cancel", jobId, "--state", "s.db"], dir)
      expect(cancel.code, cancel.stderr).toBe(0)
      const end = await run.done
      expect(end.code, end.stderr).toBe(3)
      const lines = results(out)
      expect(lines.length).toBe(3000)
      expect(lines.some((l) => l.outcome === "succeeded")).toBe(true)
      expect(lines.some((l) => l.outcome === "cancelled")).toBe(true)
      const batches = await batchesOf(server, jobId)
      expect(batches.every((b) => b.status === "cancelled" || b.status === "completed")).toBe(true)
      const status = JSON.parse(
        (await cli(server, ["jobs", "status", jobId, "--json", "--state", "s.db"], dir)).stdout
      )
      expect(status.status).toBe("cancelled")
    } finally {
      await server.close()
    }
  })

  it("bad input costs nothing: FILE:LINE problems, exit 2, no request; --dry-run prints shards; --detach records", async () => {
    const { server } = await hooked()
    try {
      const dir = scratch()
      embeddings(dir, 10, "a.jsonl")
      const b = embeddings(dir, 10, "b.jsonl", 5)
      writeFileSync(b, `${readFileSync(b, "utf8")}{"custom_id": "x", "method": "POST"\n`)
      const before = (await Effect.runPromise(server.simulator.requests)).length
      const bad = await cli(server, ["run", "a.jsonl", "b.jsonl", "--state", "s.db"], dir)
      expect(bad.code).toBe(2)
      expect(bad.stderr).toContain(`b.jsonl:1: custom_id "r5" is used more than once (first at a.jsonl:6)`)
      expect(bad.stderr).toContain("b.jsonl:11: not valid JSON")
      const dry = await cli(server, ["run", "a.jsonl", "--max-requests", "4", "--dry-run", "--json"], dir)
      expect(dry.code).toBe(0)
      expect(JSON.parse(dry.stdout).shards.map((s: { requests: number }) => s.requests)).toEqual([4, 4, 2])
      expect((await Effect.runPromise(server.simulator.requests)).length).toBe(before)
      const detached = await cli(server, ["run", "a.jsonl", "--detach", "--json", "--state", "s.db"], dir)
      expect(detached.code).toBe(0)
      const { job } = JSON.parse(detached.stdout)
      expect((await Effect.runPromise(server.simulator.requests)).length).toBe(before)
      const listed = await cli(server, ["jobs", "list", "--json", "--state", "s.db"], dir)
      expect(JSON.parse(listed.stdout.trim().split("\n")[0]!)).toMatchObject({ id: job, status: "planned" })
      const early = await cli(
        server,
        ["jobs", "results", job, "-o", join(dir, "r.jsonl"), "--state", "s.db"],
        dir
      )
      expect(early.code).toBe(2)
      expect(early.stderr).toContain("has not finished")
      const resumed = await cli(
        server,
        ["jobs", "resume", job, "-o", join(dir, "r.jsonl"), "--state", "s.db"],
        dir
      )
      expect(resumed.code, resumed.stderr).toBe(0)
      expect(results(join(dir, "r.jsonl")).length).toBe(10)
      const again = await cli(
        server,
        ["jobs", "results", job, "-o", join(dir, "r2.jsonl"), "--state", "s.db"],
        dir
      )
      expect(again.code).toBe(0)
      expect(readFileSync(join(dir, "r2.jsonl"), "utf8")).toBe(readFileSync(join(dir, "r.jsonl"), "utf8"))
      expect((await cli(server, ["jobs", "status", "job_nope00000000", "--state", "s.db"], dir)).code).toBe(2)
    } finally {
      await server.close()
    }
  })

  it("an interrupted run exits 130 and says how to resume; the job finishes on resume", async () => {
    const { server } = await hooked({ speed: 20 })
    try {
      const dir = scratch()
      embeddings(dir, 200)
      const run = start(server, ["run", "in.jsonl", "-o", "out.jsonl", "--state", "s.db"], dir)
      for (let i = 0; i < 400 && !run.stderr().includes("running"); i++)
        await new Promise((r) => setTimeout(r, 50))
      run.child.kill("SIGINT")
      const end = await run.done
      expect(end.code).toBe(130)
      const jobId = jobIdOf(end.stderr)!
      expect(end.stderr).toContain(`job ${jobId} goes on`)
      expect(end.stderr).toContain(`batchkit jobs resume ${jobId}`)
      const resumed = await cli(server, ["jobs", "resume", jobId, "--state", "s.db"], dir)
      expect(resumed.code, resumed.stderr).toBe(0)
      expect(results(join(dir, "out.jsonl")).length).toBe(200)
    } finally {
      await server.close()
    }
  })
})
