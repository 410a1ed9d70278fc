import { defineProject } from "vitest/config"
import { resolveSources } from "../../vitest.shared.ts"

export default defineProject({
  ...resolveSources,
  test: {
    name: "core",
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000
  }
})
