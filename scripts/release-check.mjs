// Everything short of publishing: versions in lockstep and in the changelog, every package built
// and packed, each tarball's contents checked, and `npm publish --dry-run` on each tarball.
import { spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const root = new URL("..", import.meta.url).pathname
const problems = []
const manifests = readdirSync(join(root, "packages"))
  .map((dir) => JSON.parse(readFileSync(join(root, "packages", dir, "package.json"), "utf8")))
  .filter((manifest) => !manifest.private)
const versions = new Set(manifests.map((manifest) => manifest.version))
if (versions.size !== 1) problems.push(`package versions differ: ${[...versions].join(", ")}`)
const version = manifests[0].version
if (!readFileSync(join(root, "CHANGELOG.md"), "utf8").includes(`\n## ${version}\n`)) {
  problems.push(`CHANGELOG.md has no "## ${version}" section`)
}

const dir = mkdtempSync(join(tmpdir(), "llm-gateway-release-"))
const packed = spawnSync(process.execPath, [join(root, "scripts/pack.mjs"), dir], { encoding: "utf8" })
if (packed.status !== 0) {
  console.error(packed.stderr)
  process.exit(1)
}
const tarballs = JSON.parse(packed.stdout)
for (const [name, tarball] of Object.entries(tarballs)) {
  const files = spawnSync("tar", ["tzf", tarball], { encoding: "utf8" }).stdout.split("\n").filter(Boolean)
  const manifest = JSON.parse(spawnSync("tar", ["xzfO", tarball, "package/package.json"], { encoding: "utf8" }).stdout)
  const check = (ok, message) => ok || problems.push(`${name}: ${message}`)
  check(files.includes("package/README.md"), "no README.md")
  check(files.includes("package/LICENSE"), "no LICENSE")
  check(files.includes("package/dist/index.js") || files.includes("package/dist/main.js"), "no compiled entry point")
  check(!files.some((file) => /\/test\/|\.test\.|tsbuildinfo/.test(file)), "tests or build info in the tarball")
  check(files.some((file) => file.endsWith(".d.ts.map")), "no declaration maps")
  check(!JSON.stringify(manifest).includes("workspace:"), "a workspace: range survived packing")
  for (const [subpath, target] of Object.entries(manifest.exports ?? {})) {
    if (target === null || typeof target === "string") continue
    for (const condition of ["types", "import"]) {
      check(files.includes(`package/${target[condition]?.slice(2)}`), `exports["${subpath}"].${condition} names a missing file`)
    }
  }
  const dry = spawnSync("npm", ["publish", "--dry-run", "--access", "public", tarball], { encoding: "utf8" })
  check(dry.status === 0, `npm publish --dry-run failed:\n${dry.stdout}${dry.stderr}`)
  console.log(`${name}@${manifest.version}: ${files.length} files, npm publish --dry-run ${dry.status === 0 ? "ok" : "FAILED"}`)
}
rmSync(dir, { recursive: true, force: true })
if (problems.length > 0) {
  console.error(`release check failed:\n- ${problems.join("\n- ")}`)
  process.exit(1)
}
console.log(`release check passed: ${Object.keys(tarballs).length} packages at ${version}`)
