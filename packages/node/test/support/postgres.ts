/** A database of a test's own on the tests' PostgreSQL server (./postgres-setup.ts starts it). */
import * as PgClient from "@effect/sql-pg/PgClient"
import { Effect, Redacted } from "effect"
import { inject } from "vitest"
import type {} from "./postgres-setup.js"

let made = 0

/** A new, empty database on the tests' server: its URL (no password) and the password. */
export const database = (prefix: string) =>
  Effect.gen(function* () {
    const { password, url } = inject("postgres")
    const name = `${prefix}_${process.pid}_${++made}`.toLowerCase().replace(/[^a-z0-9_]/g, "_")
    const sql = yield* PgClient.PgClient
    yield* sql.unsafe(`CREATE DATABASE ${name}`)
    return { url: url.replace(/\/[^/]*$/, `/${name}`), password }
  }).pipe(
    Effect.provide(
      PgClient.layer({ url: withPassword(inject("postgres").url, inject("postgres").password) })
    ),
    Effect.orDie
  )

/**
 * The URL with the password in it, Redacted: what a test's own client connects with (the `pg`
 * driver takes a URL's fields over the ones given beside it).
 */
export const withPassword = (url: string, password: string) =>
  Redacted.make(url.replace("postgres://batchkit@", `postgres://batchkit:${encodeURIComponent(password)}@`))
