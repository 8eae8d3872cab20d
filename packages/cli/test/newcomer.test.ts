/**
 * What a new user hit, item by item (issue "What a new user hits today"), through the built CLI
 * against the emulator: each test failed before its fix.
 */
import { Emulator } from "@batchkit/node"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { apiKey, jsonLines, lines, setup, until } from "./support/cli.js"

const { state, requestCount, start, cli, write, submitted } = setup()

describe("batchkit, as a new user meets it", { timeout: 60_000 }, () => {
  it("an interrupted submit --wait exits 130 on SIGINT and 143 on SIGTERM, leaves no output, and says how to go on", async () => {
    for (const [signal, code] of [
      ["SIGINT", 130],
      ["SIGTERM", 143]
    ] as const) {
      const path = write(`sig-${signal}.jsonl`, lines(2000))
      const output = join(state.dir, `sig-${signal}-out.jsonl`)
      const run = start(["submit", path, "--wait", "--output", output, "--interval", "100ms"])
      await until(() => run.stderr().includes("in_progress"))
      run.child.kill(signal)
      const { code: exit, stderr } = await run.done
      expect(exit, signal).toBe(code)
      expect(existsSync(output)).toBe(false)
      const id = /created (batch_\w+)/.exec(stderr)?.[1]
      expect(stderr).toContain(`batch ${id} goes on`)
      expect(stderr).toContain(`batchkit watch ${id}`)
      expect(stderr).toContain(`batchkit results ${id} --input ${path} --output ${output}`)
    }
    const watching = start(["watch", (await submitted(write("sig-w.jsonl", lines(2000)))).id])
    await until(() => watching.stderr().includes("in_progress"))
    watching.child.kill("SIGINT")
    expect((await watching.done).code).toBe(130)
  })

  it("the dry run refuses what submit would, before any upload: endpoints, metadata, encoding, BOM, blank lines", async () => {
    const before = await requestCount()
    const azure = write("azure.jsonl", lines(2, "/chat/completions"))
    const bom = write("bom.jsonl", `\uFEFF${lines(2)}`)
    const blank = write("blank.jsonl", `${lines(1)}\n${lines(2).replace("req-0", "req-9")}`)
    const latin1 = join(state.dir, "latin1.jsonl")
    writeFileSync(
      latin1,
      Buffer.concat([
        Buffer.from(lines(1)),
        Buffer.from('{"custom_id":"c'),
        Buffer.from([0xff]),
        Buffer.from('"}\n')
      ])
    )
    const cases: Array<[Array<string>, string]> = [
      [
        [azure],
        `${azure}:1: url /chat/completions is not a batch endpoint of openai (did you mean /v1/chat/completions?)`
      ],
      [[write("foo.jsonl", lines(2, "/v1/foo/bar"))], "/v1/foo/bar is not a batch endpoint of openai"],
      [[bom, "--endpoint", "/v1/chat/completions"], `${bom}:1: the file starts with a UTF-8 byte order mark`],
      [[blank], `${blank}:2: blank line`],
      [[latin1], `${latin1}:2: not valid UTF-8`],
      [
        [
          write("meta.jsonl", lines(1)),
          ...Array.from({ length: 16 }, (_, i) => ["--metadata", `k${i}=v`]).flat()
        ],
        "at most 15 pairs"
      ],
      [[write("exp.jsonl", lines(1)), "--output-expires-after", "10m"], "--output-expires-after: '10m'"]
    ]
    for (const [args, message] of cases) {
      for (const dry of [true, false]) {
        const run = await cli(["submit", ...args, ...(dry ? ["--dry-run"] : [])])
        expect(run.code, `${args.join(" ")} ${dry}`).toBe(2)
        expect(run.stderr, `${args.join(" ")} ${dry}`).toContain(message)
      }
    }
    // CRLF line ends are fine for both
    const crlf = write("crlf.jsonl", lines(3).replaceAll("\n", "\r\n"))
    expect((await cli(["submit", crlf, "--dry-run"])).code).toBe(0)
    expect(await requestCount()).toBe(before)
  })

  it("a submit whose create fails after the upload deletes the upload, or says why it kept it", async () => {
    const { Simulator } = await import("@batchkit/core/testing")
    const files = async () =>
      (await Effect.runPromise(state.server.simulator.files)).map((f) => f.id as string)
    const before = await files()
    await Effect.runPromise(
      state.server.simulator.inject("batches.create", Simulator.rateLimited({ quota: true }), 1)
    )
    const refused = await cli(["submit", write("quota.jsonl", lines(2))])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain("insufficient_quota")
    const uploaded = /uploaded \S+ as (file-\w+)/.exec(refused.stderr)?.[1]
    expect(refused.stderr).toContain(`deleted the uploaded file ${uploaded}`)
    expect(await files()).toEqual(before)
    // a 500 may come after the server acted: the file stays, and stderr says which and why
    await Effect.runPromise(state.server.simulator.inject("batches.create", Simulator.serverError(500), 3))
    const lost = await cli(["submit", write("lost.jsonl", lines(2)), "--max-retries", "2"])
    expect(lost.code).toBe(1)
    const kept = /uploaded \S+ as (file-\w+)/.exec(lost.stderr)?.[1]
    expect(lost.stderr).toContain(`kept the uploaded file ${kept}: the batch may have been created`)
    expect(await files()).toContain(kept)
  })

  it("a watch whose server stops answering says so on stderr as it retries", async () => {
    const dying = await Emulator.start({ apiKey, speed: 1 })
    const file = JSON.parse(
      (await cli(["files", "upload", write("dying.jsonl", lines(3)), "--json"], {}, dying)).stdout
    )
    const batch = JSON.parse(
      (
        await cli(
          ["create", "--input-file-id", file.id, "--endpoint", "/v1/chat/completions", "--json"],
          {},
          dying
        )
      ).stdout
    )
    const run = start(["watch", batch.id, "--max-retries", "0"], {}, dying)
    await until(() => run.stderr().includes("validating"))
    await dying.close()
    await until(() => run.stderr().includes("retry 2 of 8"))
    run.child.kill("SIGINT")
    const { stderr, code } = await run.done
    expect(code).toBe(130)
    expect(stderr).toMatch(
      new RegExp(`polling ${batch.id} failed \\(TransportError.*\\); retry 1 of 8 in 1s`)
    )
  })

  it("a base URL without /v1 gets a 404 with the likely fix", async () => {
    const run = await cli(["list"], { OPENAI_BASE_URL: state.server.url.replace(/\/v1$/, "") })
    expect(run.code).toBe(1)
    expect(run.stderr).toContain(`may be missing /v1: try --base-url ${state.server.url}`)
  })

  it("expiry flags reach the API: --output-expires-after and files upload --expires-after", async () => {
    const up = JSON.parse(
      (await cli(["files", "upload", write("expiring.jsonl", lines(2)), "--expires-after", "2h", "--json"]))
        .stdout
    )
    // 2 hours of the emulator's clock, which runs 20× the wall clock
    expect(up.expires_at - up.created_at).toBeCloseTo(7200 / 20, -1)
    const created = await cli([
      "create",
      "--input-file-id",
      up.id,
      "--endpoint",
      "/v1/chat/completions",
      "--output-expires-after",
      "7d",
      "--json"
    ])
    expect(created.code).toBe(0)
    const batch = JSON.parse(created.stdout)
    await cli(["watch", batch.id, "--interval", "50ms"])
    const done = JSON.parse((await cli(["retrieve", batch.id, "--json"])).stdout)
    const output = JSON.parse((await cli(["files", "retrieve", done.output_file_id, "--json"])).stdout)
    // 7 days of the emulator's clock, which runs 20× the wall clock
    expect(output.expires_at - output.created_at).toBeCloseTo((7 * 86400) / 20, -1)
    for (const bad of [
      ["--expires-after", "30m"],
      ["--expires-after", "31d"],
      ["--expires-after", "soon"]
    ]) {
      const run = await cli(["files", "upload", join(state.dir, "expiring.jsonl"), ...bad])
      expect(run.code, bad.join(" ")).toBe(2)
    }
  })

  it("rough edges: --purpose is checked, a folder is named as one, a page says more follow, common options go anywhere", async () => {
    const before = await requestCount()
    const purpose = await cli(["files", "list", "--purpose", "nonsense"])
    expect(purpose.code).toBe(2)
    expect(purpose.stderr).toContain("batch_output")
    const folder = await cli(["submit", state.dir, "--dry-run"])
    expect(folder.code).toBe(2)
    expect(folder.stderr).toContain(`${state.dir} is a directory`)
    expect(await requestCount()).toBe(before)
    for (let i = 0; i < 3; i++) await submitted(write("page.jsonl", lines(1)))
    const page = await cli(["list", "--limit", "2"])
    const last = (await Effect.runPromise(state.server.simulator.batches))[1]!.id
    expect(page.stderr).toContain(`more on the next page: batchkit list --limit 2 --after ${last}`)
    const leading = await cli(["--json", "--max-retries", "1", "list", "--limit", "1"])
    expect(leading.code).toBe(0)
    expect(jsonLines(leading.stdout)).toHaveLength(1)
    const nested = await cli(["--json", "files", "list", "--limit", "1"])
    expect(nested.code).toBe(0)
    expect(jsonLines(nested.stdout)).toHaveLength(1)
  })

  it("help is plain text for every command: no escapes, real usage lines, no boilerplate", async () => {
    const pages = [[], ["submit"], ["files"], ["files", "upload"], ["create"], ["watch"], ["emulator"]]
    for (const path of pages) {
      for (const env of [{}, { NO_COLOR: "1" }]) {
        const { stdout, code } = await cli([...path, "--help"], env)
        expect(code).toBe(0)
        expect(stdout).not.toContain("\x1b[")
        expect(stdout).toContain(`Usage: batchkit ${path.join(" ")}`.trim())
        expect(stdout).not.toContain("A user-defined piece of text")
        expect(stdout).not.toContain("--wizard")
      }
    }
    const submitHelp = (await cli(["submit", "--help"])).stdout
    expect(submitHelp).toContain("Usage: batchkit submit FILE.jsonl [options]")
    expect(submitHelp).toMatch(/--metadata KEY=VALUE\s+a metadata pair on the batch \(repeatable\)/)
    expect((await cli(["create", "--help"])).stdout).toContain(
      "Usage: batchkit create --input-file-id FILE_ID --endpoint PATH [options]"
    )
    expect((await cli(["--version"])).stdout).toMatch(/^\d+\.\d+\.\d+\n$/)
  })
})
