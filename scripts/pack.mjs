// Builds every package and packs it as npm would publish it (pnpm turns `workspace:` ranges into
// real versions). Prints one JSON object mapping package names to tarball paths.
//   node scripts/pack.mjs <destination>
import { spawnSync } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync } from "node:fs"
import { join, resolve } from "node:path"

const root = new URL("..", import.meta.url).pathname
const destination = resolve(process.argv[2] ?? join(root, "dist-packs"))
mkdirSync(destination, { recursive: true })

const run = (command, args, cwd = root) => {
  const result = spawnSync(command, args, { cwd, encoding: "utf8" })
  if (result.status !== 0) {
    process.stderr.write(`${[command, ...args].join(" ")} failed:\n${result.stdout}${result.stderr}`)
    process.exit(1)
  }
  return result.stdout
}

// pnpm itself when run by pnpm; otherwise the pinned pnpm through npx (the README's way).
const pnpm = (args, cwd) =>
  process.env.npm_execpath?.includes("pnpm")
    ? run(process.execPath, [process.env.npm_execpath, ...args], cwd)
    : run("npx", ["-y", "pnpm@10.34.9", ...args], cwd)

run(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-b", "tsconfig.build.json"])
const tarballs = {}
for (const dir of readdirSync(join(root, "packages"))) {
  const manifest = JSON.parse(readFileSync(join(root, "packages", dir, "package.json"), "utf8"))
  if (manifest.private) continue
  const out = pnpm(["pack", "--pack-destination", destination], join(root, "packages", dir))
  const tarball = out.trim().split("\n").filter((line) => line.endsWith(".tgz")).pop()
  tarballs[manifest.name] = resolve(join(root, "packages", dir), tarball)
}
process.stdout.write(JSON.stringify(tarballs, null, 2) + "\n")
