/**
 * End to end: the built CLI (dist/bin.js) as a child process against the emulator, the way a
 * person or a script runs it.
 */
import { Emulator } from "@batchkit/node"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { apiKey, bin, jsonLines, lines, setup } from "./support/cli.js"

const { state, requestCount, cli, write, submitted } = setup()
import { spawn } from "node:child_process"

describe("batchkit against the emulator", { timeout: 60_000 }, () => {
  it("files upload, retrieve, list, content --output and delete, with --json giving the API's objects", async () => {
    const path = write("upload.jsonl", lines(3))
    const up = await cli(["files", "upload", path, "--json"])
    expect(up.code).toBe(0)
    const file = JSON.parse(up.stdout)
    expect(file).toMatchObject({
      object: "file",
      purpose: "batch",
      filename: "upload.jsonl",
      bytes: readFileSync(path).byteLength
    })
    expect(JSON.parse((await cli(["files", "retrieve", file.id, "--json"])).stdout).id).toBe(file.id)
    const listed = await cli(["files", "list", "--json", "--all", "--limit", "1"])
    expect(jsonLines(listed.stdout).map((f) => f.id)).toContain(file.id)
    const human = await cli(["files", "list"])
    expect(human.stdout.split("\n")[0]).toMatch(/^ID\s+PURPOSE\s+BYTES\s+FILENAME\s+CREATED$/)
    const target = join(state.dir, "downloaded.jsonl")
    const content = await cli(["files", "content", file.id, "--output", target])
    expect(content.code).toBe(0)
    expect(content.stdout).toBe("")
    expect(readFileSync(target, "utf8")).toBe(readFileSync(path, "utf8"))
    expect((await cli(["files", "content", file.id])).stdout).toBe(readFileSync(path, "utf8"))
    const deleted = await cli(["files", "delete", file.id, "--json"])
    expect(JSON.parse(deleted.stdout)).toEqual({ id: file.id, object: "file", deleted: true })
    expect((await cli(["files", "retrieve", file.id])).code).toBe(1)
  })

  it("create, retrieve, list --all across pages (each batch once), watch to completed, results", async () => {
    const file = JSON.parse((await cli(["files", "upload", write("c.jsonl", lines(5)), "--json"])).stdout)
    const created = await cli([
      "create",
      "--input-file-id",
      file.id,
      "--endpoint",
      "/v1/chat/completions",
      "--metadata",
      "team=ml",
      "--json"
    ])
    expect(created.code).toBe(0)
    const batch = JSON.parse(created.stdout)
    expect(batch).toMatchObject({ object: "batch", status: "validating", metadata: { team: "ml" } })
    for (let i = 0; i < 4; i++)
      await cli(["create", "--input-file-id", file.id, "--endpoint", "/v1/chat/completions"])
    const expected = (await Effect.runPromise(state.server.simulator.batches)).map((b) => b.id)
    const all = await cli(["list", "--all", "--limit", "2", "--json"])
    expect(jsonLines(all.stdout).map((b) => b.id)).toEqual(expected)
    const page = await cli(["list", "--limit", "2", "--json"])
    expect(jsonLines(page.stdout).length).toBe(2)
    const watched = await cli(["watch", batch.id, "--interval", "50ms", "--json"])
    expect(watched.code).toBe(0)
    const snapshots = jsonLines(watched.stdout)
    expect(snapshots.at(-1).status).toBe("completed")
    // a snapshot is printed only when the status or the counts change
    const keys = snapshots.map((s) => `${s.status}|${JSON.stringify(s.request_counts)}`)
    expect(keys.every((k, i) => i === 0 || k !== keys[i - 1])).toBe(true)
    const retrieved = await cli(["retrieve", batch.id])
    expect(retrieved.stdout).toMatch(/status\s+completed/)
    const results = await cli(["results", batch.id])
    expect(results.code).toBe(0)
    expect(jsonLines(results.stdout).map((r) => r.outcome)).toEqual(Array(5).fill("succeeded"))
    expect(results.stderr).toContain("5 succeeded")
  })

  it("submit --wait --output writes every result joined by custom_id, in input order", async () => {
    const path = write("s.jsonl", lines(40))
    const output = join(state.dir, "results.jsonl")
    const run = await cli(["submit", path, "--wait", "--output", output, "--interval", "100ms", "--json"])
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout)).toMatchObject({ object: "batch", status: "completed" })
    const results = jsonLines(readFileSync(output, "utf8"))
    expect(results.map((r) => r.custom_id)).toEqual(Array.from({ length: 40 }, (_, i) => `req-${i}`))
    expect(results[0]).toMatchObject({
      outcome: "succeeded",
      status_code: 200,
      response: { object: "chat.completion" }
    })
    expect(readdirSync(state.dir).filter((f) => f.endsWith(".partial"))).toEqual([])
  })

  it("submit --dry-run validates and summarises without a request; bad lines exit 2 with line numbers", async () => {
    const before = await requestCount()
    const dry = await cli(["submit", write("dry.jsonl", lines(7)), "--dry-run", "--json"])
    expect(dry.code).toBe(0)
    expect(JSON.parse(dry.stdout)).toMatchObject({
      lines: 7,
      endpoint: "/v1/chat/completions",
      model: "gpt-4o-mini"
    })
    const broken = write("broken.jsonl", `${lines(2)}{"custom_id": "x"\n${lines(1)}`)
    const bad = await cli(["submit", broken])
    expect(bad.code).toBe(2)
    expect(bad.stdout).toBe("")
    expect(bad.stderr).toContain(`${broken}:3:`)
    expect(bad.stderr).toContain("invalid_json_line")
    expect(bad.stderr).toContain(`${broken}:4:`)
    expect(bad.stderr).toContain("duplicate_custom_id")
    const mismatch = await cli(["submit", write("m.jsonl", lines(2)), "--endpoint", "/v1/embeddings"])
    expect(mismatch.code).toBe(2)
    expect(mismatch.stderr).toContain("url_mismatch")
    expect(await requestCount()).toBe(before)
  })

  it("results --input writes input order and marks input lines with no result as missing", async () => {
    const batch = await submitted(write("r.jsonl", lines(4)))
    await cli(["watch", batch.id, "--interval", "50ms"])
    // the input given to results has two more lines than the batch ran
    const input = write("r-more.jsonl", lines(6))
    const output = join(state.dir, "r-out.jsonl")
    const run = await cli(["results", batch.id, "--input", input, "--output", output])
    expect(run.code).toBe(0)
    const results = jsonLines(readFileSync(output, "utf8"))
    expect(results.map((r) => `${r.custom_id}:${r.outcome}`)).toEqual([
      "req-0:succeeded",
      "req-1:succeeded",
      "req-2:succeeded",
      "req-3:succeeded",
      "req-4:missing",
      "req-5:missing"
    ])
    expect(run.stderr).toContain("2 input line(s) have no result: req-4, req-5")
  })

  it("submit --wait on a batch that gets cancelled saves the partial results and exits 3", async () => {
    // 3,000 requests: about 15 s of work at 20×, so the cancel (a CLI of its own, which takes a
    // second or two to start on a busy machine) comes while most are still to do
    const path = write("cancel.jsonl", lines(3000))
    const output = join(state.dir, "cancelled.jsonl")
    const running = cli(["submit", path, "--wait", "--output", output, "--interval", "100ms"])
    let id: string | undefined
    for (let i = 0; i < 200 && id === undefined; i++) {
      await new Promise((r) => setTimeout(r, 50))
      const batches = await Effect.runPromise(state.server.simulator.batches)
      const b = batches.find(
        (x) => x.status === "in_progress" && (x.request_counts as { total: number }).total === 3000
      )
      id = b?.id as string | undefined
    }
    expect(id).toBeDefined()
    const cancel = await cli(["cancel", id!])
    expect(cancel.code).toBe(0)
    const run = await running
    expect(run.code).toBe(3)
    const results = jsonLines(readFileSync(output, "utf8"))
    expect(results.length).toBe(3000)
    const outcomes = new Set(results.map((r) => r.outcome))
    expect(outcomes.has("cancelled")).toBe(true)
    expect([...outcomes].every((o) => o === "succeeded" || o === "cancelled")).toBe(true)
    // cancelling it again: one request, exit 1, the message names the status
    const before = await requestCount()
    const again = await cli(["cancel", id!])
    expect(again.code).toBe(1)
    expect(again.stderr).toContain("409")
    expect(again.stderr).toContain("cancelled")
    expect((await requestCount()) - before).toBe(1)
  })

  it("submit --wait on a batch that expires saves what finished and exits 3", async () => {
    const expiring = await Emulator.start({
      apiKey,
      speed: 20,
      validationDelay: "1 second",
      completionWindow: "20 seconds"
    })
    try {
      const output = join(state.dir, "expired.jsonl")
      const run = await cli(
        ["submit", write("exp.jsonl", lines(300)), "--wait", "--output", output, "--interval", "100ms"],
        {},
        expiring
      )
      expect(run.code).toBe(3)
      expect(run.stderr).toContain("expired")
      const results = jsonLines(readFileSync(output, "utf8"))
      expect(results.length).toBe(300)
      const counts = results.reduce(
        (m, r) => m.set(r.outcome, (m.get(r.outcome) ?? 0) + 1),
        new Map<string, number>()
      )
      expect(counts.get("succeeded")).toBeGreaterThan(100)
      expect(counts.get("expired")).toBeGreaterThan(0)
    } finally {
      await expiring.close()
    }
  })

  it("watch exits 3 for a batch that fails validation, and submit --wait prints its errors with line numbers", async () => {
    // files upload does not check lines (the API does not either): the batch fails at validation
    const bad = write("fails.jsonl", `${lines(2)}${lines(1)}`)
    const batch = await submitted(bad)
    const watched = await cli(["watch", batch.id, "--interval", "50ms"])
    expect(watched.code).toBe(3)
    expect(watched.stdout).toMatch(/status\s+failed/)
    expect(watched.stdout).toContain("duplicate_custom_id (line 3)")
  })

  it("a results download cut midway exits 1 and leaves no output file behind", async () => {
    const batch = await submitted(write("cut.jsonl", lines(50)))
    await cli(["watch", batch.id, "--interval", "50ms"])
    const { Simulator } = await import("@batchkit/core/testing")
    await Effect.runPromise(state.server.simulator.inject("files.content", Simulator.truncatedBody, 1))
    const output = join(state.dir, "cut-results.jsonl")
    const run = await cli(["results", batch.id, "--output", output])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain("TransportError")
    expect(existsSync(output)).toBe(false)
    expect(readdirSync(state.dir).filter((f) => f.includes("cut-results"))).toEqual([])
    // the next try, with the fault spent, writes it whole
    expect((await cli(["results", batch.id, "--output", output])).code).toBe(0)
    expect(jsonLines(readFileSync(output, "utf8")).length).toBe(50)
  })

  it("API errors: one line on stderr with status, type and request id, exit 1; --json errors are JSON", async () => {
    const missing = await cli(["retrieve", "batch_nope"])
    expect(missing.code).toBe(1)
    expect(missing.stdout).toBe("")
    expect(missing.stderr.trim().split("\n")).toHaveLength(1)
    expect(missing.stderr).toMatch(/^error: 404 invalid_request_error: .*\[request id req_\w+\]$/m)
    const asJson = await cli(["retrieve", "batch_nope", "--json"])
    expect(JSON.parse(asJson.stderr)).toMatchObject({ status: 404, error: { type: "invalid_request_error" } })
    const wrong = await cli(["list"], { OPENAI_API_KEY: "sk-wrong-but-secret-123" })
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toContain("401")
    expect(wrong.stderr).not.toContain("sk-wrong-but-secret-123")
  })

  it("bad usage exits 2 before any request: limits, ids, durations, metadata, files, the missing key", async () => {
    const before = await requestCount()
    const cases: Array<Array<string>> = [
      ["list", "--limit", "0"],
      ["list", "--limit", "101"],
      ["retrieve", "batch/1"],
      ["cancel", "../x"],
      ["watch", "b1", "--interval", "soon"],
      ["create", "--input-file-id", "file-1", "--endpoint", "/v1/embeddings", "--metadata", "novalue"],
      [
        "create",
        "--input-file-id",
        "file-1",
        "--endpoint",
        "/v1/embeddings",
        ...Array.from({ length: 16 }, (_, i) => ["--metadata", `k${i}=v`]).flat()
      ],
      ["submit", join(state.dir, "no-such.jsonl")],
      ["results", "batch_1", "--output", join(state.dir, "no-state.dir", "x.jsonl")],
      ["files", "content", "file-1", "--output", state.dir],
      ["list", "--base-url", "not a url"]
    ]
    for (const args of cases) {
      const { code, stderr, stdout } = await cli(args)
      expect(code, args.join(" ")).toBe(2)
      expect(stderr, args.join(" ")).not.toBe("")
      expect(stdout, args.join(" ")).toBe("")
    }
    const sixteen = await cli(cases[6]!)
    expect(sixteen.stderr).toContain("15")
    const noKey = await cli(["list"], { OPENAI_API_KEY: "" })
    expect(noKey.code).toBe(2)
    expect(noKey.stderr).toContain("OPENAI_API_KEY")
    const noKeyJson = await cli(["list", "--json"], { OPENAI_API_KEY: "" })
    expect(JSON.parse(noKeyJson.stderr).error.message).toContain("OPENAI_API_KEY")
    expect(await requestCount()).toBe(before)
  })

  it("--version, --help and --completions answer at once, on stdout", async () => {
    const version = await cli(["--version"])
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
    const help = await cli(["--help"])
    for (const command of [
      "create",
      "retrieve",
      "list",
      "cancel",
      "watch",
      "submit",
      "results",
      "files",
      "emulator"
    ]) {
      expect(help.stdout).toContain(command)
    }
    const sub = await cli(["submit", "--help"])
    expect(sub.stdout).toContain("--dry-run")
    const completions = await cli(["--completions", "bash"])
    expect(completions.code).toBe(0)
    expect(completions.stdout).toContain("batchkit")
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
