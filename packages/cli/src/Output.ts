/** What the CLI prints: tables for people, the API's JSON for scripts, files written whole or not at all. */
import type { Batch, BatchFile } from "@batchkit/core"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import { existsSync, readdirSync, rmSync, statSync } from "node:fs"
import { open, rename, unlink } from "node:fs/promises"
import { basename, dirname, join, resolve } from "node:path"
import { UsageError } from "./Exit.js"

/** A local file could not be read or written: exit 1, like any failure that is not bad usage. */
export class LocalError extends Data.TaggedError("LocalError")<{ readonly message: string }> {}

/** Writes to stdout, waiting for it to drain (a pipe to `head` must not buffer the whole stream). */
export const writeStdout = (chunk: Uint8Array | string): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (process.stdout.write(chunk)) resume(Effect.void)
    else process.stdout.once("drain", () => resume(Effect.void))
  })

export const printLine = (line: string) => writeStdout(`${line}\n`)

/** Aligned columns; the last column is not padded. */
export const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? []
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  "))
    .join("\n")
}

/** `500ms`, `2s`, `1m30s`. */
export const formatDuration = (d: Duration.Duration) => {
  const ms = Math.round(Duration.toMillis(d))
  if (ms < 1000) return `${ms}ms`
  const s = Math.round(ms / 1000)
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60 > 0 ? `${s % 60}s` : ""}`
}

export const when = (seconds: number | null | undefined) =>
  seconds == null ? "-" : new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19)

export const counts = (b: Batch.Batch) =>
  b.request_counts == null
    ? "-"
    : `${b.request_counts.completed}/${b.request_counts.failed}/${b.request_counts.total}`

export const batchHeader = ["ID", "STATUS", "ENDPOINT", "DONE/FAILED/TOTAL", "CREATED"]
export const batchRow = (b: Batch.Batch) => [b.id, b.status, b.endpoint, counts(b), when(b.created_at)]

export const describeBatch = (b: Batch.Batch) =>
  table([
    ["id", b.id],
    ["status", b.status],
    ["endpoint", b.endpoint],
    ["model", b.model ?? "-"],
    ["input file", b.input_file_id],
    ["output file", b.output_file_id || "-"],
    ["error file", b.error_file_id || "-"],
    ["requests", `${counts(b)} (completed/failed/total)`],
    ["created", when(b.created_at)],
    ["expires", when(b.expires_at)],
    ...(b.completed_at != null ? [["completed", when(b.completed_at)]] : []),
    ...(b.usage != null ? [["tokens", `${b.usage.input_tokens} in, ${b.usage.output_tokens} out`]] : []),
    ...(b.errors?.data ?? []).map((e) => [
      "error",
      `${e.code ?? ""}${e.line != null ? ` (line ${e.line})` : ""}: ${e.message ?? ""}`
    ]),
    ...Object.entries(b.metadata ?? {}).map(([k, v]) => [`metadata ${k}`, v])
  ])

export const fileHeader = ["ID", "PURPOSE", "BYTES", "FILENAME", "CREATED"]
export const fileRow = (f: BatchFile.FileObject) => [
  f.id,
  f.purpose,
  String(f.bytes),
  f.filename,
  when(f.created_at)
]

/** Fails with a usage error unless `path`'s directory exists and `path` is not a directory. */
export const checkOutputPath = (path: string, option = "--output"): Effect.Effect<string, UsageError> =>
  Effect.suspend(() => {
    const full = resolve(path)
    const dir = dirname(full)
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      return Effect.fail(new UsageError({ message: `${option}: the directory ${dir} does not exist` }))
    }
    if (existsSync(full) && statSync(full).isDirectory()) {
      return Effect.fail(new UsageError({ message: `${option}: ${path} is a directory` }))
    }
    return Effect.succeed(full)
  })

/** Bytes written between two flushes to disk of a file being written. */
const syncEvery = 64 * 1024 * 1024

/**
 * Writes a byte stream to `path` so that the file appears only when complete: it goes to a
 * temporary name beside it, renamed at the end; on failure or interruption the temporary file is
 * removed and `path` is left as it was.
 */
export const writeFileAtomically = <E, R>(
  path: string,
  bytes: Stream.Stream<Uint8Array, E, R>
): Effect.Effect<void, E | LocalError, R> => {
  const temp = join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.partial`
  )
  removeStalePartials(path)
  const local = (what: string) => (cause: unknown) =>
    new LocalError({ message: `${what} ${temp}: ${(cause as Error).message ?? String(cause)}` })
  return Effect.acquireUseRelease(
    Effect.tryPromise({ try: () => open(temp, "wx"), catch: local("cannot create") }),
    (handle) => {
      // the disk is flushed as the file grows (not all at the end), while the next chunks are
      // produced: for a results merge, the store's reads and the disk's writes overlap
      let unsynced = 0
      const write = async (chunk: Uint8Array) => {
        await handle.write(chunk)
        unsynced += chunk.byteLength
        if (unsynced >= syncEvery) {
          unsynced = 0
          await handle.datasync()
        }
      }
      return Stream.runForEach(Stream.bufferChunks(bytes, { capacity: 4 }), (chunk) =>
        Effect.tryPromise({ try: () => write(chunk), catch: local("cannot write") })
      ).pipe(
        Effect.zipRight(Effect.tryPromise({ try: () => handle.sync(), catch: local("cannot flush") })),
        Effect.zipRight(Effect.tryPromise({ try: () => handle.close(), catch: local("cannot close") })),
        Effect.zipRight(
          Effect.tryPromise({
            try: () => rename(temp, path),
            catch: (cause) =>
              new LocalError({ message: `cannot rename ${temp} to ${path}: ${String(cause)}` })
          })
        )
      )
    },
    (handle, exit) =>
      exit._tag === "Success"
        ? Effect.void
        : Effect.promise(() =>
            handle
              .close()
              .catch(() => undefined)
              .then(() => unlink(temp).catch(() => undefined))
          )
  )
}

