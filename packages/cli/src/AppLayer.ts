/**
 * The services the CLI runs the gateway with: safety policy (adjustable by environment), tokenizer-based context
 * window, in-memory response cache, cost meter (budget from `LLM_GATEWAY_BUDGET_USD`), and an
 * audit log in memory (also appended to a JSONL file when one is named).
 *
 * @since 0.1.0
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { AuditLog, ContextWindow, CostMeter, Gateway, ResponseCache, SafetyFilter } from "@llm-gateway/core"
import type { Auth, Transport } from "@llm-gateway/core"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * What the CLI's gateway is built with.
 *
 * @since 0.1.0
 * @category Config
 */
export interface Options {
  readonly systemInstruction?: string | undefined
  readonly auditFile?: string | undefined
}

/**
 * An audit log that keeps entries in memory for display and, when `file` is given, also
 * appends them to a hash-chained JSONL file.
 */
const auditLayer = (
  file: string | undefined
): Layer.Layer<AuditLog.AuditLog | AuditLog.MemoryAuditLog> => {
  if (file === undefined) return AuditLog.layerMemory
  const fileLayer = AuditLog.layerFile(file).pipe(Layer.provide([NodeFileSystem.layer, NodePath.layer]), Layer.orDie)
  return Layer.scopedContext(Effect.gen(function*() {
    const memory = yield* Layer.build(AuditLog.layerMemory)
    const onDisk = yield* Layer.build(fileLayer)
    const inMemory = Context.get(memory, AuditLog.AuditLog)
    const persisted = Context.get(onDisk, AuditLog.AuditLog)
    return Context.add(memory, AuditLog.AuditLog, {
      append: (entry) => Effect.zipRight(persisted.append(entry), inMemory.append(entry))
    })
  }))
}

/**
 * The gateway over a transport, with every other concern at its CLI default.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (
  transport: Layer.Layer<Transport.GatewayTransport | Auth.Auth, ConfigError.ConfigError>,
  options: Options = {}
): Layer.Layer<
  Gateway.Gateway | CostMeter.CostMeter | AuditLog.MemoryAuditLog | Transport.GatewayTransport | Auth.Auth,
  ConfigError.ConfigError
> =>
  Gateway.layer({ systemInstruction: options.systemInstruction }).pipe(
    Layer.provideMerge(Layer.mergeAll(
      SafetyFilter.layerConfig(),
      ContextWindow.layer(),
      ResponseCache.layerMemory({ capacity: 1_000, timeToLive: "1 hour" }),
      CostMeter.layerConfig(),
      auditLayer(options.auditFile)
    )),
    // Merged so that services the transport brings along (the simulator's) stay reachable.
    Layer.provideMerge(transport)
  )
