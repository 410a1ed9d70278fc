/**
 * Which gateway the CLI talks to, decided from the environment: Genesys Cloud client
 * credentials, an OpenAI-compatible gateway with an API key, or the embedded simulator.
 *
 * @since 0.1.0
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Auth, Transport } from "@llm-gateway/core"
import type { SimulatorApp, SimulatorLayer } from "@llm-gateway/simulator"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/**
 * Where requests go.
 *
 * @since 0.1.0
 * @category Models
 */
export type Backend =
  | { readonly _tag: "Genesys"; readonly description: string }
  | { readonly _tag: "Static"; readonly description: string }
  | { readonly _tag: "Simulator"; readonly description: string }

/**
 * `GENESYS_CLIENT_ID` selects Genesys Cloud client credentials; otherwise
 * `LLM_GATEWAY_BASE_URL` selects a gateway reached with `LLM_GATEWAY_API_KEY`; otherwise the
 * embedded simulator answers.
 *
 * @since 0.1.0
 * @category Config
 */
export const detect: Effect.Effect<Backend, ConfigError.ConfigError> = Effect.gen(function*() {
  const clientId = yield* Config.option(Config.string("GENESYS_CLIENT_ID"))
  if (Option.isSome(clientId)) {
    const environment = yield* Config.option(Config.string("GENESYS_ENVIRONMENT"))
    return {
      _tag: "Genesys",
      description: `Genesys Cloud (${Option.getOrElse(environment, () => "GENESYS_ENVIRONMENT not set")})`
    } as const
  }
  const baseUrl = yield* Config.option(Config.string("LLM_GATEWAY_BASE_URL"))
  if (Option.isSome(baseUrl)) {
    return { _tag: "Static", description: `gateway at ${baseUrl.value}` } as const
  }
  return {
    _tag: "Simulator",
    description: "the embedded simulator (no GENESYS_CLIENT_ID or LLM_GATEWAY_BASE_URL set)"
  } as const
})

/**
 * Advice that fits the backend better than the library's general message: a 401 on a static
 * API key is about the key (`LLM_GATEWAY_API_KEY`), not about an OAuth client. Other errors
 * pass unchanged.
 *
 * @since 0.1.0
 * @category Utils
 */
export const advise = (
  backend: Backend,
  described: { readonly _tag: string; readonly message: string }
): { readonly _tag: string; readonly message: string } => {
  if (backend._tag !== "Static" || described._tag !== "AuthError") return described
  return {
    _tag: described._tag,
    message: `The ${backend.description} refused the API key. Check LLM_GATEWAY_API_KEY: it must be an API key ` +
      `this gateway accepts, sent as a bearer token (and --profile openai for an OpenAI-compatible gateway). ` +
      `The gateway said: ${described.message.replace(/ Check the client id, secret and environment of the OAuth client\.$/, "")}`
  }
}

/**
 * The transport and auth for a backend. The simulator variant also offers the `Simulator`
 * service, so the caller can show what reached the gateway.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (
  backend: Backend,
  simulator: SimulatorLayer.Options = {}
): Layer.Layer<Transport.GatewayTransport | Auth.Auth, ConfigError.ConfigError> => {
  switch (backend._tag) {
    case "Genesys":
      return Transport.layerConfig().pipe(
        Layer.provideMerge(Auth.layerGenesysConfig()),
        Layer.provide(NodeHttpClient.layerUndici)
      )
    case "Static":
      return Transport.layerConfig().pipe(
        Layer.provideMerge(Auth.layerStaticConfig()),
        Layer.provide(NodeHttpClient.layerUndici)
      )
    case "Simulator":
      // Loaded here, so that a real backend never loads the simulator. The transport's
      // profile, timeout, retry and size settings apply to it as to any gateway.
      return Layer.unwrapEffect(Effect.gen(function*() {
        const SimulatorLayer = yield* Effect.promise(() => import("@llm-gateway/simulator/SimulatorLayer"))
        const { baseUrl: _baseUrl, environment: _environment, path: _path, profile, ...settings } = yield* Transport.config
        const transport: Record<string, unknown> = {}
        for (const [key, value] of Object.entries(settings)) if (value !== undefined) transport[key] = value
        return SimulatorLayer.layer({
          ...simulator,
          ...(profile === undefined ? {} : { profile }),
          transport: { ...transport, ...simulator.transport }
        })
      }))
  }
}

/**
 * The simulator in the current context, when the backend is the simulator.
 *
 * @since 0.1.0
 * @category Utils
 */
export const simulatorService: Effect.Effect<Option.Option<SimulatorApp.Simulator["Type"]>> = Effect.promise(
  () => import("@llm-gateway/simulator/SimulatorApp")
).pipe(Effect.flatMap((SimulatorApp) => Effect.serviceOption(SimulatorApp.Simulator)))