/**
 * The partial files a killed process left for `path` (`kill -9` runs no cleanup): those of
 * processes that are gone. A live one's is its own business.
 */
const removeStalePartials = (path: string) => {
  const prefix = `.${basename(path)}.`
  let names: Array<string>
  try {
    names = readdirSync(dirname(path))
  } catch {
    return
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(".partial")) continue
    const pid = Number(name.slice(prefix.length).split(".")[0])
    if (!Number.isInteger(pid) || pid === process.pid) continue
    try {
      process.kill(pid, 0)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ESRCH") rmSync(join(dirname(path), name), { force: true })
    }
  }
}

export const encoder = new TextEncoder()

/**
 * The items of one page, as a stream; when more pages follow, stderr says which command shows
 * the next one (`more` makes it from the page's last id).
 */
export const onePage = <A extends { readonly id: string }, E, R>(
  page: Effect.Effect<{ readonly data: ReadonlyArray<A>; readonly has_more: boolean }, E, R>,
  more: (lastId: string) => string
): Stream.Stream<A, E, R> =>
  Stream.unwrap(
    Effect.map(page, (p) => {
      const last = p.data.at(-1)?.id
      const hint =
        p.has_more && last !== undefined
          ? Stream.execute(Console.error(`more on the next page: ${more(last)} (or --all for every page)`))
          : Stream.empty
      return Stream.concat(Stream.fromIterable(p.data), hint)
    })
  )

/** The command that shows the page after `lastId`, with the same filters. */
export const morePages =
  (command: string, params: Readonly<Record<string, string | number | undefined>>) => (lastId: string) =>
    [
      command,
      ...Object.entries(params)
        .filter(([k, v]) => k !== "after" && v !== undefined)
        .map(([k, v]) => `--${k} ${v}`),
      `--after ${lastId}`
    ].join(" ")

/** A listing: one JSON object per line with `--json` (as the items come), else a table. */
export const printListing = <A, E, R>(
  items: Stream.Stream<A, E, R>,
  asJson: boolean,
  header: ReadonlyArray<string>,
  row: (item: A) => ReadonlyArray<string>
): Effect.Effect<void, E, R> =>
  asJson
    ? Stream.runForEach(items, (item) => printLine(JSON.stringify(item)))
    : Effect.flatMap(Stream.runCollect(Stream.map(items, row)), (rows) => printLine(table([header, ...rows])))
