/**
 * Runners on one Postgres store (issue 10's "done means"): four `batchkit runner` processes share
 * a real PostgreSQL server (Debian's, started here on a free loopback port); two jobs of 30+
 * shards are submitted with `run --detach` from other processes while runners are killed
 * (SIGKILL, twice) and one is stopped (SIGTERM). Every job ends with one batch per shard attempt,
 * every request sent once, one results line per request, in input order; no output, log, result
 * or table holds the API key or the database password.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type TestPostgres, startPostgres } from "../../../scripts/postgres.mjs"
import { apiKey, bin } from "./support/cli.js"
import { batchesOf, cli, embeddings, hooked, jobIdOf, scratch, start } from "./support/jobs.js"

let pg: TestPostgres
let emulator: Awaited<ReturnType<typeof hooked>>
beforeAll(async () => {
  pg = await startPostgres()
  // 25× the wall clock: a batch of 20 lines takes about a second once its turn comes
  emulator = await hooked({ speed: 25 })
}, 180_000)
afterAll(() => {
  emulator?.server.close()
  pg?.stop()
})

type Started = ReturnType<typeof start>

/** Resolves when `f` holds, checking every 20 ms; fails after `ms`. */
const until = (what: string, f: () => boolean, ms = 60_000) =>
  new Promise<void>((resolve, reject) => {
    const t0 = Date.now()
    const poll = setInterval(() => {
      let held: boolean
      try {
        held = f()
      } catch (e) {
        clearInterval(poll)
        return reject(e)
      }
      if (held) {
        clearInterval(poll)
        resolve()
      } else if (Date.now() - t0 > ms) {
        clearInterval(poll)
        reject(new Error(`timed out waiting for ${what}`))
      }
    }, 20)
  })

const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => `r${from + i}`)

