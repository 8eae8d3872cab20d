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
