/**
 * The simulator's Files API: the store, and the upload, retrieve, list, delete and content routes,
 * with the API's checks on uploads (purpose, `.jsonl` and 200 MB for batch files, UTF-8,
 * `expires_after`).
 */
import * as BatchLine from "../../BatchLine.js"
import type { NextId } from "./ids.js"
import * as Multipart from "./multipart.js"
import {
  decoder,
  expiresAfterLimits,
  invalidValue,
  json,
  limitOf,
  notFound,
  page,
  type Reply,
  type Request
} from "./wire.js"

export interface StoredFile {
  readonly id: string
  readonly filename: string
  readonly purpose: string
  readonly createdAt: number
  readonly expiresAt: number | null
  readonly content: Uint8Array
}

const uploadPurposes = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]

const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

export const make = (nextId: NextId, stamp: (simulated: number) => number) => {
  const files = new Map<string, StoredFile>()
  const sec = (ms: number) => Math.floor(stamp(ms) / 1000)

  const store = (
    filename: string,
    purpose: string,
    content: Uint8Array,
    createdAt: number,
    expiresAfterSeconds?: number
  ): StoredFile => {
    const file: StoredFile = {
      id: nextId("file-", 22),
      filename,
      purpose,
      createdAt,
      expiresAt: expiresAfterSeconds === undefined ? null : createdAt + expiresAfterSeconds * 1000,
      content
    }
    files.set(file.id, file)
    return file
  }

  const view = (f: StoredFile) => ({
    id: f.id,
    object: "file",
    bytes: f.content.byteLength,
    created_at: sec(f.createdAt),
    expires_at: f.expiresAt === null ? null : sec(f.expiresAt),
    filename: f.filename,
    purpose: f.purpose,
    status: "processed",
    status_details: null
  })

  const upload = (req: Request, now: number): Reply => {
    const boundary = Multipart.boundaryOf(req.headers["content-type"])
    const parts = boundary === undefined ? undefined : Multipart.parse(req.body, boundary)
    if (parts === undefined)
      return invalidValue(
        "The request must be multipart/form-data with a 'file' and a 'purpose'.",
        null,
        null
      )
    const field = (name: string) => {
      const part = parts.find((p) => p.name === name && p.filename === undefined)
      return part === undefined ? undefined : decoder.decode(part.data)
    }
    const file = parts.find((p) => p.name === "file")
    const purpose = field("purpose")
    if (purpose === undefined)
      return invalidValue("Missing required parameter: 'purpose'.", "purpose", "missing_required_parameter")
    if (!uploadPurposes.includes(purpose))
      return invalidValue(`Invalid value for 'purpose': ${purpose}.`, "purpose")
    if (file === undefined || file.filename === undefined)
      return invalidValue("Missing required parameter: 'file'.", "file", "missing_required_parameter")
    if (purpose === "batch") {
      if (!file.filename.toLowerCase().endsWith(".jsonl"))
        return invalidValue("Invalid file format for Batch API. Must be .jsonl", "file", null)
      if (file.data.byteLength > BatchLine.inputLimits.bytes)
        return invalidValue("File is too large.", "file", null)
      try {
        strictUtf8.decode(file.data)
      } catch {
        return invalidValue("Invalid file for Batch API. Must be utf-8 encoded", "file", null)
      }
    }
    const anchor = field("expires_after[anchor]")
    const seconds = field("expires_after[seconds]")
    let expiresAfter: number | undefined = purpose === "batch" ? 30 * 86400 : undefined
    if (anchor !== undefined || seconds !== undefined) {
      const s = Number(seconds)
      if (
        anchor !== "created_at" ||
        !Number.isInteger(s) ||
        s < expiresAfterLimits.min ||
        s > expiresAfterLimits.max
      ) {
        return invalidValue(
          `Invalid 'expires_after': expected anchor 'created_at' and seconds between ${expiresAfterLimits.min} and ${expiresAfterLimits.max}.`,
          "expires_after",
          null
        )
      }
      expiresAfter = s
    }
    // a copy: the part is a view into the request body
    return json(200, view(store(file.filename, purpose, file.data.slice(), now, expiresAfter)))
  }

  const list = (req: Request): Reply => {
    const limit = limitOf(req.query, 10000, 10000)
    if (typeof limit !== "number") return limit
    const order = req.query.get("order") ?? "desc"
    if (order !== "asc" && order !== "desc")
      return invalidValue(
        `Invalid value for 'order': ${order}. Supported values are: 'asc' and 'desc'.`,
        "order"
      )
    const purpose = req.query.get("purpose")
    const matching = [...files.values()].filter((f) => purpose === null || f.purpose === purpose)
    if (order === "desc") matching.reverse()
    const p = page(matching, req.query.get("after"), limit)
    return json(200, { ...p, data: p.data.map(view) })
  }

  /** retrieve, delete or content of one file. */
  const one = (operation: "files.retrieve" | "files.delete" | "files.content", id: string): Reply => {
    const file = files.get(id)
    if (file === undefined) return notFound(`No such File object: ${id}`, "id")
    if (operation === "files.delete") {
      files.delete(id)
      return json(200, { id, object: "file", deleted: true })
    }
    if (operation === "files.content")
      return {
        _tag: "Answer",
        status: 200,
        headers: { "content-type": "application/octet-stream" },
        body: file.content
      }
    return json(200, view(file))
  }

  return {
    get: (id: string) => files.get(id),
    store,
    view,
    upload,
    list,
    one,
    all: () => [...files.values()].map(view)
  }
}

export type Files = ReturnType<typeof make>
