import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Schema, Stream } from "effect"
import { readFileSync } from "node:fs"
import { Batch, BatchFile, BatchLine } from "../src/index.js"
import * as Fast from "../src/internal/fast.js"
import * as Jsonl from "../src/internal/jsonl.js"

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8"))
const fixtureText = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8")
const decodeBatch = Schema.decodeUnknownSync(Batch.Batch)

describe("Batch", () => {
  it("decodes the spec's create, retrieve and cancel examples", () => {
    for (const name of [
      "batch.create.response.json",
      "batch.retrieve.response.json",
      "batch.cancel.response.json"
    ]) {
      const batch = decodeBatch(fixture(name))
      expect(batch).toBeInstanceOf(Batch.Batch)
      expect(batch.object).toBe("batch")
    }
    const created = decodeBatch(fixture("batch.create.response.json"))
    expect(created.status).toBe("validating")
    expect(created.expires_at).toBeNull()
    expect(created.request_counts).toEqual({ total: 0, completed: 0, failed: 0 })
    expect(created.metadata).toEqual({ customer_id: "user_123456789", batch_description: "Nightly eval job" })
    expect(created.isTerminal).toBe(false)
  })

  it("decodes model and usage", () => {
    const batch = decodeBatch(fixture("batch.with-usage.composed.json"))
    expect(typeof batch.model).toBe("string")
    expect(batch.usage?.total_tokens).toBeTypeOf("number")
    expect(batch.usage?.input_tokens_details?.cached_tokens).toBeTypeOf("number")
    expect(batch.metadata).toBeNull()
  })

  it("accepts every optional field absent", () => {
    const batch = decodeBatch({
      id: "batch_1",
      object: "batch",
      endpoint: "/v1/embeddings",
      input_file_id: "file-1",
      completion_window: "24h",
      status: "in_progress",
      created_at: 1
    })
    expect(batch.output_file_id).toBeUndefined()
    expect(Option.isNone(batch.outputFileId)).toBe(true)
  })

  it("accepts every optional field null", () => {
    const batch = decodeBatch({
      id: "batch_1",
      object: "batch",
      endpoint: "/v1/embeddings",
      input_file_id: "file-1",
      completion_window: "24h",
      status: "completed",
      created_at: 1,
      model: null,
      errors: null,
      output_file_id: null,
      error_file_id: "",
      in_progress_at: null,
      expires_at: null,
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: null,
      usage: null,
      metadata: null
    })
    expect(batch.isTerminal).toBe(true)
    expect(Option.isNone(batch.errorFileId)).toBe(true)
  })

  it("tolerates fields it does not know", () => {
    const batch = decodeBatch({
      ...(fixture("batch.retrieve.response.json") as object),
      brand_new_field: { x: 1 },
      output_expires_after: { anchor: "created_at", seconds: 3600 }
    })
    expect(batch.id).toBe("batch_abc123")
  })

  it("decodes validation errors with line numbers", () => {
    const batch = decodeBatch({
      ...(fixture("batch.create.response.json") as object),
      status: "failed",
      errors: { object: "list", data: [{ code: "invalid_json_line", message: "bad", param: null, line: 3 }] }
    })
    expect(batch.errors?.data?.[0]?.line).toBe(3)
  })

  it("decodes the list example", () => {
    const page = Schema.decodeUnknownSync(Batch.BatchPage)(fixture("batch.list.response.json"))
    expect(page.has_more).toBe(true)
    expect(page.data[0]).toBeInstanceOf(Batch.Batch)
  })

  it("rejects a status it does not know", () => {
    expect(() =>
      decodeBatch({ ...(fixture("batch.create.response.json") as object), status: "paused" })
    ).toThrow()
  })

  it("isTerminal holds for exactly the four terminal statuses", () => {
    const terminal = Batch.BatchStatus.literals.filter((s) => Batch.isTerminal(s))
    expect(terminal.sort()).toEqual(["cancelled", "completed", "expired", "failed"])
  })
})

