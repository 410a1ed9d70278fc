// The vitest projects of this monorepo; vitest.config.ts passes them on as `test.projects`.
export default ["packages/*/vitest.config.ts"]
