import { Batch } from "@batchkit/core"
import { describe, expect, it } from "@effect/vitest"
import { vi } from "vitest"
import { Schema } from "effect"
import { progressLine, uploadProgress } from "../src/Progress.js"

const batch = (status: string, completed: number, failed: number, total: number) =>
  Schema.decodeUnknownSync(Batch.Batch)({
    id: "batch_1",
    object: "batch",
    endpoint: "/v1/chat/completions",
    input_file_id: "file-1",
    completion_window: "24h",
    status,
    created_at: 1,
    request_counts: { total, completed, failed }
  })

describe("the progress line", () => {
  it("shows status, done/total with failures, rate, elapsed and ETA while running", () => {
    const line = progressLine(batch("in_progress", 90, 10, 400), 0, 125_000, 20)
    expect(line).toBe("batch_1  in_progress  100/400 (10 failed)  20.0 req/s  elapsed 2:05  ETA 0:15")
  })
  it("leaves out what it cannot know yet, and the ETA once requests are done", () => {
    expect(progressLine(batch("validating", 0, 0, 0), 0, 3_000, undefined)).toBe(
      "batch_1  validating   elapsed 0:03"
    )
    expect(progressLine(batch("finalizing", 400, 0, 400), 0, 3_600_000, 50)).toBe(
      "batch_1  finalizing   400/400  50.0 req/s  elapsed 1:00:00"
    )
  })
})

describe("upload progress", () => {
  it("shows bytes sent on a terminal for large files, and nothing for small ones or off a terminal", () => {
    const written: Array<string> = []
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
      written.push(String(chunk))
      return true
    })
    try {
      const size = 20 * 1024 * 1024
      const live = uploadProgress(size, true)
      expect(live.shown).toBe(true)
      live.sent(size / 2)
      live.sent(size / 2)
      live.done()
      expect(written.join("")).toContain("uploading 20.0 / 20.0 MB (100%)")
      written.length = 0
      const small = uploadProgress(1024, true)
      const offTerminal = uploadProgress(size, false)
      expect([small.shown, offTerminal.shown]).toEqual([false, false])
      small.sent(1024)
      offTerminal.sent(size)
      expect(written).toEqual([])
    } finally {
      spy.mockRestore()
    }
  })
})

describe("the job progress line", () => {
  it("shows done/total (running batches included), what did not succeed, batches by status, rate, ETA, tokens and cost", async () => {
    const { Job } = await import("@batchkit/jobs")
    const { jobLine } = await import("../src/Progress.js")
    const snapshot = new Job.Snapshot({
      id: "job_1234567890abcdef",
      status: "running",
      created_at: 0,
      finished_at: null,
      inputs: ["a.jsonl"],
      output: null,
      models: ["gpt-4o-mini"],
      shards: 3,
      round: 0,
      requests: {
        total: 120000,
        succeeded: 49990,
        failed: 10,
        expired: 0,
        cancelled: 0,
        errored: 0,
        pending: 70000
      },
      batches: { completed: 1, in_progress: 2 },
      running: { completed: 20000, failed: 0 },
      tokens: { input: 1000, cached: 0, output: 500, reasoning: 0 },
      cost: { usd: 0.25, unpriced: [], prices: "2026-12-02" },
      last_error: null
    })
    expect(jobLine(snapshot, 0, 65_000, 1000)).toBe(
      "job job_1234567890abcdef  running     70000/120000 (10 not succeeded)  batches: 1 completed, 2 in_progress  1000.0 req/s  elapsed 1:05  ETA 0:50  tokens 1000/500  $0.2500"
    )
  })
})