describe("CreateBatchParams", () => {
  const decode = Schema.decodeUnknownEither(Batch.CreateBatchParams)
  it("defaults completion_window to 24h and accepts the spec's request", () => {
    const params = Schema.decodeUnknownSync(Batch.CreateBatchParams)(fixture("batch.create.request.json"))
    expect(params.completion_window).toBe("24h")
    expect(
      Schema.decodeUnknownSync(Batch.CreateBatchParams)({ input_file_id: "f", endpoint: "/v1/embeddings" })
        .completion_window
    ).toBe("24h")
  })
  it("accepts any /v1 path as endpoint but not other strings", () => {
    expect(decode({ input_file_id: "f", endpoint: "/v1/some/new-thing" })._tag).toBe("Right")
    expect(decode({ input_file_id: "f", endpoint: "chat" })._tag).toBe("Left")
    expect(decode({ input_file_id: "f", endpoint: "/v1/../admin" })._tag).toBe("Left")
  })
  it("checks completion_window, metadata limits and output_expires_after", () => {
    // a duration's shape here; which windows a provider takes is checkCreate's (test/provider.test.ts)
    expect(decode({ input_file_id: "f", endpoint: "/v1/embeddings", completion_window: "48h" })._tag).toBe(
      "Right"
    )
    expect(decode({ input_file_id: "f", endpoint: "/v1/embeddings", completion_window: "soon" })._tag).toBe(
      "Left"
    )
    const pairs = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]))
    expect(decode({ input_file_id: "f", endpoint: "/v1/embeddings", metadata: pairs(16) })._tag).toBe("Right")
    expect(decode({ input_file_id: "f", endpoint: "/v1/embeddings", metadata: pairs(17) })._tag).toBe("Left")
    expect(
      decode({ input_file_id: "f", endpoint: "/v1/embeddings", metadata: { ["k".repeat(65)]: "v" } })._tag
    ).toBe("Left")
    expect(
      decode({ input_file_id: "f", endpoint: "/v1/embeddings", metadata: { k: "v".repeat(513) } })._tag
    ).toBe("Left")
    for (const [seconds, ok] of [
      [3599, false],
      [3600, true],
      [2592000, true],
      [2592001, false]
    ] as const) {
      expect(
        decode({
          input_file_id: "f",
          endpoint: "/v1/embeddings",
          output_expires_after: { anchor: "created_at", seconds }
        })._tag
      ).toBe(ok ? "Right" : "Left")
    }
  })
  it("ListBatchesParams takes limit 1..100", () => {
    const decodeList = Schema.decodeUnknownEither(Batch.ListBatchesParams)
    expect(decodeList({ limit: 0 })._tag).toBe("Left")
    expect(decodeList({ limit: 1 })._tag).toBe("Right")
    expect(decodeList({ limit: 100 })._tag).toBe("Right")
    expect(decodeList({ limit: 101 })._tag).toBe("Left")
  })
})

describe("BatchFile", () => {
  it("decodes the spec's file examples", () => {
    const file = Schema.decodeUnknownSync(BatchFile.FileObject)(fixture("file.upload.response.json"))
    expect(file.bytes).toBe(120000)
    expect(
      Schema.decodeUnknownSync(BatchFile.FileObject)(fixture("file.retrieve.response.json")).object
    ).toBe("file")
    expect(
      Schema.decodeUnknownSync(BatchFile.FilePage)(fixture("file.list.response.json")).data.length
    ).toBeGreaterThan(0)
    expect(
      Schema.decodeUnknownSync(BatchFile.FileDeleted)(fixture("file.delete.response.json")).deleted
    ).toBe(true)
  })
  it("decodes batch_output files", () => {
    const file = Schema.decodeUnknownSync(BatchFile.FileObject)({
      id: "file-o",
      object: "file",
      bytes: 1,
      created_at: 1,
      filename: "batch_out.jsonl",
      purpose: "batch_output",
      status: "processed",
      expires_at: null
    })
    expect(file.purpose).toBe("batch_output")
  })
})

