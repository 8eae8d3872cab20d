/**
 * vitest's globalSetup: a PostgreSQL server of the tests' own for the package's test run,
 * Debian's, installed when missing, on a free loopback port, stopped at the end
 * (scripts/postgres.mjs). Tests take a database of their own with `database()` (./postgres.ts).
 */
import type { TestProject } from "vitest/node"
import { startPostgres } from "../../../../scripts/postgres.mjs"

declare module "vitest" {
  export interface ProvidedContext {
    postgres: { readonly url: string; readonly password: string; readonly dir: string; readonly port: number }
  }
}

export default async function setup(project: TestProject) {
  const pg = await startPostgres()
  project.provide("postgres", { url: pg.url, password: pg.password, dir: pg.dir, port: pg.port })
  return () => pg.stop()
}
