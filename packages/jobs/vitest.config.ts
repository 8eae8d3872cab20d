import { defineConfig } from "vitest/config"

export default defineConfig({
  ssr: { resolve: { conditions: ["@batchkit/source"] } },
  test: {
    name: "jobs",
    include: ["test/**/*.test.ts"],
    // the results test measures retained memory, which needs gc()
    poolOptions: { forks: { execArgv: ["--expose-gc"] } },
    reporters: ["default", "json"],
    outputFile: { json: ".vitest/results.json" }
  }
})
