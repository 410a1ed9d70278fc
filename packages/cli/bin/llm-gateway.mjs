#!/usr/bin/env node
// The published binary runs the compiled JavaScript in dist/. Inside the repository, run the
// sources without a build step with `pnpm cli …` (see the README).
try {
  await import("../dist/bin.js")
} catch (error) {
  if (error?.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes("dist/bin.js")) {
    process.stderr.write("llm-gateway: this checkout is not built; run `pnpm build`, or use `pnpm cli` to run the sources\n")
    process.exit(1)
  }
  throw error
}
