// Runs every vitest project and ends with one plain summary line ("N passed, N failed").
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const dir = mkdtempSync(join(tmpdir(), "llm-gateway-test-"))
const report = join(dir, "vitest.json")
const run = spawnSync(
  process.execPath,
  [
    "node_modules/vitest/vitest.mjs",
    "run",
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${report}`,
    ...process.argv.slice(2)
  ],
  { stdio: "inherit" }
)
let summary = "0 passed, 0 failed"
let failed = run.status !== 0
try {
  const result = JSON.parse(readFileSync(report, "utf8"))
  const skipped = result.numPendingTests + result.numTodoTests
  // A test file that failed without a failing test (it could not load) counts as a failure too.
  const brokenFiles = result.testResults.filter((file) =>
    file.status === "failed" && !file.assertionResults.some((test) => test.status === "failed")
  ).length
  const failedCount = result.numFailedTests + brokenFiles
  summary = `${result.numPassedTests} passed, ${failedCount} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`
  if (result.numTotalTests === 0) failed = true
} catch {
  failed = true
}
rmSync(dir, { recursive: true, force: true })
console.log(summary)
process.exit(failed ? 1 : 0)
