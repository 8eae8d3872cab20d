/**
 * A small loopback server that follows the spec's wire protocol for the batch and file
 * endpoints, with scripted faults. It stands in for the emulator (which has an issue of its own)
 * in the node package's integration tests and in the demo.
 *
 * Batches move on wall time: `validating` for `stepMs`, `in_progress` for 4 × `stepMs` with the
 * counts advancing, `finalizing` for `stepMs`, then `completed` with output and error files. An
 * input line whose body has `"fail": true` fails with a 400 in the error file. A batch created
 * with `metadata.fake_step_ms` moves at that pace instead.
 */
import { randomUUID } from "node:crypto"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

export type Fault =
  | { readonly kind: "reset-before" }
  | { readonly kind: "reset-after" }
  | {
      readonly kind: "status"
      readonly status: number
      readonly body?: unknown
      readonly headers?: Record<string, string>
    }

interface StoredFile {
  readonly id: string
  readonly filename: string
  readonly purpose: string
  readonly created_at: number
  readonly content: Buffer
}

interface StoredBatch {
  readonly id: string
  readonly endpoint: string
  readonly input_file_id: string
  readonly created_at: number
  readonly createdMs: number
  readonly metadata: Record<string, string> | null
  readonly lines: ReadonlyArray<{ custom_id: string; body: Record<string, unknown> }>
  readonly stepMs: number
  cancelledMs?: number
  output_file_id?: string | null
  error_file_id?: string | null
}

const error = (
  message: string,
  type = "invalid_request_error",
  param: string | null = null,
  code: string | null = null
) => ({
  error: { message, type, param, code }
})

export interface FakeServer {
  readonly url: string
  readonly requests: Array<{ method: string; path: string; headers: IncomingMessage["headers"] }>
  readonly batches: Map<string, StoredBatch>
  readonly files: Map<string, StoredFile>
  /** Queues faults for the next requests that match `method path` (path without /v1). */
  readonly inject: (method: string, path: RegExp, ...faults: Array<Fault>) => void
  readonly close: () => Promise<void>
}