describe("BatchLine", () => {
  const outcomes = (text: string) =>
    Stream.make(new TextEncoder().encode(text)).pipe(
      BatchLine.decodeOutcomes("test"),
      Stream.runCollect,
      Effect.map((c) => Array.from(c))
    )

  it.effect("turns output and error lines into typed outcomes", () =>
    Effect.gen(function* () {
      const all = yield* outcomes(
        fixtureText("batch-output.sample.jsonl") + fixtureText("batch-error.sample.jsonl")
      )
      expect(all.map((o) => [o.customId, o._tag])).toEqual([
        ["request-2", "Succeeded"],
        ["request-1", "Succeeded"],
        ["request-3", "Failed"],
        ["request-4", "Expired"]
      ])
      const failed = all[2] as BatchLine.Failed
      expect(failed.statusCode).toBe(400)
      expect(failed.error?.param).toBe("max_tokens")
      expect(failed.error?.code).toBe("invalid_value")
      const ok = all[0] as BatchLine.Succeeded
      expect((ok.body as { object: string }).object).toBe("chat.completion")
      expect(ok.requestId).toBe("req_c187b3")
    })
  )

  it.effect("names cancelled and other batch errors", () =>
    Effect.gen(function* () {
      const all = yield* outcomes(
        [
          '{"id":"r1","custom_id":"a","response":null,"error":{"code":"batch_cancelled","message":"cancelled"}}',
          '{"id":"r2","custom_id":"b","response":null,"error":{"code":"something_new","message":"?"}}',
          '{"custom_id":"c","response":{"status_code":500,"request_id":"q","body":{"error":{"message":"boom","type":"server_error","param":null,"code":null}}}}'
        ].join("\r\n")
      )
      expect(all.map((o) => BatchLine.outcomeName(o))).toEqual(["cancelled", "errored", "failed"])
      expect((all[1] as BatchLine.Errored).code).toBe("something_new")
    })
  )

  it.effect("joins lines split across chunks and skips blank lines", () =>
    Effect.gen(function* () {
      const text = `${fixtureText("batch-output.sample.jsonl")}\n\n`
      const bytes = new TextEncoder().encode(text)
      const chunks = Array.from({ length: Math.ceil(bytes.length / 7) }, (_, i) =>
        bytes.slice(i * 7, i * 7 + 7)
      )
      const all = yield* Stream.fromIterable(chunks).pipe(BatchLine.decodeOutcomes("t"), Stream.runCollect)
      expect(all.length).toBe(2)
    })
  )

  it.effect("decodes multi-byte characters cut by any chunk boundary, a BOM and CRLF", () =>
    Effect.gen(function* () {
      const line = (id: string, content: string) =>
        JSON.stringify({
          id: `r-${id}`,
          custom_id: id,
          response: { status_code: 200, body: { content } },
          error: null
        })
      const text = `\uFEFF${line("a", "héllo wörld ✓ 𝄞 日本")}\r\n\r\n${line("b", "ünïcode")}`
      const bytes = new TextEncoder().encode(text)
      for (let cut = 1; cut < bytes.length; cut++) {
        const all = yield* Stream.make(bytes.slice(0, cut), bytes.slice(cut)).pipe(
          BatchLine.decodeOutcomes("t"),
          Stream.runCollect
        )
        const bodies = Array.from(
          all,
          (o) => ((o as BatchLine.Succeeded).body as { content: string }).content
        )
        expect(bodies).toEqual(["héllo wörld ✓ 𝄞 日本", "ünïcode"])
        expect(Array.from(all, (o) => o.customId)).toEqual(["a", "b"])
      }
    })
  )

  it.effect("delivers the lines before a broken one, then fails without reading further", () =>
    Effect.gen(function* () {
      const good = fixtureText("batch-output.sample.jsonl")
      let pulled = 0
      const chunks = [good, "not json\n", good, good].map((t) => new TextEncoder().encode(t))
      const seen: Array<string> = []
      const error = yield* Stream.fromIterable(chunks).pipe(
        Stream.rechunk(1),
        Stream.tap(() => Effect.sync(() => pulled++)),
        BatchLine.decodeOutcomes("t"),
        Stream.runForEach((o) => Effect.sync(() => seen.push(o.customId))),
        Effect.flip
      )
      expect(error.message).toContain("line 3 is not JSON")
      expect(seen).toEqual(["request-2", "request-1"])
      expect(pulled).toBeLessThan(4)
    })
  )

  it.effect("fails with the line number on a broken line", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        outcomes(`${fixtureText("batch-output.sample.jsonl")}{"custom_id": \n`)
      )
      expect(error._tag).toBe("ResponseDecodeError")
      expect(error.message).toContain("line 3")
    })
  )

  it.effect("validates input files with line numbers", () =>
    Effect.gen(function* () {
      const lines = [
        '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m1"}}',
        "not json",
        '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m1"}}',
        '{"custom_id":"b","method":"POST","url":"/v1/embeddings","body":{"model":"m1"}}',
        '{"custom_id":"c","method":"POST","url":"/v1/chat/completions","body":{"model":"m2"}}',
        '{"custom_id":"d","method":"GET","url":"/v1/chat/completions","body":{}}'
      ]
      const summary = yield* BatchLine.validateInput(Stream.make(new TextEncoder().encode(lines.join("\n"))))
      expect(summary.lines).toBe(6)
      expect(summary.endpoint).toBe("/v1/chat/completions")
      expect(summary.model).toBe("m1")
      expect(summary.problems.map((p) => [p.line, p.code])).toEqual([
        [2, "invalid_json_line"],
        [3, "duplicate_custom_id"],
        [4, "url_mismatch"],
        [5, "model_mismatch"],
        [6, "invalid_line"]
      ])
      const empty = yield* BatchLine.validateInput(Stream.empty)
      expect(empty.problems.map((p) => p.code)).toEqual(["empty_file"])
      const clean = yield* BatchLine.validateInput(
        Stream.make(new TextEncoder().encode(fixtureText("batch-input.sample.jsonl")))
      )
      expect(clean.problemCount).toBe(0)
      expect(clean.lines).toBe(3)
      expect(clean.customIds).toEqual(["request-1", "request-2", "request-3"])
      // a duplicate is listed once; a line that is not a request line (d) is not listed
      expect(summary.customIds).toEqual(["a", "b", "c"])
    })
  )

  it.effect(
    "splits lines the same whatever the chunks: multi-byte text, CRLF, blank lines, invalid UTF-8",
    () =>
      Effect.gen(function* () {
        // a line at a time, from the whole text: what the chunked reader must give
        const reference = (bytes: Uint8Array, strict: boolean) => {
          const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
          const out: Array<unknown> = []
          let start = 0
          let no = 0
          while (start < bytes.length) {
            let nl = bytes.indexOf(10, start)
            if (nl === -1) nl = bytes.length
            no++
            let end = nl
            if (end > start && bytes[end - 1] === 13) end--
            const raw = bytes.subarray(start, end)
            if (strict) {
              try {
                out.push([fatal.decode(raw), no, nl - start + 1])
              } catch {
                out.push(["invalid", no])
              }
            } else {
              const text = new TextDecoder("utf-8", { ignoreBOM: no !== 1 }).decode(raw)
              if (text.trim() !== "") out.push([text, no, nl - start + 1])
            }
            start = nl + 1
          }
          return out
        }
        const enc = new TextEncoder()
        const pieces = [
          enc.encode('{"a":"héllo ✓ 𝄞 日本"}\n'),
          enc.encode('{"b":1}\r\n'),
          enc.encode("\n"),
          enc.encode("   \n"),
          enc.encode("\r\n"),
          new Uint8Array([...enc.encode('{"c":"x'), 0xff, ...enc.encode('"}\n')]),
          new Uint8Array([...enc.encode('{"d":"'), 0xe2, 0x82, ...enc.encode('"}\n')]),
          enc.encode('{"e":"ünïcode"}')
        ]
        let seed = 7
        const random = (n: number) => {
          seed = (seed * 1103515245 + 12345) % 2 ** 31
          return seed % n
        }
        for (let round = 0; round < 200; round++) {
          const parts = Array.from({ length: 1 + random(12) }, () => pieces[random(pieces.length)]!)
          if (random(3) === 0) parts.unshift(enc.encode("\uFEFF"))
          const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
          let offset = 0
          for (const p of parts) {
            bytes.set(p, offset)
            offset += p.length
          }
          const chunks: Array<Uint8Array> = []
          for (let at = 0; at < bytes.length; ) {
            const size = 1 + random(random(2) === 0 ? 8 : 80)
            chunks.push(bytes.slice(at, at + size))
            at += size
          }
          for (const strict of [true, false]) {
            const got: Array<unknown> = []
            yield* Stream.runDrain(
              Jsonl.lines(Stream.fromIterable(chunks), (text, no, size) => void got.push([text, no, size]), {
                strict,
                onInvalidUtf8: (no) => void got.push(["invalid", no])
              })
            )
            expect(got).toEqual(reference(bytes, strict))
          }
        }
      })
  )

  it.effect("validation refuses what the API refuses: invalid UTF-8, a BOM, blank lines; CRLF passes", () =>
    Effect.gen(function* () {
      const enc = new TextEncoder()
      const req = (id: string, url = "/v1/chat/completions") =>
        JSON.stringify({ custom_id: id, method: "POST", url, body: { model: "m", messages: [] } })
      const check = (...chunks: Array<Uint8Array>) => BatchLine.validateInput(Stream.fromIterable(chunks))
      const bad = new Uint8Array([...enc.encode(`${req("a")}\n{"custom_id":"c`), 0xff, ...enc.encode(`"}\n`)])
      const utf8 = yield* check(bad)
      expect(utf8.problems.map((p) => [p.line, p.code])).toEqual([[2, "invalid_encoding"]])
      // an invalid byte cut across chunks is found too
      const cut = yield* check(bad.slice(0, 40), bad.slice(40))
      expect(cut.problems.map((p) => [p.line, p.code])).toEqual([[2, "invalid_encoding"]])
      const bom = yield* check(enc.encode(`\uFEFF${req("a")}\n${req("b")}\n`))
      expect(bom.problems.map((p) => [p.line, p.code])).toEqual([[1, "invalid_json_line"]])
      expect(bom.problems[0]?.message).toContain("byte order mark")
      const blank = yield* check(enc.encode(`${req("a")}\n\n${req("b")}\n  \n`))
      expect(blank.problems.map((p) => [p.line, p.code])).toEqual([
        [2, "invalid_json_line"],
        [4, "invalid_json_line"]
      ])
      expect(blank.lines).toBe(2)
      const crlf = yield* check(enc.encode(`${req("a")}\r\n${req("b")}\r\n`))
      expect(crlf.problemCount).toBe(0)
      expect(crlf.customIds).toEqual(["a", "b"])
    })
  )

  it.effect("validation refuses an endpoint the API does not take, with the likely one", () =>
    Effect.gen(function* () {
      const enc = new TextEncoder()
      const req = (id: string, url: string) =>
        JSON.stringify({ custom_id: id, method: "POST", url, body: { model: "m" } })
      const azure = yield* BatchLine.validateInput(
        Stream.make(enc.encode(`${req("a", "/chat/completions")}\n${req("b", "/chat/completions")}\n`))
      )
      expect(azure.problems.map((p) => [p.line, p.code])).toEqual([[1, "unknown_endpoint"]])
      expect(azure.problems[0]?.message).toContain("did you mean /v1/chat/completions?")
      const made = yield* BatchLine.validateInput(Stream.make(enc.encode(`${req("a", "/v1/foo/bar")}\n`)))
      expect(made.problems.map((p) => [p.line, p.code])).toEqual([[1, "unknown_endpoint"]])
      const option = yield* BatchLine.validateInput(Stream.make(enc.encode(`${req("a", "/v1/foo")}\n`)), {
        endpoint: "/v1/foo"
      })
      expect(option.problems.map((p) => [p.line, p.code])).toEqual([[null, "unknown_endpoint"]])
      const anyEndpoint = yield* BatchLine.validateInput(
        Stream.make(enc.encode(`${req("a", "/v1/foo")}\n`)),
        {
          endpoints: "any"
        }
      )
      expect(anyEndpoint.problemCount).toBe(0)
      const duplicate = yield* BatchLine.validateInput(
        Stream.make(enc.encode(`${req("a", "/v1/embeddings")}\n${req("a", "/v1/embeddings")}\n`))
      )
      expect(duplicate.problems[0]?.message).toContain("first on line 1")
    })
  )

  it.effect("encodes values as JSONL", () =>
    Effect.gen(function* () {
      const text = yield* Stream.make({ a: 1 }, { b: "x" }).pipe(
        BatchLine.encodeLines,
        Stream.decodeText(),
        Stream.mkString
      )
      expect(text).toBe('{"a":1}\n{"b":"x"}\n')
    })
  )
})

