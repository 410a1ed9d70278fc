// Type-checks every code example users may copy: `@example` blocks in the packages' doc
// comments and ```ts blocks in README.md and docs/. Each example becomes its own module inside
// packages/cli (which depends on every package), checked with the project's strict settings.
import { spawnSync } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"

const root = new URL("..", import.meta.url).pathname
const outDir = join(root, "packages/cli/.examples")

const walk = (dir, test) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === "node_modules" ? [] : walk(path, test)
    return test(entry.name) ? [path] : []
  })

const examples = []
for (const pkg of ["core", "simulator", "cli"]) {
  for (const file of walk(join(root, "packages", pkg, "src"), (name) => name.endsWith(".ts"))) {
    const lines = readFileSync(file, "utf8").split("\n")
    for (let i = 0; i < lines.length; i++) {
      if (!/^\s*\*\s*@example\s*$/.test(lines[i])) continue
      const body = []
      let j = i + 1
      for (; j < lines.length; j++) {
        const line = lines[j]
        if (/^\s*\*\//.test(line) || /^\s*\*\s*@\w+/.test(line)) break
        body.push(line.replace(/^\s*\* ?/, ""))
      }
      const code = body.join("\n").replace(/^```\w*\n?|```\s*$/gm, "")
      examples.push({ from: `${relative(root, file)}:${i + 1}`, code })
      i = j
    }
  }
}
const markdown = [join(root, "README.md"), ...walk(join(root, "docs"), (name) => name.endsWith(".md"))]
for (const file of markdown) {
  const text = readFileSync(file, "utf8")
  for (const match of text.matchAll(/```ts\n([\s\S]*?)```/g)) {
    const line = text.slice(0, match.index).split("\n").length
    examples.push({ from: `${relative(root, file)}:${line}`, code: match[1] })
  }
}

rmSync(outDir, { recursive: true, force: true })
mkdirSync(outDir, { recursive: true })
const sources = new Map()
examples.forEach((example, i) => {
  const name = `example${i}.ts`
  sources.set(name, example.from)
  writeFileSync(join(outDir, name), `${example.code}\nexport {}\n`)
})
writeFileSync(
  join(outDir, "tsconfig.json"),
  JSON.stringify({
    extends: "../../../tsconfig.base.json",
    compilerOptions: { noEmit: true, noUnusedLocals: false, noUnusedParameters: false },
    include: ["*.ts"]
  })
)
const tsc = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", outDir], {
  encoding: "utf8"
})
const output = (tsc.stdout + tsc.stderr).replace(/example(\d+)\.ts/g, (_, n) => sources.get(`example${n}.ts`) ?? _)
rmSync(outDir, { recursive: true, force: true })
if (tsc.status !== 0) {
  console.error(`Code examples that do not compile:\n${output}`)
  process.exit(1)
}
console.log(`examples: ${examples.length} code examples compile`)