describe("batchkit runner on Postgres", { timeout: 240_000 }, () => {
  it("four runners share two jobs of 30+ shards; two are killed, one stopped; every request once, every result once", async () => {
    const dir = scratch()
    const state = pg.url
    // the password reaches every process through PGPASSWORD, never on a command line
    const env = { PGPASSWORD: pg.password }

    // what each runner sends: every runner has a project id of its own, sent as OpenAI-Project
    const creates: Array<{ runner: string; job: string }> = []
    let downloads = 0
    emulator.box.hook = (r, when) => {
      if (when !== "after") return
      if (r.method === "POST" && r.path === "/v1/batches") {
        const body = JSON.parse(new TextDecoder().decode(r.body)) as { metadata?: Record<string, string> }
        creates.push({ runner: r.headers["openai-project"] ?? "?", job: body.metadata?.batchkit_job ?? "?" })
      }
      if (r.method === "GET" && /^\/v1\/files\/[\w-]+\/content$/.test(r.path)) downloads++
    }

    const runners: Record<string, Started> = {}
    for (const name of ["a", "b", "c", "d"])
      runners[name] = start(
        emulator.server,
        ["runner", "--state", state, "--takeover", "6s", "--concurrency", "3"],
        dir,
        { ...env, OPENAI_PROJECT_ID: `proj_${name}` }
      )
    // a runner that could not start says why (and fails the test at once)
    const startFailures: Array<string> = []
    for (const [name, r] of Object.entries(runners))
      void r.done.then((end) => {
        if (!/^runner 127\.0\.0\.1:\d+ on postgres:\/\//m.test(end.stderr))
          startFailures.push(`runner ${name} exited ${end.code}: ${end.stderr}`)
      })
    await until(
      "four runners up",
      () => {
        if (startFailures.length > 0) throw new Error(startFailures.join("\n"))
        return Object.values(runners).every((r) =>
          /^runner 127\.0\.0\.1:\d+ on postgres:\/\//m.test(r.stderr())
        )
      },
      120_000
    )
    for (const r of Object.values(runners)) expect(r.stderr()).not.toContain(pg.password)

    // job 1: 700 requests in 35 shards, submitted and left to the runners
    embeddings(dir, 700, "one.jsonl")
    const one = await cli(
      emulator.server,
      ["run", "one.jsonl", "--max-requests", "20", "--detach", "--state", state],
      dir,
      env
    )
    expect(one.code, one.stderr).toBe(0)
    expect(one.stderr).toMatch(/700 requests in 35 shards/)
    const job1 = jobIdOf(one.stderr)!

    // job 2, from another process while job 1 runs: 620 requests in 31 shards
    await until("job 1 under way", () => creates.length >= 3)
    embeddings(dir, 620, "two.jsonl", 700)
    const two = await cli(
      emulator.server,
      ["run", "two.jsonl", "--max-requests", "20", "--detach", "--state", state],
      dir,
      env
    )
    expect(two.code, two.stderr).toBe(0)
    const job2 = jobIdOf(two.stderr)!

    // SIGKILL one runner mid-job
    await until("ten batches made", () => creates.length >= 10)
    runners.a!.child.kill("SIGKILL")
    const killedA = await runners.a!.done
    expect(killedA.signal).toBe("SIGKILL")
    const atKill = creates.length

    // SIGTERM another once the work has gone on: it hands its work over and exits 0
    await until("more batches after the kill", () => creates.length >= atKill + 5)
    runners.d!.child.kill("SIGTERM")
    const stopped = await runners.d!.done
    expect(stopped.code, stopped.stderr).toBe(0)
    expect(stopped.stderr).toMatch(/handing its work over to the other runners and stopping/)

    // and SIGKILL a second one while results are being collected
    await until("results being collected", () => downloads >= 10)
    runners.b!.child.kill("SIGKILL")
    expect(downloads).toBeLessThan(35 + 31)
    expect((await runners.b!.done).signal).toBe("SIGKILL")

    // the one left finishes both jobs; `jobs watch` follows each from yet another process
    for (const job of [job1, job2]) {
      const watched = await cli(emulator.server, ["jobs", "watch", job, "--state", state], dir, env)
      expect(watched.code, watched.stderr).toBe(0)
    }

    const check = async (job: string, file: string, expected: ReadonlyArray<string>) => {
      const got = await cli(
        emulator.server,
        ["jobs", "results", job, "--state", state, "--output", file],
        dir,
        env
      )
      expect(got.code, got.stderr).toBe(0)
      const lines = readFileSync(join(dir, file), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { custom_id: string; outcome: string; attempts: number })
      // exactly one line per request, in input order, each done on its first attempt
      expect(lines.map((l) => l.custom_id)).toEqual(expected)
      expect(lines.filter((l) => l.outcome !== "succeeded" || l.attempts !== 1)).toEqual([])
      const batches = await batchesOf(emulator.server, job)
      // one batch per shard attempt
      const shards = batches.map((b) => b.shard)
      expect(new Set(shards).size).toBe(shards.length)
      expect(shards.length).toBe(expected.length / 20)
      // every request sent exactly once
      expect(batches.flatMap((b) => b.ids).sort()).toEqual([...expected].sort())
      return got
    }
    const results1 = await check(job1, "one.out.jsonl", ids(0, 700))
    const results2 = await check(job2, "two.out.jsonl", ids(700, 620))
    expect(creates.length).toBe(35 + 31)
    // the runners shared the work: the batches came from more than one of them (per job it depends
    // on timing: job 2 may start only once the others are gone, and then one runner makes all of it)
    expect(new Set(creates.map((c) => c.runner)).size).toBeGreaterThan(1)

    // the last runner stops on SIGTERM with 0
    runners.c!.child.kill("SIGTERM")
    const last = await runners.c!.done
    expect(last.code, last.stderr).toBe(0)

    // neither secret anywhere: outputs, results files, every table of the store
    const hex = (s: string) => Buffer.from(s).toString("hex")
    const seen = [
      ...[killedA, stopped, last, one, two, results1, results2].flatMap((r) => [r.stdout, r.stderr]),
      readFileSync(join(dir, "one.out.jsonl"), "utf8"),
      readFileSync(join(dir, "two.out.jsonl"), "utf8"),
      pg.dump()
    ].join("\n")
    for (const secret of [pg.password, apiKey]) {
      expect(seen).not.toContain(secret)
      expect(seen).not.toContain(hex(secret))
    }
  })

  it("the README's three runners on one machine run a job to its results (examples/readme/runners.sh)", async () => {
    const dir = scratch()
    const state = pg.createDatabase("readme")
    const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))
    copyFileSync(here("../../../examples/requests.jsonl"), join(dir, "requests.jsonl"))
    // `batchkit` on the PATH, as an installed CLI would be
    mkdirSync(join(dir, "bin"))
    writeFileSync(join(dir, "bin", "batchkit"), `#!/bin/sh\nexec "${process.execPath}" "${bin}" "$@"\n`)
    chmodSync(join(dir, "bin", "batchkit"), 0o755)
    const script = spawn("bash", [here("../../../examples/readme/runners.sh")], {
      cwd: dir,
      env: {
        PATH: `${join(dir, "bin")}:${process.env.PATH ?? ""}`,
        STATE: state,
        PGPASSWORD: pg.password,
        OPENAI_API_KEY: apiKey,
        OPENAI_BASE_URL: emulator.server.url
      }
    })
    let said = ""
    script.stdout.on("data", (d: Buffer) => (said += d))
    script.stderr.on("data", (d: Buffer) => (said += d))
    const code = await new Promise((resolve) => script.on("close", resolve))
    expect(code, said).toBe(0)
    // every runner started, then handed over and stopped on SIGTERM
    expect(said.match(/^runner 127\.0\.0\.1:2443[123] on postgres:/gm)?.length, said).toBe(3)
    expect(said.match(/handing its work over to the other runners and stopping/g)?.length).toBe(3)
    const lines = readFileSync(join(dir, "results.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { custom_id: string; outcome: string })
    expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: 300 }, (_, i) => `request-${i + 1}`))
    expect(lines.every((l) => l.outcome === "succeeded")).toBe(true)
    expect(said).not.toContain(pg.password)
  })

  it("a runner needs a Postgres store, and says so before anything starts", async () => {
    const dir = scratch()
    const r = await cli(emulator.server, ["runner", "--state", "state.db"], dir)
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--state: a runner shares a Postgres store/)
  })

  it("a wrong password is told without the password", async () => {
    const dir = scratch()
    const wrong = "not-the-password-0000"
    const r = await cli(emulator.server, ["jobs", "list", "--state", pg.url], dir, { PGPASSWORD: wrong })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/cannot use the Postgres store postgres:\/\/batchkit@127\.0\.0\.1:\d+\/batchkit/)
    expect(r.stderr).toMatch(/password authentication failed/)
    expect(r.stderr + r.stdout).not.toContain(wrong)
  })
})
