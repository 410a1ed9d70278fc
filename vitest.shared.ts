// Settings every vitest project shares: workspace packages resolve to their TypeScript sources
// through the "@llm-gateway/source" export condition, so tests never need a build.
import type { UserConfig } from "vitest/config"

const conditions = ["@llm-gateway/source", "module", "node", "development|production"]

export const resolveSources: Pick<UserConfig, "resolve" | "ssr"> = {
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ["@llm-gateway/source"] } }
}
