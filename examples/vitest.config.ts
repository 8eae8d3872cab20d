import { defineConfig } from "vitest/config"

export default defineConfig({
  ssr: { resolve: { conditions: ["@batchkit/source"] } },
  test: {
    name: "examples",
    include: ["test/**/*.test.ts", "readme/**/*.test.ts"],
    reporters: ["default", "json"],
    outputFile: { json: ".vitest/results.json" }
  }
})
