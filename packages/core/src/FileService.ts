/**
 * The Files API a batch workflow needs: upload an input file (streamed, never whole in memory),
 * retrieve, list, delete, download content as a byte `Stream`, and the typed results of a batch.
 *
 * @since 0.1.0
 */
import * as HttpBody from "@effect/platform/HttpBody"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import type { Batch } from "./Batch.js"
import type { BatchConfig } from "./BatchConfig.js"
import { InvalidRequest, type RequestError, type ResponseDecodeError, invalid } from "./BatchError.js"
import {
  type FileDeleted,
  FileExpiresAfter,
  type FileObject,
  type FilePage,
  ListFilesParams,
  type UploadPurpose
} from "./BatchFile.js"
import { decodeOutcomes, type Outcome } from "./BatchLine.js"
import * as Api from "./internal/api.js"
import * as Fast from "./internal/fast.js"
import { paginate } from "./internal/paginate.js"
import { checkId as checkIdWith, decodeParams } from "./internal/schema.js"
import { ResourceId } from "./Batch.js"

/**
 * What `upload` sends: a file name and a byte stream that can be run again (a retry re-reads
 * it from the start), with its size when known (then the request carries a `content-length`).
 *
 * @since 0.1.0
 * @category models
 */
export interface UploadSource {
  readonly filename: string
  readonly size?: number | undefined
  readonly contentType?: string | undefined
  readonly stream: Stream.Stream<Uint8Array, unknown>
  /**
   * The same bytes as a `Blob` whose reads come from their source (such as `fs.openAsBlob`),
   * opened afresh for each send. When present it is sent as `FormData` in place of `stream`:
   * the HTTP client reads it as the socket drains, with no stream of chunks in between, which
   * halves the memory a large upload passes through. A failure to open it is the upload's
   * failure (an `InvalidRequest` as given, anything else as one on `file`).
   */
  readonly blob?: Effect.Effect<Blob, unknown> | undefined
}

/**
 * An upload source over bytes already in memory (tests, small files).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromBytes = (filename: string, bytes: Uint8Array | string): UploadSource => {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes
  return { filename, size: data.byteLength, stream: Stream.succeed(data) }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface UploadOptions {
  /** Default `batch`. */
  readonly purpose?: UploadPurpose | undefined
  readonly expiresAfter?: { readonly anchor: "created_at"; readonly seconds: number } | undefined
}

/**
 * Where the results of a batch are: a batch, or just its two file ids (either may be missing,
 * `null` or `""`), or a batch id to look up.
 *
 * @since 0.1.0
 * @category models
 */
export type ResultsOf =
  | string
  | Batch
  | {
      readonly output_file_id?: string | null | undefined
      readonly error_file_id?: string | null | undefined
    }

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** `POST /files`: streamed multipart; a retry re-reads the source. */
  readonly upload: (
    source: UploadSource,
    options?: UploadOptions
  ) => Effect.Effect<FileObject, InvalidRequest | RequestError>
  /** `GET /files/{file_id}`. */
  readonly retrieve: (fileId: string) => Effect.Effect<FileObject, InvalidRequest | RequestError>
  /** `GET /files`: one page. */
  readonly list: (params?: ListFilesParams) => Effect.Effect<FilePage, InvalidRequest | RequestError>
  /** Every file across pages (`limit` is the page size); fails instead of looping on a stuck cursor. */
  readonly stream: (params?: ListFilesParams) => Stream.Stream<FileObject, InvalidRequest | RequestError>
  /** `DELETE /files/{file_id}`. */
  readonly delete: (fileId: string) => Effect.Effect<FileDeleted, InvalidRequest | RequestError>
  /** `GET /files/{file_id}/content` as bytes. Opening is retried; a body cut midway fails the stream. */
  readonly content: (fileId: string) => Stream.Stream<Uint8Array, InvalidRequest | RequestError>
  /**
   * The typed outcome of every request of a batch: its output file, then its error file, decoded
   * line by line in constant memory. Lines come in the files' order (not the input's).
   */
  readonly results: (
    batch: ResultsOf
  ) => Stream.Stream<Outcome, InvalidRequest | RequestError | ResponseDecodeError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class FileService extends Context.Tag("@batchkit/core/FileService")<FileService, Service>() {}

const encoder = new TextEncoder()

