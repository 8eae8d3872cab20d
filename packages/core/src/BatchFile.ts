/**
 * The Files API objects a batch workflow needs: the file object, its page and the delete
 * result.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { ResourceId } from "./Batch.js"
import { optionalNullable } from "./internal/schema.js"

/**
 * @since 0.1.0
 * @category schemas
 */
export const FileId = ResourceId.pipe(Schema.brand("FileId"))

/**
 * @since 0.1.0
 * @category models
 */
export type FileId = typeof FileId.Type

/**
 * The purposes a file object can carry. Batch inputs are `batch`; the output and error files a
 * batch writes are `batch_output`. Unknown purposes decode as plain strings.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FilePurpose = Schema.Literal(
  "assistants",
  "assistants_output",
  "batch",
  "batch_output",
  "fine-tune",
  "fine-tune-results",
  "vision",
  "user_data",
  "evals"
)

/**
 * @since 0.1.0
 * @category models
 */
export type FilePurpose = typeof FilePurpose.Type

/**
 * The purposes `POST /files` accepts.
 *
 * @since 0.1.0
 * @category schemas
 */
export const UploadPurpose = Schema.Literal(
  "assistants",
  "batch",
  "fine-tune",
  "vision",
  "user_data",
  "evals"
)

/**
 * @since 0.1.0
 * @category models
 */
export type UploadPurpose = typeof UploadPurpose.Type

/**
 * The file object.
 *
 * @since 0.1.0
 * @category schemas
 */
export class FileObject extends Schema.Class<FileObject>("@batchkit/core/FileObject")({
  id: Schema.String,
  object: Schema.Literal("file"),
  bytes: Schema.Number,
  created_at: Schema.Number,
  expires_at: optionalNullable(Schema.Number),
  filename: Schema.String,
  purpose: Schema.Union(FilePurpose, Schema.String),
  status: optionalNullable(Schema.String),
  status_details: optionalNullable(Schema.String)
}) {}

/**
 * One page of `GET /files`.
 *
 * @since 0.1.0
 * @category schemas
 */
export class FilePage extends Schema.Class<FilePage>("@batchkit/core/FilePage")({
  object: Schema.Literal("list"),
  data: Schema.Array(FileObject),
  first_id: optionalNullable(Schema.String),
  last_id: optionalNullable(Schema.String),
  has_more: Schema.Boolean
}) {}

/**
 * The answer of `DELETE /files/{file_id}`.
 *
 * @since 0.1.0
 * @category schemas
 */
export class FileDeleted extends Schema.Class<FileDeleted>("@batchkit/core/FileDeleted")({
  id: Schema.String,
  object: Schema.Literal("file"),
  deleted: Schema.Boolean
}) {}

/**
 * The query of `GET /files`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ListFilesParams = Schema.Struct({
  purpose: Schema.optional(Schema.String),
  limit: Schema.optional(
    Schema.Int.pipe(Schema.between(1, 10000, { message: () => "must be an integer from 1 to 10000" }))
  ),
  order: Schema.optional(Schema.Literal("asc", "desc")),
  after: Schema.optional(ResourceId)
})

/**
 * @since 0.1.0
 * @category models
 */
export type ListFilesParams = typeof ListFilesParams.Type

/**
 * When an uploaded file expires, counted from its creation.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FileExpiresAfter = Schema.Struct({
  anchor: Schema.Literal("created_at"),
  seconds: Schema.Int.pipe(
    Schema.between(3600, 2592000, { message: () => "must be between 3600 and 2592000 seconds" })
  )
})
