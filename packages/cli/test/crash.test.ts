/**
 * Crash tests: `batchkit run` killed with SIGKILL at each phase of a job, then resumed (by `jobs
 * resume` and by running the same `run` again). Every time: one batch per shard attempt on the
 * emulator, every request in exactly one batch, and one results line per request, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { batchesOf, cli, embeddings, hooked, jobIdOf, scratch, type Server, start } from "./support/jobs.js"

let emulator: Awaited<ReturnType<typeof hooked>>
beforeAll(async () => {
  emulator = await hooked({ speed: 200 })
})
afterAll(() => emulator.server.close())

const requests = 1500
const args = (out: string) => [
  "run",
  "in.jsonl",
  "--max-requests",
  "500",
  "--output",
  out,
  "--state",
  "state.db"
]

/** The phases: where the child dies, told by the request the emulator sees (and when). */
const phases: ReadonlyArray<{
  readonly name: string
  readonly at?: {
    readonly method: string
    readonly path: RegExp
    readonly when: "before" | "after"
    readonly nth?: number
  }
  readonly stderr?: RegExp
}> = [
  { name: "after planning", stderr: /job job_\w+: 1500 requests in 3 shards/ },
  {
    name: "after an upload and before its create",
    at: { method: "POST", path: /^\/v1\/batches$/, when: "before" }
  },
  {
    name: "right after a create was sent",
    at: { method: "POST", path: /^\/v1\/batches$/, when: "after", nth: 2 }
  },
  { name: "while watching", at: { method: "GET", path: /^\/v1\/batches$/, when: "after" } },
  {
    name: "while collecting results",
    at: { method: "GET", path: /^\/v1\/files\/[\w-]+\/content$/, when: "after" }
  }
]

const check = async (server: Server, dir: string, out: string, jobId: string) => {
  const lines = readFileSync(out, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
  expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: requests }, (_, i) => `r${i}`))
  expect(lines.every((l) => l.outcome === "succeeded" && l.attempts === 1)).toBe(true)
  const batches = await batchesOf(server, jobId)
  // one batch per shard attempt
  const shards = batches.map((b) => b.shard)
  expect(new Set(shards).size).toBe(shards.length)
  // every request went to the API exactly once
  const sent = batches.flatMap((b) => b.ids).sort()
  expect(sent).toEqual(Array.from({ length: requests }, (_, i) => `r${i}`).sort())
  expect(readdirSync(dir).filter((f) => f.endsWith(".partial"))).toEqual([])
}

/** Runs `args` in `dir` and kills it (SIGKILL) the moment its results file is being written. */
const killWhileWriting = async (args: Array<string>, dir: string) => {
  const run = start(emulator.server, args, dir)
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (readdirSync(dir).some((f) => f.startsWith(".out.jsonl.") && f.endsWith(".partial"))) {
        clearInterval(poll)
        run.child.kill("SIGKILL")
        resolve()
      }
    }, 1)
  })
  return run.done
}

describe("batchkit run killed at each phase, then resumed", { timeout: 120_000 }, () => {
  for (const phase of phases) {
    for (const resume of ["jobs resume", "run again"] as const) {
      it(`${phase.name}; ${resume}`, async () => {
        const dir = scratch()
        embeddings(dir, requests)
        const out = join(dir, "out.jsonl")
        const run = start(emulator.server, args(out), dir)
        let seen = 0
        let killed = false
        const kill = () => {
          if (killed) return
          killed = true
          run.child.kill("SIGKILL")
        }
        emulator.box.hook = (r, when) => {
          const at = phase.at
          if (
            at === undefined ||
            killed ||
            when !== at.when ||
            r.method !== at.method ||
            !at.path.test(r.path)
          )
            return
          seen++
          if (seen >= (at.nth ?? 1)) {
            kill()
            // the child is gone before this answer reaches it
            return new Promise((resolve) => run.child.once("close", resolve))
          }
        }
        if (phase.stderr !== undefined) {
          const re = phase.stderr
          await new Promise<void>((resolve) => {
            const poll = setInterval(() => {
              if (re.test(run.stderr())) {
                clearInterval(poll)
                kill()
                resolve()
              }
            }, 5)
          })
        }
        const first = await run.done
        emulator.box.hook = () => {}
        expect(first.signal).toBe("SIGKILL")
        const jobId = jobIdOf(first.stderr)
        expect(jobId).toBeDefined()
        expect(existsSync(out)).toBe(false)
        const second =
          resume === "jobs resume"
            ? await cli(emulator.server, ["jobs", "resume", jobId!, "--state", "state.db"], dir)
            : await cli(emulator.server, args(out), dir)
        expect(second.code, second.stderr).toBe(0)
        if (resume === "run again") expect(second.stderr).toContain(`resuming job ${jobId}`)
        await check(emulator.server, dir, out, jobId!)
      })
    }
  }

  it("while writing the results file; the same run again writes it whole and sends nothing", async () => {
    const dir = scratch()
    embeddings(dir, 30_000)
    const out = join(dir, "out.jsonl")
    const args = ["run", "in.jsonl", "--max-requests", "10000", "--output", out, "--state", "state.db"]
    const first = await killWhileWriting(args, dir)
    expect(first.signal).toBe("SIGKILL")
    const jobId = jobIdOf(first.stderr)!
    const requests = (await Effect.runPromise(emulator.server.simulator.requests)).length
    const second = await cli(emulator.server, args, dir)
    expect(second.code, second.stderr).toBe(0)
    expect(second.stderr).toContain(`job ${jobId} with these inputs and options has finished already`)
    expect((await Effect.runPromise(emulator.server.simulator.requests)).length).toBe(requests)
    expect(readFileSync(out, "utf8").trim().split("\n").length).toBe(30_000)
    expect(readdirSync(dir).filter((f) => f.endsWith(".partial"))).toEqual([])
  })

  it("while writing the results file; jobs resume writes it whole", async () => {
    const dir = scratch()
    embeddings(dir, 30_000)
    const out = join(dir, "out.jsonl")
    const first = await killWhileWriting(
      ["run", "in.jsonl", "--max-requests", "10000", "--output", out, "--state", "state.db"],
      dir
    )
    expect(first.signal).toBe("SIGKILL")
    expect(existsSync(out)).toBe(false)
    const jobId = jobIdOf(first.stderr)!
    const second = await cli(emulator.server, ["jobs", "resume", jobId, "--state", "state.db"], dir)
    expect(second.code, second.stderr).toBe(0)
    const lines = readFileSync(out, "utf8").trim().split("\n")
    expect(lines.length).toBe(30_000)
    expect(JSON.parse(lines[29_999]!).custom_id).toBe("r29999")
    expect(readdirSync(dir).filter((f) => f.endsWith(".partial"))).toEqual([])
    const batches = await batchesOf(emulator.server, jobId)
    expect(batches.length).toBe(3)
  })
})
