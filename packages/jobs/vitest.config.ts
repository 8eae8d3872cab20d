import { defineConfig } from "vitest/config"

export default defineConfig({
  ssr: { resolve: { conditions: ["@batchkit/source"] } },
  test: {
    name: "jobs",
    include: ["test/**/*.test.ts"],
    // whole jobs over the simulator: a second or two alone, more beside other suites on 2 cores
    testTimeout: 60_000,
    // the results test measures retained memory, which needs gc()
    poolOptions: { forks: { execArgv: ["--expose-gc"] } },
    reporters: ["default", "json"],
    outputFile: { json: ".vitest/results.json" }
  }
})
