// Sums the JSON reports every package's vitest wrote and prints "N passed, N failed".
import { existsSync, readdirSync, readFileSync } from "node:fs"

let passed = 0
let failed = 0
const root = new URL("../", import.meta.url)
const dirs = [...readdirSync(new URL("packages/", root)).map((name) => `packages/${name}`), "examples"]
for (const dir of dirs) {
  const file = new URL(`${dir}/.vitest/results.json`, root)
  if (!existsSync(file)) continue
  const report = JSON.parse(readFileSync(file, "utf8"))
  passed += report.numPassedTests
  failed += report.numFailedTests
  // a test file that failed to load has no tests in it but is a failure all the same
  failed += report.testResults.filter((r) => r.status === "failed" && r.assertionResults.length === 0).length
}
console.log(`${passed} passed, ${failed} failed`)
