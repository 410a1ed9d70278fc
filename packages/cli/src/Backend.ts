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
  return { _tag: "Simulator", description: "the embedded simulator" } as const
})

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
      // Loaded here, so that a real backend never loads the simulator.
      return Layer.unwrapEffect(
        Effect.promise(() => import("@llm-gateway/simulator/SimulatorLayer")).pipe(
          Effect.map((SimulatorLayer) => SimulatorLayer.layer(simulator))
        )
      )
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
