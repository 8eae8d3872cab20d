import { defineConfig } from "vitest/config"

export default defineConfig({
  ssr: { resolve: { conditions: ["@batchkit/source"] } },
  test: {
    name: "node",
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/postgres-setup.ts"],
    reporters: ["default", "json"],
    outputFile: { json: ".vitest/results.json" }
  }
})