const quoteName = (name: string) => name.replace(/"/g, "%22").replace(/\r/g, "%0D").replace(/\n/g, "%0A")

/** The bytes of a multipart body around the file part, so the file itself can be streamed. */
const multipart = (
  boundary: string,
  fields: ReadonlyArray<readonly [string, string]>,
  filename: string,
  contentType: string
) => {
  let head = ""
  for (const [name, value] of fields) {
    head += `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`
  }
  head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${quoteName(filename)}"\r\n`
  head += `Content-Type: ${contentType}\r\n\r\n`
  return { head: encoder.encode(head), tail: encoder.encode(`\r\n--${boundary}--\r\n`) }
}

type Fields = ReadonlyArray<readonly [string, string]>

const causeText = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** A multipart body streamed around the source's bytes, with its length when the size is known. */
const streamBody = (fields: Fields, source: UploadSource, filename: string, contentType: string) => {
  const boundary = `----batchkit-${globalThis.crypto.randomUUID()}`
  const { head, tail } = multipart(boundary, fields, filename, contentType)
  return HttpBody.stream(
    Stream.concat(Stream.succeed(head), Stream.concat(source.stream, Stream.succeed(tail))),
    `multipart/form-data; boundary=${boundary}`,
    source.size !== undefined ? head.byteLength + source.size + tail.byteLength : undefined
  )
}

/** The same body as `FormData`, for a source that is a `Blob` (the client encodes and sizes it). */
const formOf = (fields: Fields, blob: Blob, filename: string, contentType: string) => {
  const form = new FormData()
  for (const [name, value] of fields) form.append(name, value)
  // a slice with the type: the part's Content-Type, still read lazily from the source
  form.append("file", blob.type === contentType ? blob : blob.slice(0, blob.size, contentType), filename)
  return form
}

/**
 * Builds the service from a `BatchConfig` and any `HttpClient`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Service, never, BatchConfig | HttpClient.HttpClient> = Effect.gen(
  function* () {
    const api = yield* Api.make
    const checkId = checkIdWith(ResourceId, "file_id")
    const decodeList = decodeParams(ListFilesParams)
    const decodeExpires = decodeParams(FileExpiresAfter, "expires_after")

    const maxBytes = api.config.provider.limits.bytes
    const tooLarge = `a batch input file${api.config.provider.name === "openai" ? "" : ` of ${api.config.provider.name}`} may be at most ${Math.round(maxBytes / 1024 / 1024)} MB`
    const upload = (source: UploadSource, options?: UploadOptions) =>
      Effect.gen(function* () {
        const purpose = options?.purpose ?? "batch"
        const filename = source.filename.split(/[\\/]/).pop() ?? ""
        if (filename.trim() === "") return yield* Effect.fail(invalid("file", "the file needs a name"))
        if (purpose === "batch" && !filename.toLowerCase().endsWith(".jsonl")) {
          return yield* Effect.fail(invalid("file", `${filename}: a batch input file must be .jsonl`))
        }
        if (source.size !== undefined && purpose === "batch" && source.size > maxBytes) {
          return yield* Effect.fail(invalid("file", `${filename} is ${source.size} bytes; ${tooLarge}`))
        }
        const fields: Array<readonly [string, string]> = [["purpose", purpose]]
        if (options?.expiresAfter !== undefined) {
          const expires = yield* decodeExpires(options.expiresAfter)
          fields.push(
            ["expires_after[anchor]", expires.anchor],
            ["expires_after[seconds]", String(expires.seconds)]
          )
        }
        const contentType =
          source.contentType ?? (purpose === "batch" ? "application/jsonl" : "application/octet-stream")
        const send = (body: HttpBody.HttpBody) =>
          api.once(HttpClientRequest.setBody(api.request("POST", "/files"), body), Fast.file)
        if (source.blob === undefined)
          return yield* api.retry(send(streamBody(fields, source, filename, contentType)))
        // each attempt opens the Blob again, so a retry sends the file as it is then
        const opened = Effect.mapError(source.blob, (cause) =>
          cause instanceof InvalidRequest ? cause : invalid("file", `${filename}: ${causeText(cause)}`)
        )
        return yield* api.retry(
          Effect.flatMap(opened, (blob): Effect.Effect<FileObject, InvalidRequest | RequestError> => {
            if (purpose === "batch" && blob.size > maxBytes) {
              return Effect.fail(invalid("file", `${filename} is ${blob.size} bytes; ${tooLarge}`))
            }
            return send(HttpBody.formData(formOf(fields, blob, filename, contentType)))
          })
        )
      })

    const retrieve = (fileId: string) =>
      checkId(fileId).pipe(Effect.flatMap((id) => api.json(api.request("GET", `/files/${id}`), Fast.file)))

    const list = (params: ListFilesParams = {}) =>
      decodeList(params).pipe(
        Effect.flatMap((query) => {
          const urlParams: Record<string, string> = {}
          if (query.purpose !== undefined) urlParams.purpose = query.purpose
          if (query.limit !== undefined) urlParams.limit = String(query.limit)
          if (query.order !== undefined) urlParams.order = query.order
          if (query.after !== undefined) urlParams.after = query.after
          return api.json(
            HttpClientRequest.appendUrlParams(api.request("GET", "/files"), urlParams),
            Fast.filePage
          )
        })
      )

    const stream = (params: ListFilesParams = {}) =>
      Stream.unwrap(
        Effect.map(decodeList(params), (query) =>
          paginate("GET /files", query.after, (after) =>
            list(after === undefined ? { ...query, after: undefined } : { ...query, after })
          )
        )
      )

    const remove = (fileId: string) =>
      checkId(fileId).pipe(
        Effect.flatMap((id) => api.json(api.request("DELETE", `/files/${id}`), Fast.fileDeleted))
      )

    const content = (fileId: string) =>
      Stream.unwrap(
        checkId(fileId).pipe(
          Effect.map((id) =>
            api.bytes(
              HttpClientRequest.setHeader(
                api.request("GET", `/files/${id}/content`),
                "accept",
                "application/binary"
              )
            )
          )
        )
      )

    const fileIds = (batch: ResultsOf) =>
      typeof batch === "string"
        ? decodeParams(
            ResourceId,
            "batch_id"
          )(batch).pipe(Effect.flatMap((id) => api.json(api.request("GET", `/batches/${id}`), Fast.batch)))
        : Effect.succeed(batch)

    const results = (batch: ResultsOf) =>
      Stream.unwrap(
        Effect.map(fileIds(batch), (b) => {
          const ids = [b.output_file_id, b.error_file_id].filter(
            (id): id is string => typeof id === "string" && id !== ""
          )
          return Stream.flatMap(
            Stream.fromIterable(ids),
            (id) => content(id).pipe(decodeOutcomes(`file ${id}`)),
            { concurrency: 1 }
          )
        })
      )

    return { upload, retrieve, list, stream, delete: remove, content, results } satisfies Service
  }
)

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<FileService, never, BatchConfig | HttpClient.HttpClient> = Layer.effect(
  FileService,
  make
)