describe("fast decoding agrees with the schemas", () => {
  const slowBatch = Schema.decodeUnknownEither(Batch.Batch, { onExcessProperty: "preserve" })
  const base = fixture("batch.create.response.json") as Record<string, unknown>

  it("gives the same value, class instances included, for valid batches", () => {
    const samples = [
      base,
      fixture("batch.retrieve.response.json"),
      fixture("batch.cancel.response.json"),
      fixture("batch.with-usage.composed.json"),
      {
        ...base,
        extra: { nested: true },
        errors: { object: "list", data: [{ code: "x", message: "m", param: null, line: 2 }] }
      },
      {
        id: "b",
        object: "batch",
        endpoint: "/v1/x",
        input_file_id: "f",
        completion_window: "24h",
        status: "failed",
        created_at: 1
      }
    ]
    for (const sample of samples) {
      // the fast decoder takes its input over (it is a JSON.parse of its own in use): each its own copy
      const fast = Fast.batch(structuredClone(sample))
      const slow = slowBatch(structuredClone(sample))
      if (fast._tag !== "Right" || slow._tag !== "Right") throw new Error("both should decode")
      expect(JSON.parse(JSON.stringify(fast.right))).toEqual(JSON.parse(JSON.stringify(slow.right)))
      expect(fast.right).toBeInstanceOf(Batch.Batch)
      if (fast.right.request_counts != null)
        expect(fast.right.request_counts).toBeInstanceOf(Batch.RequestCounts)
      if (fast.right.usage != null) expect(fast.right.usage).toBeInstanceOf(Batch.Usage)
      for (const e of fast.right.errors?.data ?? []) expect(e).toBeInstanceOf(Batch.BatchErrorData)
    }
  })

  it("rejects what the schema rejects, with the schema's message", () => {
    const invalid = [
      { ...base, status: "paused" },
      { ...base, object: "file" },
      { ...base, created_at: "yesterday" },
      { ...base, request_counts: { total: 1 } },
      { ...base, metadata: { k: 1 } },
      { ...base, usage: { input_tokens: 1 } },
      { ...base, errors: { data: [{ line: "3" }] } },
      { ...base, expires_at: "soon" },
      null,
      []
    ]
    for (const sample of invalid) {
      const fast = Fast.batch(sample)
      expect(fast._tag).toBe("Left")
      expect(fast).toEqual(slowBatch(sample))
    }
    expect(
      Fast.batchPage({ object: "list", data: [{ ...base, status: "paused" }], has_more: false })._tag
    ).toBe("Left")
    expect(
      Fast.file({ id: "f", object: "file", bytes: "1", created_at: 1, filename: "a", purpose: "batch" })._tag
    ).toBe("Left")
  })
})
