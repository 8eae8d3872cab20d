/**
 * A client written from the spec alone (fetch, FormData, JSON): the emulator's whole flow and its
 * answers to bad input, status by status and body by body.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Emulator } from "../src/index.js"

const apiKey = "sk-wire-1111"
let server: Awaited<ReturnType<typeof Emulator.start>>

beforeAll(async () => {
  server = await Emulator.start({ apiKey, speed: 500 })
})
afterAll(() => server.close())

const call = async (
  method: string,
  path: string,
  init: { body?: BodyInit; json?: unknown; key?: string | null } = {}
) => {
  const headers: Record<string, string> = {}
  if (init.key !== null) headers.authorization = `Bearer ${init.key ?? apiKey}`
  if (init.json !== undefined) headers["content-type"] = "application/json"
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers,
    ...(init.body !== undefined
      ? { body: init.body }
      : init.json !== undefined
        ? { body: JSON.stringify(init.json) }
        : {})
  })
  const text = await res.text()
  // biome-ignore lint/suspicious/noExplicitAny: JSON off the wire; the assertions check its shape
  let body: any
  try {
    body = JSON.parse(text)
  } catch {
    body = text
  }
  return { status: res.status, requestId: res.headers.get("x-request-id"), headers: res.headers, body, text }
}

const uploadJsonl = async (text: string, filename = "input.jsonl") => {
  const form = new FormData()
  form.append("purpose", "batch")
  form.append("file", new Blob([text], { type: "application/jsonl" }), filename)
  return call("POST", "/files", { body: form })
}

const line = (i: number) =>
  JSON.stringify({
    custom_id: `c${i}`,
    method: "POST",
    url: "/v1/embeddings",
    body: { model: "text-embedding-3-small", input: `text ${i}` }
  })

const expectError = (r: Awaited<ReturnType<typeof call>>, status: number, param?: string | null) => {
  expect(r.status).toBe(status)
  expect(r.requestId).toMatch(/^req_/)
  expect(Object.keys(r.body.error).sort()).toEqual(["code", "message", "param", "type"])
  expect(typeof r.body.error.message).toBe("string")
  if (param !== undefined) expect(r.body.error.param).toBe(param)
}

describe("the emulator speaks the spec's wire protocol", { timeout: 20_000 }, () => {
  it("runs the whole flow: upload, create, retrieve, list, wait, content; every answer has x-request-id", async () => {
    const file = await uploadJsonl(`${Array.from({ length: 12 }, (_, i) => line(i)).join("\n")}\n`)
    expect(file.status).toBe(200)
    expect(file.body).toMatchObject({ object: "file", purpose: "batch", filename: "input.jsonl" })
    expect(typeof file.body.created_at).toBe("number")
    const created = await call("POST", "/batches", {
      json: { input_file_id: file.body.id, endpoint: "/v1/embeddings", completion_window: "24h" }
    })
    expect(created.status).toBe(200)
    expect(created.body).toMatchObject({
      object: "batch",
      endpoint: "/v1/embeddings",
      status: "validating",
      completion_window: "24h",
      input_file_id: file.body.id
    })
    for (const key of [
      "output_file_id",
      "error_file_id",
      "in_progress_at",
      "expires_at",
      "completed_at",
      "errors",
      "metadata"
    ]) {
      expect(created.body[key]).toBeNull()
    }
    let batch = created.body
    for (let i = 0; i < 200 && batch.status !== "completed"; i++) {
      await new Promise((r) => setTimeout(r, 10))
      batch = (await call("GET", `/batches/${batch.id}`)).body
    }
    expect(batch.status).toBe("completed")
    // a batch made now says so; its 24 h window is 24 h of the emulator's faster clock
    const before = Math.floor(Date.now() / 1000)
    expect(Math.abs(batch.created_at - before)).toBeLessThanOrEqual(5)
    expect(batch.expires_at - batch.created_at).toBeGreaterThanOrEqual(Math.floor(86400 / 500))
    expect(batch.expires_at - batch.created_at).toBeLessThanOrEqual(Math.ceil(86400 / 500))
    const list = await call("GET", "/batches?limit=1")
    expect(list.body).toMatchObject({ object: "list", has_more: expect.any(Boolean) })
    expect(list.body.data.length).toBe(1)
    const content = await call("GET", `/files/${batch.output_file_id}/content`)
    expect(content.status).toBe(200)
    expect(content.requestId).toMatch(/^req_/)
    const outLines = content.text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
    expect(outLines.length).toBe(12)
    expect(outLines[0]).toMatchObject({
      custom_id: expect.any(String),
      error: null,
      response: { status_code: 200 }
    })
    expect(outLines[0].response.body.object).toBe("list")
    const files = await call("GET", "/files?purpose=batch_output&order=asc&limit=10")
    expect(files.body.data.map((f: { id: string }) => f.id)).toContain(batch.output_file_id)
    expect(files.body).toHaveProperty("first_id")
    const deleted = await call("DELETE", `/files/${batch.output_file_id}`)
    expect(deleted.body).toEqual({ id: batch.output_file_id, object: "file", deleted: true })
    expectError(await call("GET", `/files/${batch.output_file_id}`), 404)
  })

  it("answers bad input with the spec's statuses and error bodies", async () => {
    expectError(await call("GET", "/batches", { key: null }), 401, null)
    const wrong = await call("GET", "/batches", { key: "sk-not-this-one" })
    expectError(wrong, 401)
    expect(wrong.body.error.code).toBe("invalid_api_key")
    expect(wrong.text).not.toContain("sk-not-this-one")
    expectError(await call("GET", "/batches/batch_unknown"), 404)
    expectError(await call("POST", "/batches/batch_unknown/cancel"), 404)
    expectError(await call("GET", "/files/file-unknown/content"), 404)
    expectError(await call("GET", "/batches?limit=0"), 400, "limit")
    expectError(await call("GET", "/batches?limit=101"), 400, "limit")
    expectError(await call("GET", "/files?limit=10001"), 400, "limit")
    expectError(await call("POST", "/batches", { body: "{not json" }), 400)
    expectError(
      await call("POST", "/batches", { json: { endpoint: "/v1/embeddings", completion_window: "24h" } }),
      400,
      "input_file_id"
    )
    // a batch file must be UTF-8: the API says so at upload
    const form = new FormData()
    form.append("purpose", "batch")
    form.append("file", new Blob([new Uint8Array([0x7b, 0xff, 0x7d, 0x0a])]), "latin1.jsonl")
    const latin1 = await call("POST", "/files", { body: form })
    expectError(latin1, 400, "file")
    expect(latin1.body.error.message).toBe("Invalid file for Batch API. Must be utf-8 encoded")
    const file = await uploadJsonl(`${line(0)}\n`)
    const params = { input_file_id: file.body.id, endpoint: "/v1/embeddings", completion_window: "24h" }
    expectError(
      await call("POST", "/batches", { json: { ...params, completion_window: "1h" } }),
      400,
      "completion_window"
    )
    expectError(
      await call("POST", "/batches", { json: { ...params, endpoint: "/v2/whatever" } }),
      400,
      "endpoint"
    )
    const metadata = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"]))
    expectError(await call("POST", "/batches", { json: { ...params, metadata } }), 400, "metadata")
    expectError(
      await call("POST", "/batches", {
        json: { ...params, output_expires_after: { anchor: "created_at", seconds: 10 } }
      }),
      400,
      "output_expires_after.seconds"
    )
    expectError(
      await call("POST", "/batches", { json: { ...params, input_file_id: "file-missing" } }),
      404,
      "input_file_id"
    )
    expectError(await uploadJsonl("a,b\n", "data.csv"), 400, "file")
    expectError(await call("POST", "/files", { body: "not multipart" }), 400)
    expectError(await call("GET", "/nothing-here"), 404)
    // cancelling a batch that has ended is a 409 with the status in the message
    const done = await call("POST", "/batches", { json: params })
    let status = done.body.status
    for (let i = 0; i < 200 && status !== "completed"; i++) {
      await new Promise((r) => setTimeout(r, 10))
      status = (await call("GET", `/batches/${done.body.id}`)).body.status
    }
    const conflict = await call("POST", `/batches/${done.body.id}/cancel`)
    expectError(conflict, 409)
    expect(conflict.body.error.message).toBe("Cannot cancel a batch with status 'completed'.")
  })

  it("arms faults through the admin route: 429 with retry-after headers, then disarms them", async () => {
    const armed = await fetch(`${server.url.replace(/\/v1$/, "")}/__admin/faults`, {
      method: "POST",
      body: JSON.stringify([
        { operation: "batches.list", fault: { _tag: "RateLimited", retryAfterMillis: 1500 }, times: 2 }
      ])
    })
    expect(armed.status).toBe(200)
    const limited = await call("GET", "/batches")
    expectError(limited, 429)
    expect(limited.headers.get("retry-after-ms")).toBe("1500")
    expect(limited.headers.get("retry-after")).toBe("2")
    const pending = await (await fetch(`${server.url.replace(/\/v1$/, "")}/__admin/faults`)).json()
    expect(pending.faults).toEqual([
      { operation: "batches.list", fault: { _tag: "RateLimited", retryAfterMillis: 1500 }, times: 1 }
    ])
    await fetch(`${server.url.replace(/\/v1$/, "")}/__admin/faults`, { method: "DELETE" })
    expect((await call("GET", "/batches")).status).toBe(200)
    const bad = await fetch(`${server.url.replace(/\/v1$/, "")}/__admin/faults`, {
      method: "POST",
      body: JSON.stringify({ operation: "nope", fault: { _tag: "X" } })
    })
    expect(bad.status).toBe(400)
  })

  it("lists the API requests it has seen through the admin route, without their headers", async () => {
    const admin = `${server.url.replace(/\/v1$/, "")}/__admin/requests`
    const before = (await (await fetch(admin)).json()).data.length
    await call("GET", "/batches?limit=2")
    const { data } = await (await fetch(admin)).json()
    expect(data.length).toBe(before + 1)
    expect(data.at(-1)).toEqual({ method: "GET", path: "/v1/batches", query: "limit=2" })
    expect(JSON.stringify(data)).not.toContain(apiKey)
  })

  it("hands out ids no other emulator does", async () => {
    const other = await Emulator.start({ apiKey, speed: 500 })
    try {
      const ids = async (url: string) => {
        const form = new FormData()
        form.append("purpose", "batch")
        form.append("file", new Blob([`${line(0)}\n`]), "same.jsonl")
        const file = await (
          await fetch(`${url}/files`, {
            method: "POST",
            headers: { authorization: `Bearer ${apiKey}` },
            body: form
          })
        ).json()
        const batch = await (
          await fetch(`${url}/batches`, {
            method: "POST",
            headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
            body: JSON.stringify({
              input_file_id: file.id,
              endpoint: "/v1/embeddings",
              completion_window: "24h"
            })
          })
        ).json()
        return [file.id, batch.id]
      }
      const [mine, theirs] = [await ids(server.url), await ids(other.url)]
      expect(mine[0]).not.toBe(theirs[0])
      expect(mine[1]).not.toBe(theirs[1])
    } finally {
      await other.close()
    }
  })

  it("resets the connection when told to, before or after acting", async () => {
    const admin = `${server.url.replace(/\/v1$/, "")}/__admin/faults`
    await fetch(admin, {
      method: "POST",
      body: JSON.stringify({ operation: "files.upload", fault: { _tag: "ResetAfter" } })
    })
    const before = (await call("GET", "/files")).body.data.length
    await expect(uploadJsonl(`${line(0)}\n`)).rejects.toThrow()
    expect((await call("GET", "/files")).body.data.length).toBe(before + 1)
    await fetch(admin, {
      method: "POST",
      body: JSON.stringify({ operation: "files.upload", fault: { _tag: "ResetBefore" } })
    })
    await expect(uploadJsonl(`${line(0)}\n`)).rejects.toThrow()
    expect((await call("GET", "/files")).body.data.length).toBe(before + 1)
  })
})
