#!/usr/bin/env node
// PostgreSQL for the tests and benchmarks of runners: Debian's server, installed when missing,
// started as a server of our own (a temporary data folder, a free loopback port, a password of
// its own) and stopped at the end. Nothing here touches a system cluster.
//
//   node scripts/postgres.mjs ensure            install it from Debian's packages when missing
//   node scripts/postgres.mjs run -- CMD ARGS   start one, run CMD with BATCHKIT_TEST_PG set, stop it
//
// From code: `import { ensurePostgres, startPostgres } from "./postgres.mjs"`.
import { execFileSync, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const say = (line) => process.stderr.write(`postgres: ${line}\n`)

/** The folder of the newest installed server's programs, if any. */
const binDir = () => {
  const root = "/usr/lib/postgresql"
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin", "initdb")) && existsSync(join(root, v, "bin", "pg_ctl")))
    .sort((a, b) => Number(b) - Number(a))
  return versions.length > 0 ? join(root, versions[0], "bin") : undefined
}

const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0

/** Installs Debian's `postgresql` when no server is installed; returns the programs' folder. */
export const ensurePostgres = () => {
  const found = binDir()
  if (found !== undefined) return found
  say("not installed: installing Debian's postgresql package")
  const apt = (args) => {
    const [cmd, argv] = isRoot() ? ["apt-get", args] : ["sudo", ["-n", "apt-get", ...args]]
    const r = spawnSync(cmd, argv, {
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
    })
    return r.status === 0
  }
  if (!apt(["install", "-y", "--no-install-recommends", "postgresql"])) {
    apt(["update"])
    if (!apt(["install", "-y", "--no-install-recommends", "postgresql"]))
      throw new Error(
        "could not install PostgreSQL (apt-get install postgresql failed; root or sudo is needed)"
      )
  }
  const installed = binDir()
  if (installed === undefined)
    throw new Error("PostgreSQL was installed but no initdb was found under /usr/lib/postgresql")
  return installed
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })

/**
 * Starts a server of its own: a temporary data folder, a free port on 127.0.0.1, password
 * authentication on TCP. Gives its URL (without the password), the password, and `stop`.
 */
export const startPostgres = async (options = {}) => {
  const bin = ensurePostgres()
  const dir = mkdtempSync(join(tmpdir(), "batchkit-pg-"))
  const data = join(dir, "data")
  const password = randomBytes(18).toString("base64url")
  const user = options.user ?? "batchkit"
  const database = options.database ?? "batchkit"
  // the server refuses to run as root: as root, it runs as the package's own `postgres` user
  const asServer = isRoot() ? ["runuser", "-u", "postgres", "--"] : []
  const run = (program, args) => {
    const argv = [...asServer, join(bin, program), ...args]
    execFileSync(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], cwd: dir })
  }
  writeFileSync(join(dir, "pwfile"), `${password}\n`)
  chmodSync(dir, 0o755)
  if (isRoot()) execFileSync("chown", ["-R", "postgres:postgres", dir])
  run("initdb", [
    "-D",
    data,
    "-U",
    user,
    "--pwfile",
    join(dir, "pwfile"),
    "--auth-host=scram-sha-256",
    "--auth-local=trust",
    "-E",
    "UTF8",
    "--locale=C"
  ])
  rmSync(join(dir, "pwfile"))
  const port = options.port ?? (await freePort())
  const settings = [
    "listen_addresses=127.0.0.1",
    `port=${port}`,
    `unix_socket_directories=${dir}`,
    "max_connections=300",
    // a test server: the data folder is thrown away, a crash of the machine needs no care
    ...(options.durable ? [] : ["fsync=off", "synchronous_commit=off", "full_page_writes=off"])
  ]
  run("pg_ctl", [
    "-D",
    data,
    "-l",
    join(dir, "server.log"),
    "-w",
    "-t",
    "60",
    "-o",
    settings.map((s) => `-c ${s}`).join(" "),
    "start"
  ])
  run("createdb", ["-h", dir, "-p", String(port), "-U", user, database])
  const url = `postgres://${user}@127.0.0.1:${port}/${database}`
  let stopped = false
  const stop = () => {
    if (stopped) return
    stopped = true
    try {
      run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"])
    } catch {
      // already gone
    }
    rmSync(dir, { recursive: true, force: true })
  }
  /** A new, empty database on the same server. */
  const createDatabase = (name) => {
    run("createdb", ["-h", dir, "-p", String(port), "-U", user, name])
    return `postgres://${user}@127.0.0.1:${port}/${name}`
  }
  /** Everything a database holds, as pg_dump's text (bytea as hex): for tests that look for secrets. */
  const dump = (name = database) =>
    execFileSync(
      asServer.length > 0 ? asServer[0] : join(bin, "pg_dump"),
      [
        ...asServer.slice(1),
        ...(asServer.length > 0 ? [join(bin, "pg_dump")] : []),
        "-h",
        dir,
        "-p",
        String(port),
        "-U",
        user,
        name
      ],
      { maxBuffer: 1 << 30 }
    ).toString("utf8")
  return { url, password, port, dir, stop, createDatabase, dump }
}

const main = async () => {
  const [command, ...rest] = process.argv.slice(2)
  if (command === "ensure") {
    const bin = ensurePostgres()
    say(`server programs in ${bin}`)
    return 0
  }
  if (command === "run") {
    const argv = rest[0] === "--" ? rest.slice(1) : rest
    if (argv.length === 0) throw new Error("usage: postgres.mjs run -- COMMAND [ARGS...]")
    const pg = await startPostgres()
    say(`started on ${pg.url}`)
    const onSignal = () => pg.stop()
    process.on("SIGINT", onSignal)
    process.on("SIGTERM", onSignal)
    try {
      const r = spawnSync(argv[0], argv.slice(1), {
        stdio: "inherit",
        env: { ...process.env, BATCHKIT_TEST_PG: pg.url, PGPASSWORD: pg.password }
      })
      return r.status ?? 1
    } finally {
      pg.stop()
      say("stopped")
    }
  }
  throw new Error("usage: postgres.mjs ensure | run -- COMMAND [ARGS...]")
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      say(e.message)
      process.exit(1)
    }
  )
}
