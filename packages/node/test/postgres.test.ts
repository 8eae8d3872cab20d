/** Jobs on a Postgres store: the state's URL and password, the store's tables, a runner in-process. */
import { Jobs } from "@batchkit/jobs"
import { describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Cause, Chunk, Effect, Either, Exit, Layer, Option, Redacted, Stream } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Emulator, NodeFileSource } from "../src/index.js"
import * as NodeJobs from "../src/NodeJobs.js"
import { database, withPassword } from "./support/postgres.js"

const apiKey = "sk-pg-SECRET-1234567890"
const line = (i: number) =>
  JSON.stringify({
    custom_id: `r${i}`,
    method: "POST",
    url: "/v1/embeddings",
    body: { model: "text-embedding-3-small", input: `text ${i}` }
  })

const postgres = (url: string, password: string) => {
  const state = Either.getOrThrow(NodeJobs.parseState(url, { password: Redacted.make(password) }))
  if (state._tag !== "Postgres") throw new Error("not Postgres")
  return state
}

describe("NodeJobs.parseState", () => {
  it("reads a Postgres URL: the password Redacted, never in what is shown", () => {
    const state = Either.getOrThrow(
      NodeJobs.parseState("postgres://ann:s3cr%40t@db.example:6543/jobs?sslmode=require")
    )
    expect(state._tag).toBe("Postgres")
    if (state._tag !== "Postgres") return
    expect(state).toMatchObject({ host: "db.example", port: 6543, database: "jobs", user: "ann" })
    expect(Option.map(state.password, Redacted.value)).toEqual(Option.some("s3cr@t"))
    expect(state.display).toBe("postgres://ann@db.example:6543/jobs?sslmode=require")
    expect(JSON.stringify(state)).not.toContain("s3cr")
    expect(String(state.password)).not.toContain("s3cr")
  })

  it("takes the password given (a file's, PGPASSWORD's) when the URL has none; the URL's wins", () => {
    const given = Redacted.make("from-file")
    const a = Either.getOrThrow(NodeJobs.parseState("postgresql://ann@h/db", { password: given }))
    const b = Either.getOrThrow(NodeJobs.parseState("postgres://ann:inurl@h/db", { password: given }))
    expect(a._tag === "Postgres" && Option.map(a.password, Redacted.value)).toEqual(Option.some("from-file"))
    expect(b._tag === "Postgres" && Option.map(b.password, Redacted.value)).toEqual(Option.some("inurl"))
    expect(a._tag === "Postgres" && a.port).toBe(5432)
  })

  it("says what is wrong with a URL, without repeating a password", () => {
    const bad = [
      ["postgres://ann:hunter2@/db", "postgres://USER@HOST:PORT/DB"],
      ["postgres://ann:hunter2@h:5432/", "names no database"],
      ["postgres://ann:hunter2@h/db?sslmode=maybe", "sslmode=maybe"],
      ["postgres://ann:hunter2@h/db?application_name=x", "'application_name' is not supported"]
    ] as const
    for (const [text, reason] of bad) {
      const e = NodeJobs.parseState(text)
      expect(Either.isLeft(e) && e.left.message).toContain(reason)
      expect(Either.isLeft(e) && e.left.message).not.toContain("hunter2")
    }
    const sqlite = Either.getOrThrow(NodeJobs.parseState("jobs/state.db"))
    expect(sqlite).toMatchObject({ _tag: "Sqlite", path: "jobs/state.db" })
  })
})

