import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Emulator } from "@batchkit/node"
import { Effect } from "effect"

const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url))
const apiKey = "sk-cli-SECRET-5555555555"
let server: Awaited<ReturnType<typeof Emulator.start>>
const batchIds = async () => (await Effect.runPromise(server.simulator.batches)).map((b) => b.id as string)
const requestCount = async () => (await Effect.runPromise(server.simulator.requests)).length

const headers = () => ({ authorization: `Bearer ${apiKey}` })

/** Creates a batch through the server's own API, not through the code under test. */
const createBatch = async (lines = 1) => {
  const upload = new FormData()
  upload.append("purpose", "batch")
  const jsonl = Array.from(
    { length: lines },
    (_, i) => `{"custom_id":"r${i}","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}\n`
  )
  upload.append("file", new Blob(jsonl), "in.jsonl")
  const file = (await (
    await fetch(`${server.url}/files`, { method: "POST", body: upload, headers: headers() })
  ).json()) as { id: string }
  const batch = await fetch(`${server.url}/batches`, {
    method: "POST",
    headers: { ...headers(), "content-type": "application/json" },
    body: JSON.stringify({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h"
    })
  })
  return ((await batch.json()) as { id: string }).id
}

beforeAll(async () => {
  // 20× the wall clock: a one-line batch completes in about a second
  server = await Emulator.start({ apiKey, speed: 20 })
  for (let i = 0; i < 3; i++) await createBatch()
})
afterAll(() => server.close())

/** Runs the built CLI against the server, like a user's shell would, but on a clean environment. */
const cli = (args: Array<string>, env: Record<string, string> = { OPENAI_API_KEY: apiKey }) =>
  // asynchronous: the server runs in this process, so a blocking spawnSync would starve it
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH ?? "", OPENAI_BASE_URL: server.url, ...env }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d))
    child.stderr.on("data", (d: Buffer) => (stderr += d))
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

describe("batchkit (built) against a loopback server", { timeout: 30_000 }, () => {
  it("list --json prints one batch per line, exactly the ids on the server", async () => {
    const { code, stdout, stderr } = await cli(["list", "--json", "--all", "--limit", "1"])
    expect(stderr).toBe("")
    expect(code).toBe(0)
    const ids = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).id)
    expect(ids.sort()).toEqual((await batchIds()).sort())
  })

  it("retrieve --json prints the batch object; the table for people goes to stdout too", async () => {
    const id = (await batchIds())[0]!
    const json = await cli(["retrieve", id, "--json"])
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout)).toMatchObject({ id, object: "batch" })
    const human = await cli(["retrieve", id])
    expect(human.stdout).toContain(id)
    expect(human.stdout).toContain("status")
  })

  it("watch exits 0 after a completed batch and 3 after a cancelled one", async () => {
    // 2,000 lines take 10 s of wall time: still running when the cancel arrives
    const [a, b] = [await createBatch(), await createBatch(2000)]
    const cancel = await cli(["cancel", b!])
    expect(cancel.code).toBe(0)
    const cancelled = await cli(["watch", b!, "--interval", "20ms"])
    expect(cancelled.code).toBe(3)
    const completed = await cli(["watch", a!, "--interval", "20ms", "--json"])
    expect(completed.code).toBe(0)
    expect(JSON.parse(completed.stdout.trim().split("\n").at(-1)!).status).toBe("completed")
  })

  it("an API error is one line on stderr naming status and request id, exit 1; the key is never printed", async () => {
    const { code, stdout, stderr } = await cli(["retrieve", "batch_nope"])
    expect(code).toBe(1)
    expect(stdout).toBe("")
    expect(stderr.trim().split("\n").length).toBe(1)
    expect(stderr).toContain("404")
    expect(stderr).toMatch(/request id req_/)
    const wrong = await cli(["list", "--api-key", "sk-wrong-but-secret-123"], {})
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toContain("401")
    expect(wrong.stderr + wrong.stdout).not.toContain("sk-wrong-but-secret-123")
  })

  it("bad input exits 2 and sends nothing", async () => {
    const before = await requestCount()
    for (const args of [
      ["list", "--limit", "0"],
      ["list", "--limit", "101"],
      ["retrieve", "batch/1"],
      ["cancel", "../x"],
      ["watch", "b1", "--interval", "soon"]
    ]) {
      const { code, stderr } = await cli(args)
      expect(code, args.join(" ")).toBe(2)
      expect(stderr).not.toBe("")
    }
    const noKey = await cli(["list"], {})
    expect(noKey.code).toBe(2)
    expect(noKey.stderr).toContain("OPENAI_API_KEY")
    expect(await requestCount()).toBe(before)
  })

  it("emulator prints its base URL on stdout, serves until interrupted, and refuses a taken port", async () => {
    const child = spawn(process.execPath, [bin, "emulator", "--speed", "100"], {
      env: { PATH: process.env.PATH ?? "" }
    })
    const url = await new Promise<string>((resolve) => {
      let out = ""
      child.stdout.on("data", (d: Buffer) => {
        out += d
        if (out.includes("\n")) resolve(out.trim())
      })
    })
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/)
    const listed = await cli(["list", "--json", "--base-url", url])
    expect(listed.code).toBe(0)
    expect(listed.stdout).toBe("")
    const taken = await cli(["emulator", "--port", new URL(url).port])
    expect(taken.code).toBe(1)
    expect(taken.stderr).toContain("cannot listen")
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve))
    child.kill("SIGINT")
    expect(await exited).not.toBeNull()
  })
})
