/**
 * Upload sources read from disk. The file is streamed, never held whole in memory, and every
 * send reads the file again, so a retried upload re-reads it. `fromPath` also gives the file as
 * a `Blob` (`fs.openAsBlob`, opened per send), which the HTTP client sends as it is.
 *
 * @since 0.1.0
 */
import { BatchError, type FileService } from "@batchkit/core"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createReadStream, openAsBlob } from "node:fs"
import { stat } from "node:fs/promises"
import { basename } from "node:path"

/**
 * The bytes of a file, read afresh on each run.
 *
 * @since 0.1.0
 * @category constructors
 */
export const stream = (
  path: string,
  options?: { readonly chunkSize?: number }
): Stream.Stream<Uint8Array, Error> =>
  Stream.suspend(() =>
    Stream.fromAsyncIterable(
      createReadStream(path, { highWaterMark: options?.chunkSize ?? 64 * 1024 }) as AsyncIterable<Uint8Array>,
      (cause) => (cause instanceof Error ? cause : new Error(String(cause)))
    )
  )

/**
 * The file as a `Blob`, opened on each run: its bytes are read from disk as they are sent, and
 * a run after the file changed sends it as it is then.
 *
 * @since 0.1.0
 * @category constructors
 */
export const blob = (path: string): Effect.Effect<Blob, BatchError.InvalidRequest> =>
  Effect.tryPromise({
    try: async () => {
      try {
        return await openAsBlob(path)
      } catch (cause) {
        // openAsBlob says only "Unable to open file as blob": stat names what is wrong
        await stat(path)
        throw cause
      }
    },
    catch: (cause) => BatchError.invalid("file", `${path}: ${describe(cause)}`)
  })

const describe = (cause: unknown) =>
  (cause as NodeJS.ErrnoException).code === "ENOENT"
    ? "no such file"
    : String((cause as Error).message ?? cause)

/**
 * An upload source for the file at `path`; fails with `InvalidRequest` (field `file`) when there
 * is no readable regular file there.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromPath = (
  path: string,
  options?: { readonly filename?: string; readonly contentType?: string }
): Effect.Effect<FileService.UploadSource, BatchError.InvalidRequest> =>
  Effect.tryPromise({
    try: () => stat(path),
    catch: (cause) => BatchError.invalid("file", `${path}: ${describe(cause)}`)
  }).pipe(
    Effect.filterOrFail(
      (info) => info.isFile(),
      () => BatchError.invalid("file", `${path}: not a regular file`)
    ),
    Effect.map(
      (info): FileService.UploadSource => ({
        filename: options?.filename ?? basename(path),
        size: info.size,
        ...(options?.contentType !== undefined ? { contentType: options.contentType } : {}),
        stream: stream(path),
        blob: blob(path)
      })
    )
  )