describe("NodeJobs on Postgres", () => {
  it.live("a wrong password fails with the store and the server's reason, never the password", () =>
    Effect.gen(function* () {
      const { url } = yield* database("wrongpw")
      const state = postgres(url, "not-the-password-XYZ")
      const exit = yield* Effect.exit(
        Effect.scoped(
          Effect.flatMap(Jobs.Jobs, (j) => j.list).pipe(Effect.provide(NodeJobs.layerStore(state)))
        )
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const text = String(Exit.isFailure(exit) ? exit.cause : "")
      expect(text).toContain("StateError")
      expect(text).toContain(state.display)
      expect(text).toContain("password authentication failed")
      expect(text).not.toContain("not-the-password-XYZ")
    })
  )

  it.live(
    "runs a job of three shards with this process as a runner; results in input order; the store holds no key and no password",
    () =>
      Effect.gen(function* () {
        const { password, url } = yield* database("onerunner")
        const state = postgres(url, password)
        const dir = mkdtempSync(join(tmpdir(), "batchkit-pg-"))
        const input = join(dir, "in.jsonl")
        writeFileSync(input, `${Array.from({ length: 250 }, (_, i) => line(i)).join("\n")}\n`)
        const emulator = yield* Emulator.Emulator
        const { done, lines } = yield* Effect.gen(function* () {
          const jobs = yield* Jobs.Jobs
          const { id, plan } = yield* jobs.submit([{ name: input, bytes: NodeFileSource.stream(input) }], {
            maxRequests: 100
          })
          expect(plan.shards.length).toBe(3)
          yield* jobs.start(id)
          const done = yield* jobs.await(id, { interval: "100 millis" })
          const lines = Chunk.toArray(yield* Stream.runCollect(jobs.results(id)))
          return { done, lines }
        }).pipe(
          Effect.provide(
            NodeJobs.layer({ apiKey, baseUrl: emulator.url, state, runner: { takeover: "6 seconds" } })
          )
        )
        expect(done.status).toBe("finished")
        expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: 250 }, (_, i) => `r${i}`))
        expect(lines.every((l) => l.outcome === "succeeded" && l.attempts === 1)).toBe(true)
        expect((yield* emulator.simulator.batches).length).toBe(3)
        // every table of the store, every row, as text: neither the API key nor the password
        const dump = yield* Effect.gen(function* () {
          const sql = yield* PgClient.PgClient
          const tables = yield* sql<{
            readonly name: string
          }>`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'`
          const parts: Array<string> = []
          for (const t of tables) {
            const rows = yield* sql.unsafe(`SELECT * FROM ${t.name}`)
            parts.push(
              JSON.stringify(rows, (_, v) =>
                v instanceof Uint8Array
                  ? Buffer.from(v).toString("utf8")
                  : typeof v === "bigint"
                    ? String(v)
                    : v
              )
            )
          }
          return { tables: tables.map((t) => t.name), text: parts.join("\n") }
        }).pipe(Effect.provide(PgClient.layer({ url: withPassword(url, password) })))
        expect(dump.tables).toEqual(
          expect.arrayContaining(["batchkit_jobs", "batchkit_results", "cluster_messages"])
        )
        expect(dump.text).toContain("r249")
        expect(dump.text).not.toContain(apiKey)
        expect(dump.text).not.toContain(password)
      }).pipe(Effect.provide(Emulator.layer({ apiKey, speed: 200 }))),
    { timeout: 90_000 }
  )
})

describe("runners starting together", () => {
  it.live(
    "on a new database, six engines start at once: each migrates the cluster's tables in turn, none dies",
    () =>
      Effect.gen(function* () {
        // five new databases, six engines each, every engine with a pool of its own (as a process)
        for (let round = 0; round < 5; round++) {
          const { password, url } = yield* database("together")
          const client = PgClient.layer({ url: withPassword(url, password) })
          const exits = yield* Effect.forEach(
            Array.from({ length: 6 }),
            () => Effect.exit(Effect.scoped(Layer.build(Layer.provide(NodeJobs.layerClientEngine, client)))),
            { concurrency: "unbounded" }
          )
          for (const exit of exits)
            expect(
              Exit.isSuccess(exit),
              Exit.isFailure(exit) ? Cause.pretty(exit.cause, { renderErrorCause: true }) : ""
            ).toBe(true)
        }
      }),
    { timeout: 90_000 }
  )
})
