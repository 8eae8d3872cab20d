/** Types of scripts/postgres.mjs, for the tests that import it. */
export interface TestPostgres {
  /** `postgres://batchkit@127.0.0.1:PORT/batchkit`: no password. */
  readonly url: string
  readonly password: string
  readonly port: number
  readonly dir: string
  readonly stop: () => void
  /** A new, empty database on the same server: its URL (no password). */
  readonly createDatabase: (name: string) => string
  /** Everything a database holds (default the first one), as pg_dump's text; bytea as hex. */
  readonly dump: (database?: string) => string
}
export declare const ensurePostgres: () => string
export declare const startPostgres: (options?: {
  readonly port?: number
  readonly user?: string
  readonly database?: string
  readonly durable?: boolean
}) => Promise<TestPostgres>
