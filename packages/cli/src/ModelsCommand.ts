/**
 * `llm-gateway models`: the model catalog (context window, largest reply, tokenizer encoding)
 * with list prices and the date they were checked.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Argv from "./internal/argv.js"
import * as Help from "./internal/help.js"

const json = Options.boolean("json").pipe(Options.withDescription("Print one JSON object"))

/**
 * The flags of `models`, checked before parsing.
 *
 * @since 0.1.0
 * @category Models
 */
export const spec: Argv.Spec = { positionals: 0, flags: { "--json": Argv.switchFlag } }

/**
 * The `models` command.
 *
 * @since 0.1.0
 * @category Commands
 */
export const command = Command.make(
  "models",
  { json },
  (args) => Effect.flatMap(Effect.promise(() => import("./internal/models.js")), (models) => models.run(args))
).pipe(Command.withDescription(Help.describe(
  "List the models the gateway knows: context window, most reply tokens, tokenizer encoding, and list prices in US dollars per million tokens with the date they were checked. Dated ids (gpt-4o-mini-2024-07-18) resolve to their family. Models added with LLM_GATEWAY_MODELS and prices with LLM_GATEWAY_PRICING are included; any other model gets the fallback shown last.",
  [
    ["llm-gateway models", "the table"],
    ["llm-gateway models --json", "one JSON object"]
  ]
)))