export const start = async (options: {
  readonly apiKey: string
  readonly stepMs?: number
}): Promise<FakeServer> => {
  const files = new Map<string, StoredFile>()
  const batches = new Map<string, StoredBatch>()
  const order: Array<string> = []
  const faults: Array<{ method: string; path: RegExp; fault: Fault }> = []
  const requests: FakeServer["requests"] = []
  let seq = 0
  const nextId = (prefix: string) =>
    `${prefix}${(++seq).toString(36).padStart(6, "0")}${randomUUID().slice(0, 8)}`

  const view = (b: StoredBatch) => {
    const now = Date.now()
    const stepMs = b.stepMs
    const total = b.lines.length
    const failing = b.lines.filter((l) => l.body.fail === true).length
    const elapsed = (b.cancelledMs ?? now) - b.createdMs
    const progress = Math.max(0, Math.min(1, (elapsed - stepMs) / (4 * stepMs)))
    const done = Math.floor(total * progress)
    const failedSoFar = Math.min(failing, Math.floor(failing * progress))
    let status: string
    if (b.cancelledMs !== undefined) status = now - b.cancelledMs < stepMs ? "cancelling" : "cancelled"
    else if (elapsed < stepMs) status = "validating"
    else if (elapsed < 5 * stepMs) status = "in_progress"
    else if (elapsed < 6 * stepMs) status = "finalizing"
    else status = "completed"
    if ((status === "completed" || status === "cancelled") && b.output_file_id === undefined)
      finish(b, status === "completed" ? total : done)
    const sec = (ms: number) => Math.floor(ms / 1000)
    return {
      id: b.id,
      object: "batch",
      endpoint: b.endpoint,
      model: (b.lines[0]?.body.model as string | undefined) ?? null,
      errors: null,
      input_file_id: b.input_file_id,
      completion_window: "24h",
      status,
      output_file_id: b.output_file_id ?? null,
      error_file_id: b.error_file_id ?? null,
      created_at: b.created_at,
      in_progress_at: status === "validating" ? null : sec(b.createdMs + stepMs),
      expires_at: status === "validating" ? null : b.created_at + 86400,
      finalizing_at: null,
      completed_at: status === "completed" ? sec(now) : null,
      failed_at: null,
      expired_at: null,
      cancelling_at: b.cancelledMs !== undefined ? sec(b.cancelledMs) : null,
      cancelled_at: status === "cancelled" ? sec(now) : null,
      request_counts:
        status === "validating"
          ? { total: 0, completed: 0, failed: 0 }
          : { total, completed: done - failedSoFar, failed: failedSoFar },
      metadata: b.metadata,
      some_future_field: { added: "later" }
    }
  }

  const finish = (b: StoredBatch, ran: number) => {
    const out: Array<string> = []
    const err: Array<string> = []
    b.lines.forEach((line, i) => {
      const id = `batch_req_${i}`
      if (i >= ran) {
        err.push(
          JSON.stringify({
            id,
            custom_id: line.custom_id,
            response: null,
            error: { code: "batch_cancelled", message: "Batch was cancelled." }
          })
        )
      } else if (line.body.fail === true) {
        err.push(
          JSON.stringify({
            id,
            custom_id: line.custom_id,
            response: {
              status_code: 400,
              request_id: `req_${i}`,
              body: error("bad request line", "invalid_request_error", "fail")
            },
            error: null
          })
        )
      } else {
        out.push(
          JSON.stringify({
            id,
            custom_id: line.custom_id,
            response: {
              status_code: 200,
              request_id: `req_${i}`,
              body: { object: "chat.completion", echo: line.body }
            },
            error: null
          })
        )
      }
    })
    const store = (lines: Array<string>) => {
      if (lines.length === 0) return null
      const id = nextId("file-")
      files.set(id, {
        id,
        filename: `${b.id}_output.jsonl`,
        purpose: "batch_output",
        created_at: Math.floor(Date.now() / 1000),
        content: Buffer.from(`${lines.reverse().join("\n")}\n`)
      })
      return id
    }
    b.output_file_id = store(out)
    b.error_file_id = store(err)
  }

  const fileView = (f: StoredFile) => ({
    id: f.id,
    object: "file",
    bytes: f.content.byteLength,
    created_at: f.created_at,
    filename: f.filename,
    purpose: f.purpose,
    status: "processed",
    expires_at: null
  })

  const readBody = (req: IncomingMessage) =>
    new Promise<Buffer>((resolve, reject) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => resolve(Buffer.concat(chunks)))
      req.on("error", reject)
    })

  const multipart = (body: Buffer, contentType: string) => {
    const boundary = /boundary=(?:"([^"]+)"|([^;]+))/.exec(contentType)
    const parts = new Map<string, { filename?: string; data: Buffer }>()
    if (!boundary) return parts
    const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}`)
    let start = body.indexOf(delimiter)
    while (start !== -1) {
      const next = body.indexOf(delimiter, start + delimiter.length)
      if (next === -1) break
      const part = body.subarray(start + delimiter.length + 2, next - 2)
      const split = part.indexOf("\r\n\r\n")
      const head = part.subarray(0, split).toString()
      const name = /name="([^"]*)"/.exec(head)?.[1]
      const filename = /filename="([^"]*)"/.exec(head)?.[1]
      if (name !== undefined)
        parts.set(name, { ...(filename !== undefined ? { filename } : {}), data: part.subarray(split + 4) })
      start = next
    }
    return parts
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost")
    const path = url.pathname.replace(/^\/v1/, "")
    const method = req.method ?? "GET"
    requests.push({ method, path: url.pathname + url.search, headers: req.headers })
    const requestId = `req_${randomUUID().replaceAll("-", "")}`
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const text = JSON.stringify(body)
      res.writeHead(status, { "content-type": "application/json", "x-request-id": requestId, ...headers })
      res.end(text)
    }
    const body = await readBody(req)
    const index = faults.findIndex((f) => f.method === method && f.path.test(path))
    const fault = index === -1 ? undefined : faults.splice(index, 1)[0]?.fault
    if (fault?.kind === "reset-before") return req.socket.destroy()
    if (fault?.kind === "status")
      return send(
        fault.status,
        fault.body ?? error(`injected ${fault.status}`, "server_error"),
        fault.headers
      )
    const afterwards = fault?.kind === "reset-after" ? () => req.socket.destroy() : undefined

    if (req.headers.authorization !== `Bearer ${options.apiKey}`) {
      return send(
        401,
        error(
          req.headers.authorization ? "Incorrect API key provided." : "You didn't provide an API key.",
          "invalid_request_error",
          null,
          req.headers.authorization ? "invalid_api_key" : null
        )
      )
    }
    if (method === "POST" && path === "/files") {
      const parts = multipart(body, req.headers["content-type"] ?? "")
      const file = parts.get("file")
      const purpose = parts.get("purpose")?.data.toString()
      if (!file?.filename) return send(400, error("Missing file", "invalid_request_error", "file"))
      if (purpose === "batch" && !file.filename.endsWith(".jsonl"))
        return send(
          400,
          error("Invalid file format for Batch API. Must be .jsonl", "invalid_request_error", "file")
        )
      const stored: StoredFile = {
        id: nextId("file-"),
        filename: file.filename,
        purpose: purpose ?? "batch",
        created_at: Math.floor(Date.now() / 1000),
        content: Buffer.from(file.data)
      }
      files.set(stored.id, stored)
      send(200, fileView(stored))
      return afterwards?.()
    }
    if (method === "GET" && path === "/files")
      return send(200, {
        object: "list",
        data: [...files.values()].map(fileView),
        first_id: null,
        last_id: null,
        has_more: false
      })
    const fileRoute = /^\/files\/([^/]+)(\/content)?$/.exec(path)
    if (fileRoute) {
      const m = fileRoute
      const file = files.get(m[1]!)
      if (!file) return send(404, error(`No such File object: ${m[1]}`, "invalid_request_error", "id"))
      if (method === "DELETE") {
        files.delete(file.id)
        return send(200, { id: file.id, object: "file", deleted: true })
      }
      if (m[2]) {
        res.writeHead(200, { "content-type": "application/octet-stream", "x-request-id": requestId })
        return res.end(file.content)
      }
      return send(200, fileView(file))
    }
    if (method === "POST" && path === "/batches") {
      const params = JSON.parse(body.toString() || "{}") as Record<string, unknown>
      if (params.completion_window !== "24h")
        return send(400, error("Invalid completion_window", "invalid_request_error", "completion_window"))
      const input = files.get(String(params.input_file_id))
      if (!input)
        return send(
          404,
          error(`No such File object: ${params.input_file_id}`, "invalid_request_error", "input_file_id")
        )
      const lines = input.content
        .toString()
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => JSON.parse(l))
      const now = Date.now()
      const batch: StoredBatch = {
        id: nextId("batch_"),
        endpoint: String(params.endpoint),
        input_file_id: input.id,
        created_at: Math.floor(now / 1000),
        createdMs: now,
        metadata: (params.metadata as Record<string, string>) ?? null,
        lines,
        stepMs: Number(
          (params.metadata as Record<string, string> | undefined)?.fake_step_ms ?? options.stepMs ?? 100
        )
      }
      batches.set(batch.id, batch)
      order.unshift(batch.id)
      send(200, view(batch))
      return afterwards?.()
    }
    if (method === "GET" && path === "/batches") {
      const limit = url.searchParams.has("limit") ? Number(url.searchParams.get("limit")) : 20
      if (!Number.isInteger(limit) || limit < 1 || limit > 100)
        return send(400, error("Invalid limit", "invalid_request_error", "limit"))
      const after = url.searchParams.get("after")
      const start = after === null ? 0 : order.indexOf(after) + 1
      const data = order.slice(start, start + limit).map((id) => view(batches.get(id)!))
      return send(200, {
        object: "list",
        data,
        first_id: data[0]?.id ?? null,
        last_id: data.at(-1)?.id ?? null,
        has_more: start + limit < order.length
      })
    }
    const batchRoute = /^\/batches\/([^/]+)(\/cancel)?$/.exec(path)
    if (batchRoute) {
      const m = batchRoute
      const batch = batches.get(m[1]!)
      if (!batch)
        return send(404, error(`No batch found with id '${m[1]}'.`, "invalid_request_error", "batch_id"))
      if (m[2] && method === "POST") {
        const status = view(batch).status
        if (["completed", "failed", "expired", "cancelled"].includes(status))
          return send(409, error(`Cannot cancel a batch with status '${status}'.`))
        if (batch.cancelledMs === undefined) batch.cancelledMs = Date.now()
      }
      return send(200, view(batch))
    }
    send(404, error(`Invalid URL (${method} ${url.pathname})`))
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      res.writeHead(500, { "content-type": "application/json" })
      res.end(JSON.stringify(error(String(e), "server_error")))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    batches,
    files,
    inject: (method, path, ...list) => {
      for (const fault of list) faults.push({ method, path, fault })
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
