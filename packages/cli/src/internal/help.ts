/**
 * The DESCRIPTION block of a command's `--help`: what it does, notes, and examples.
 */
import * as HelpDoc from "@effect/cli/HelpDoc"

/** A summary paragraph, note paragraphs, then one example per line (command, then what it does). */
export const describe = (
  summary: string,
  examples: ReadonlyArray<readonly [command: string, does: string]>,
  notes: ReadonlyArray<string> = []
): HelpDoc.HelpDoc =>
  HelpDoc.blocks([
    HelpDoc.p(summary),
    ...notes.map((note) => HelpDoc.p(note)),
    HelpDoc.p("Examples:"),
    ...examples.map(([command, does]) => HelpDoc.p(`  ${command}\n      ${does}`))
  ])
