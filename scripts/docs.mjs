// Generates the API reference in docs/api with @effect/docgen, one package at a time in
// dependency order (each package's docgen.json says what to read), then writes
// docs/api/README.md, an index of every module page.
//
// docgen's own example check is switched off (DOCGEN_RUN_EXAMPLES=false): it copies each
// `@example` to <outDir>/examples, rewrites imports of the package itself to `../../src` (which
// does not exist under docs/api) and then executes every example with tsx (an example that starts
// the simulator server would never return). scripts/check-examples.mjs type-checks the same
// examples against the sources instead; `pnpm run docs` runs it first (plain `pnpm docs` is
// pnpm's own command that opens a package's home page).
//
// The pages are meant to be read on GitHub, so the Jekyll site files docgen adds (_config.yml,
// index.md, modules/index.md and the front matter of each page) are removed.
import { spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"
import ts from "typescript"

const root = new URL("..", import.meta.url).pathname
const apiDir = join(root, "docs/api")
const docgen = join(root, "node_modules/@effect/docgen/bin.cjs")
const packages = ["core", "simulator", "cli"]

// docgen enforces a description and @since on every export, but not a category; without one an
// export lands in a catch-all group, so check that first.
const uncategorized = []
for (const pkg of packages) {
  const dir = join(root, "packages", pkg, "src")
  for (const file of readdirSync(dir).filter((name) => name.endsWith(".ts") && !["index.ts", "bin.ts"].includes(name))) {
    const path = join(dir, file)
    const source = ts.createSourceFile(path, readFileSync(path, "utf8"), ts.ScriptTarget.Latest, true)
    const seen = new Set()
    for (const statement of source.statements) {
      const modifiers = ts.canHaveModifiers(statement) ? ts.getModifiers(statement) ?? [] : []
      if (!modifiers.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) continue
      const name = ts.isVariableStatement(statement)
        ? statement.declarationList.declarations[0].name.getText(source)
        : statement.name?.getText(source)
      const key = `${ts.isTypeAliasDeclaration(statement) || ts.isInterfaceDeclaration(statement) ? "type " : ""}${name}`
      if (seen.has(key)) continue // an overloaded function is documented on its first signature
      seen.add(key)
      if (!ts.getJSDocTags(statement).some((tag) => tag.tagName.text === "category")) {
        const line = source.getLineAndCharacterOfPosition(statement.getStart(source)).line + 1
        uncategorized.push(`${relative(root, path)}:${line} ${key}`)
      }
    }
  }
}
if (uncategorized.length > 0) {
  console.error(`docs: exports without a @category tag:\n${uncategorized.join("\n")}`)
  process.exit(1)
}

const sections = []
for (const pkg of packages) {
  const cwd = join(root, "packages", pkg)
  const outDir = join(apiDir, pkg)
  rmSync(outDir, { recursive: true, force: true })
  const run = spawnSync(process.execPath, [docgen], {
    cwd,
    stdio: "inherit",
    env: { ...process.env, DOCGEN_RUN_EXAMPLES: "false" }
  })
  if (run.status !== 0) {
    console.error(`docs: docgen failed for packages/${pkg} (see above)`)
    process.exit(run.status ?? 1)
  }
  for (const extra of ["_config.yml", "index.md", "modules/index.md", "examples"]) {
    rmSync(join(outDir, extra), { recursive: true, force: true })
  }
  const manifest = JSON.parse(readFileSync(join(cwd, "package.json"), "utf8"))
  const indexPath = join(cwd, "src/index.ts")
  const index = existsSync(indexPath) ? readFileSync(indexPath, "utf8") : undefined
  const modules = []
  for (const page of readdirSync(join(outDir, "modules")).filter((name) => name.endsWith(".ts.md")).sort()) {
    const path = join(outDir, "modules", page)
    // The front matter: docgen writes `---`, its formatter turns the opening one into `***`.
    const text = readFileSync(path, "utf8").replace(/^(?:---|\*\*\*)\n[\s\S]*?\n---\n\n/, "")
    writeFileSync(path, text)
    const name = page.slice(0, -".ts.md".length)
    const overview = /^## \S+ overview\n\n([\s\S]*?)\n\n/m.exec(text)?.[1].replace(/\s+/g, " ") ?? ""
    // Whole sentences, enough of them to say what the module is for (at least 80 characters).
    const summary = /^[\s\S]{80}?[\s\S]*?[.!?](?=\s|$)/.exec(overview)?.[0] ?? overview
    // A module the package index leaves out (e.g. one that needs an optional peer) is only
    // importable by its own path; say so where readers look for it.
    const own = index !== undefined && !index.includes(`export * as ${name} from`)
      ? ` Import it from \`${manifest.name}/${name}\`; the package index does not re-export it.`
      : ""
    modules.push(`- [${name}](${pkg}/modules/${page})${summary ? `: ${summary}` : ""}${own}`)
  }
  sections.push(`## ${manifest.name}\n\n${manifest.description}\n\n${modules.join("\n")}\n`)
}

writeFileSync(
  join(apiDir, "README.md"),
  `# API reference

Generated from the doc comments by \`pnpm run docs\` (@effect/docgen); do not edit by hand.
\`@llm-gateway/core\` and \`@llm-gateway/simulator\` re-export each of their modules as a
namespace (\`import { Gateway } from "@llm-gateway/core"\`), and each module is also importable
on its own (\`@llm-gateway/core/Gateway\`). \`@llm-gateway/cli\` exports only \`main\` (the
\`llm-gateway\` command); its other modules are listed for contributors. Within a page, exports
are grouped by category: Models, Schemas, Constructors, Layers, Services, Accessors, Errors,
Config, and so on.

${sections.join("\n")}`
)
console.log(`docs: wrote ${join("docs/api", "README.md")} and the module pages of ${packages.join(", ")}`)
