/**
 * Upload sources read from disk. The file is streamed (64 KiB at a time), never held whole in
 * memory, and every run of the stream opens the file again, so a retried upload re-reads it.
 *
 * @since 0.1.0
 */
import { BatchError, type FileService } from "@batchkit/core"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createReadStream } from "node:fs"
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
    catch: (cause) =>
      BatchError.invalid(
        "file",
        `${path}: ${(cause as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String((cause as Error).message ?? cause)}`
      )
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
        stream: stream(path)
      })
    )
  )
