/**
 * @llm-gateway/core: an Effect-native client for an LLM gateway.
 *
 * @since 0.1.0
 */
export * as AuditLog from "./AuditLog.js"
export * as Auth from "./Auth.js"
export * as Chat from "./Chat.js"
export * as ChatChunk from "./ChatChunk.js"
export * as ContextWindow from "./ContextWindow.js"
export * as CostMeter from "./CostMeter.js"
export * as Environment from "./Environment.js"
export * as Gateway from "./Gateway.js"
export * as GatewayError from "./GatewayError.js"
export * as Models from "./Models.js"
export * as Part from "./Part.js"
export * as PromptTemplate from "./PromptTemplate.js"
export * as ResponseCache from "./ResponseCache.js"
export * as RetryPolicy from "./RetryPolicy.js"
export * as SafetyFilter from "./SafetyFilter.js"
export * as Sse from "./Sse.js"
export * as Transport from "./Transport.js"
