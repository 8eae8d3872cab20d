/**
 * `--provider`: the dry run applies the provider's endpoints and limits (a file good for one is
 * told apart from the other, with the line and the reason, nothing sent), and `batchkit` runs a
 * batch end to end against the emulator playing Azure with Azure's own variables.
 */
import { Provider } from "@batchkit/core"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { cli, hooked, scratch, start } from "./support/jobs.js"

const azureKey = "azure-cli-key-0000000000"
let azure: Awaited<ReturnType<typeof hooked>>
beforeAll(async () => {
  azure = await hooked({ apiKey: azureKey, speed: 500, provider: Provider.azure })
})
afterAll(() => azure.server.close())

const file = (dir: string, name: string, url: string, n = 3) => {
  writeFileSync(
    join(dir, name),
    `${Array.from({ length: n }, (_, i) =>
      JSON.stringify({
        custom_id: `t${i}`,
        method: "POST",
        url,
        body: { model: "my-deployment", messages: [] }
      })
    ).join("\n")}\n`
  )
  return name
}

/** Azure's variables, as its SDK reads them; none of OpenAI's key. */
const azureEnv = () => ({
  OPENAI_API_KEY: "",
  OPENAI_BASE_URL: "",
  AZURE_OPENAI_API_KEY: azureKey,
  AZURE_OPENAI_ENDPOINT: azure.server.url.replace(/\/openai$/, ""),
  OPENAI_API_VERSION: "2024-10-21"
})

describe("batchkit --provider", { timeout: 60_000 }, () => {
  it("the dry run tells an Azure file from an OpenAI one, with the line and the reason, sending nothing", async () => {
    const dir = scratch()
    let requests = 0
    azure.box.hook = (_r, when) => {
      if (when === "before") requests++
    }
    const azureFile = file(dir, "azure.jsonl", "/chat/completions")
    const openaiFile = file(dir, "openai.jsonl", "/v1/chat/completions")
    const asOpenai = await cli(azure.server, ["submit", azureFile, "--dry-run"], dir)
    expect(asOpenai.code).toBe(2)
    expect(asOpenai.stderr).toContain(
      "azure.jsonl:1: url /chat/completions is not a batch endpoint of openai (did you mean /v1/chat/completions?)"
    )
    const asAzure = await cli(
      azure.server,
      ["submit", azureFile, "--dry-run", "--provider", "azure"],
      dir,
      azureEnv()
    )
    expect(asAzure.code, asAzure.stderr).toBe(0)
    const wrongForAzure = await cli(
      azure.server,
      ["submit", openaiFile, "--dry-run", "--provider", "azure"],
      dir,
      azureEnv()
    )
    expect(wrongForAzure.code).toBe(2)
    expect(wrongForAzure.stderr).toContain(
      "openai.jsonl:1: url /v1/chat/completions is not a batch endpoint of azure (did you mean /chat/completions?)"
    )
    // the job planner too
    const run = await cli(
      azure.server,
      ["run", openaiFile, "--dry-run", "--provider", "azure"],
      dir,
      azureEnv()
    )
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/openai\.jsonl:1: .*\/chat\/completions/)
    expect(requests).toBe(0)
  })

  it("submit --wait runs a batch against Azure with AZURE_OPENAI_* and --header, the key in api-key", async () => {
    const dir = scratch()
    const seen: Array<Readonly<Record<string, string>>> = []
    azure.box.hook = (r, when) => {
      if (when === "before") seen.push(r.headers)
    }
    const name = file(dir, "in.jsonl", "/chat/completions", 5)
    const r = await cli(
      azure.server,
      ["submit", name, "--provider", "azure", "--header", "X-Team=search", "--wait", "-o", "out.jsonl"],
      dir,
      azureEnv()
    )
    expect(r.code, r.stderr).toBe(0)
    const lines = readFileSync(join(dir, "out.jsonl"), "utf8").trim().split("\n")
    expect(lines.map((l) => JSON.parse(l).custom_id)).toEqual(["t0", "t1", "t2", "t3", "t4"])
    expect(seen.length).toBeGreaterThan(2)
    expect(seen.every((h) => h["api-key"] === azureKey && h["x-team"] === "search" && !h.authorization)).toBe(
      true
    )
    expect(r.stderr + r.stdout).not.toContain(azureKey)
  })

  it("a job runs on Azure: run --provider azure shards Azure's lines and collects every result", async () => {
    const dir = scratch()
    azure.box.hook = () => {}
    const name = file(dir, "in.jsonl", "/chat/completions", 7)
    const r = await cli(
      azure.server,
      ["run", name, "--provider", "azure", "--max-requests", "3", "-o", "out.jsonl", "--state", "s.db"],
      dir,
      azureEnv()
    )
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/7 requests in 3 shards/)
    const lines = readFileSync(join(dir, "out.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
    expect(lines.map((l) => l.custom_id)).toEqual(["t0", "t1", "t2", "t3", "t4", "t5", "t6"])
    expect(lines.every((l) => l.outcome === "succeeded")).toBe(true)
  })

  it("batchkit emulator --provider azure serves Azure's paths, api-version and api-key", async () => {
    const dir = scratch()
    const emulator = start(azure.server, ["emulator", "--provider", "azure", "--api-key", "emu-key"], dir)
    try {
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (/listening on/.test(emulator.stderr())) {
            clearInterval(t)
            resolve()
          }
        }, 20)
      })
      const url = /listening on (\S+)/.exec(emulator.stderr())![1]!
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/openai$/)
      const ok = await fetch(`${url}/batches?api-version=2024-10-21`, { headers: { "api-key": "emu-key" } })
      expect(ok.status).toBe(200)
      const v1 = await fetch(`${url}/v1/batches`, { headers: { "api-key": "emu-key" } })
      expect(v1.status).toBe(200)
      expect((await fetch(`${url}/batches`, { headers: { "api-key": "emu-key" } })).status).toBe(404)
      expect((await fetch(`${url}/v1/batches`, { headers: { "api-key": "other" } })).status).toBe(401)
    } finally {
      emulator.child.kill("SIGINT")
      await emulator.done
    }
  })

  it("an Azure setup that cannot work is bad usage before any request", async () => {
    const dir = scratch()
    const name = file(dir, "in.jsonl", "/chat/completions")
    const noVersion = await cli(azure.server, ["submit", name, "--provider", "azure"], dir, {
      ...azureEnv(),
      OPENAI_API_VERSION: ""
    })
    expect(noVersion.code).toBe(2)
    expect(noVersion.stderr).toMatch(/needs an api-version \(--api-version/)
    const noKey = await cli(azure.server, ["list", "--provider", "azure"], dir, {
      ...azureEnv(),
      AZURE_OPENAI_API_KEY: ""
    })
    expect(noKey.code).toBe(2)
    expect(noKey.stderr).toContain("no API key: set AZURE_OPENAI_API_KEY")
    const badHeader = await cli(
      azure.server,
      ["list", "--provider", "azure", "--header", "api-key=x"],
      dir,
      azureEnv()
    )
    expect(badHeader.code).toBe(2)
    expect(badHeader.stderr).toContain("--header api-key is set by batchkit")
  })
})
