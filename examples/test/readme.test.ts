/**
 * The README's programs are these files, word for word (checked here), compiled by this
 * package's typecheck and run: the testing example by vitest (readme/simulator.test.ts), the
 * quick-start against the emulator as a user would run it, with OPENAI_BASE_URL.
 */
import { Provider } from "@batchkit/core"
import { Emulator } from "@batchkit/node"
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { copyFileSync, mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))
const readme = readFileSync(here("../../README.md"), "utf8")
const blocks = [...readme.matchAll(/```(?:ts|sh)\n([\s\S]*?)```/g)].map((m) => m[1])

describe("the README's programs", () => {
  for (const name of readdirSync(here("../readme"))) {
    it(`${name} is a block of the README, as written`, () => {
      expect(blocks).toContain(readFileSync(here(`../readme/${name}`), "utf8"))
    })
  }

  it("the job example runs against the emulator: 3 shards, every request back in order", {
    timeout: 60_000
  }, async () => {
    const server = await Emulator.start({ speed: 2000 })
    try {
      const cwd = mkdtempSync(join(tmpdir(), "batchkit-job-"))
      copyFileSync(here("../requests.jsonl"), join(cwd, "requests.jsonl"))
      const tsx = here("../../node_modules/.bin/tsx")
      const { stdout, stderr } = await promisify(execFile)(
        tsx,
        ["--conditions=@batchkit/source", here("../readme/job.ts")],
        { cwd, env: { ...process.env, OPENAI_API_KEY: "sk-readme", OPENAI_BASE_URL: server.url } }
      )
      const logged = `${stdout}${stderr}`
      expect(logged).toContain("300 requests in 3 shards")
      expect(logged).toContain("finished: 300 succeeded")
      const order = [...logged.matchAll(/message=(request-\d+) message=succeeded message=1\b/g)].map(
        (m) => m[1]
      )
      expect(order).toEqual(Array.from({ length: 300 }, (_, i) => `request-${i + 1}`))
    } finally {
      await server.close()
    }
  })

  it("the watchMany example follows every unfinished batch to its end", { timeout: 60_000 }, async () => {
    // slow enough that the batches still run when the program starts, even on a busy machine
    // where tsx takes seconds to start (300 requests: about 20 s)
    const server = await Emulator.start({ speed: 2.5 })
    try {
      const form = new FormData()
      form.append("purpose", "batch")
      form.append("file", new Blob([readFileSync(here("../requests.jsonl"))]), "requests.jsonl")
      const headers = { authorization: "Bearer sk-readme" }
      const file = await (await fetch(`${server.url}/files`, { method: "POST", headers, body: form })).json()
      const ids: Array<string> = []
      for (let i = 0; i < 3; i++) {
        const batch = await (
          await fetch(`${server.url}/batches`, {
            method: "POST",
            headers: { ...headers, "content-type": "application/json" },
            body: JSON.stringify({
              input_file_id: file.id,
              endpoint: "/v1/chat/completions",
              completion_window: "24h"
            })
          })
        ).json()
        ids.push(batch.id)
      }
      const { stdout, stderr } = await promisify(execFile)(
        here("../../node_modules/.bin/tsx"),
        ["--conditions=@batchkit/source", here("../readme/watch-many.ts")],
        { env: { ...process.env, OPENAI_API_KEY: "sk-readme", OPENAI_BASE_URL: server.url } }
      )
      const logged = `${stdout}${stderr}`
      for (const id of ids) expect(logged).toContain(`message=${id} message=completed message=300`)
    } finally {
      await server.close()
    }
  })

  for (const provider of ["openai", "azure", "groq", "compatible"] as const) {
    it(`the providers example runs for ${provider} against the emulator playing it`, {
      timeout: 60_000
    }, async () => {
      const server = await Emulator.start({
        speed: 1000,
        provider: Provider.profiles[provider],
        apiKey: "readme-key"
      })
      try {
        const variables: Record<string, Record<string, string>> = {
          openai: { OPENAI_API_KEY: "readme-key", OPENAI_BASE_URL: server.url },
          azure: {
            AZURE_OPENAI_API_KEY: "readme-key",
            AZURE_OPENAI_ENDPOINT: server.url.replace(/\/openai$/, ""),
            OPENAI_API_VERSION: "2024-10-21"
          },
          groq: { GROQ_API_KEY: "readme-key", GROQ_BASE_URL: server.url },
          compatible: { OPENAI_API_KEY: "readme-key", OPENAI_BASE_URL: server.url }
        }
        const { stdout, stderr } = await promisify(execFile)(
          here("../../node_modules/.bin/tsx"),
          ["--conditions=@batchkit/source", here("../readme/providers.ts")],
          { env: { PATH: process.env.PATH ?? "", BATCHKIT_PROVIDER: provider, ...variables[provider] } }
        )
        expect(`${stdout}${stderr}`).toContain(`${provider}: 0 batches`)
      } finally {
        await server.close()
      }
    })
  }

  it("the quick-start runs against the emulator with OPENAI_BASE_URL", { timeout: 60_000 }, async () => {
    const server = await Emulator.start({ speed: 2000 })
    try {
      const cwd = mkdtempSync(join(tmpdir(), "batchkit-quick-start-"))
      copyFileSync(here("../requests.jsonl"), join(cwd, "requests.jsonl"))
      const tsx = here("../../node_modules/.bin/tsx")
      const { stdout, stderr } = await promisify(execFile)(
        tsx,
        ["--conditions=@batchkit/source", here("../readme/quick-start.ts")],
        { cwd, env: { ...process.env, OPENAI_API_KEY: "sk-readme", OPENAI_BASE_URL: server.url } }
      )
      const logged = `${stdout}${stderr}`
      expect(logged.match(/Succeeded/g)?.length).toBe(300)
    } finally {
      await server.close()
    }
  })
})
