// Fails when a package of the Effect 4 line is installed: this project stays on Effect 3.
import { readFileSync } from "node:fs"

const lock = readFileSync(new URL("../pnpm-lock.yaml", import.meta.url), "utf8")
const bad = []
let seen = 0
for (const match of lock.matchAll(/^ {2}'?((?:@effect\/[a-z0-9-]+)|effect)@(\d+)\.(\d+)\.\d+[^:]*'?:$/gm)) {
  const [, name, major] = match
  seen++
  // The Effect 3 line: effect 3.x, and every @effect/* package still at 0.x.
  const ok = name === "effect" ? major === "3" : major === "0"
  if (!ok) bad.push(match[0].trim())
}
if (seen === 0 || !/^ {2}effect@3\./m.test(lock)) {
  console.error("pnpm-lock.yaml lists no effect@3 package: the check cannot tell which Effect line is installed")
  process.exit(1)
}
if (bad.length > 0) {
  console.error(`Effect 4 packages in pnpm-lock.yaml (this project is pinned to Effect 3):\n  ${bad.join("\n  ")}`)
  process.exit(1)
}
console.log("effect line: every effect package is on Effect 3")
