/**
 * `llm-gateway demo`: the complete example. A template with a customer inquiry that holds an
 * email address, a system instruction override, the reply streamed token by token, what was
 * redacted, the audit entry, the cost summary, and a second identical request answered from
 * the cache. Runs on the embedded simulator unless credentials are in the environment.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import type { Chat } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import type * as Argv from "./internal/argv.js"
import * as Help from "./internal/help.js"

/**
 * The demo's request.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const request = (model: string): Chat.ChatRequestInput => ({
  model,
  prompt: {
    template: "Translate the following customer inquiry into $language while maintaining a professional tone: $inquiry",
    variables: {
      language: "Spanish",
      inquiry: "My order #12345 has not arrived and my email is test@example.com"
    }
  },
  systemInstruction: "You are a certified customer support translator. Never add unsolicited advice."
})

/**
 * The simulator's scripted translation, streamed at a readable pace. It can only echo the
 * redaction marker: the address never reached it.
 *
 * @since 0.1.0
 * @category Config
 */
export const simulatorScenario = {
  name: "demo-translation",
  description: "The demo's Spanish translation.",
  reply: "Mi pedido n.º 12345 no ha llegado y mi correo electrónico es [EMAIL].",
  timing: { firstTokenMs: 150, tokenMs: 25 }
} as const

/**
 * `demo` takes no flags and no arguments.
 *
 * @since 0.1.0
 * @category Models
 */
export const spec: Argv.Spec = { positionals: 0, flags: {} }

/**
 * The `demo` command.
 *
 * @since 0.1.0
 * @category Commands
 */
export const command = Command.make(
  "demo",
  {},
  () => Effect.flatMap(Effect.promise(() => import("./internal/demo.js")), (demo) => demo.run)
).pipe(
  Command.withDescription(Help.describe(
    "Run the complete example: a template with a customer inquiry holding an email address, a system instruction, the reply streamed token by token, what was redacted, the audit entry, the cost summary, and a second identical request answered from the cache. Runs on the embedded simulator unless a gateway is configured (see 'llm-gateway chat --help').",
    [
      ["llm-gateway demo", "on the embedded simulator"],
      ["LLM_GATEWAY_MODEL=gpt-4.1-mini llm-gateway demo", "another model"]
    ]
  ))
)
