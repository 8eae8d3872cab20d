// Sums the JSON reports every package's vitest wrote and prints "N passed, N failed".
import { existsSync, readdirSync, readFileSync } from "node:fs"

let passed = 0
let failed = 0
const packages = new URL("../packages/", import.meta.url)
for (const name of readdirSync(packages)) {
  const file = new URL(`${name}/.vitest/results.json`, packages)
  if (!existsSync(file)) continue
  const report = JSON.parse(readFileSync(file, "utf8"))
  passed += report.numPassedTests
  failed += report.numFailedTests
  // a test file that failed to load has no tests in it but is a failure all the same
  failed += report.testResults.filter((r) => r.status === "failed" && r.assertionResults.length === 0).length
}
console.log(`${passed} passed, ${failed} failed`)
