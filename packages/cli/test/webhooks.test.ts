/** batchkit watch with --webhook-listen, woken by the emulator's signed events. */
import { Emulator } from "@batchkit/node"
import { describe, expect, it } from "@effect/vitest"
import { createServer } from "node:net"
import { apiKey, lines, setup } from "./support/cli.js"

const { cli, write, submitted } = setup()
const secret = `whsec_${Buffer.from("a webhook secret for the cli tests").toString("base64")}`

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

describe("batchkit with webhooks", { timeout: 60_000 }, () => {
  it("watch --webhook-listen ends as soon as the batch's event arrives, long before its fallback poll", async () => {
    const port = await freePort()
    const hooked = await Emulator.start({
      apiKey,
      speed: 20,
      webhooks: [{ url: `http://127.0.0.1:${port}/webhooks`, secret }]
    })
    try {
      const batch = await submitted(write("hooked.jsonl", lines(3)), hooked)
      const start = Date.now()
      const run = await cli(
        ["watch", batch.id, "--webhook-listen", `127.0.0.1:${port}`],
        { OPENAI_WEBHOOK_SECRET: secret },
        hooked
      )
      expect(run.code).toBe(0)
      expect(run.stderr).toContain(`receiving batch webhooks on http://127.0.0.1:${port}/webhooks`)
      expect(run.stdout).toMatch(/status\s+completed/)
      // the fallback poll is 30 s out: only the event ends it this soon
      expect(Date.now() - start).toBeLessThan(15_000)
      expect(run.stdout + run.stderr).not.toContain(secret)
    } finally {
      await hooked.close()
    }
  })

  it("--webhook-listen without a secret, or with a bad address, is bad usage", async () => {
    const batch = { id: "batch_1" }
    const noSecret = await cli(["watch", batch.id, "--webhook-listen", "127.0.0.1:9"])
    expect(noSecret.code).toBe(2)
    expect(noSecret.stderr).toContain("--webhook-secret")
    const bad = await cli(["watch", batch.id, "--webhook-listen", "nowhere", "--webhook-secret", secret])
    expect(bad.code).toBe(2)
    expect(bad.stderr).not.toContain(secret)
    const emulator = await cli(["emulator", "--webhook-url", "http://127.0.0.1:9/webhooks"])
    expect(emulator.code).toBe(2)
    expect(emulator.stderr).toContain("--webhook-secret")
  })
})
