/**
 * The one fold over a reply's parts, used by `Gateway.complete` (the whole text), the cache stage
 * (the text while it is short enough to share) and the audit stage (no text): a plain
 * accumulator, local to the stage that owns it.
 */
import type { RedactionCount } from "../Chat.js"
import type { Finish, Part, ToolCall, ToolCallError } from "../Part.js"

/** What the parts said so far. `text` is `undefined` once it grew past the limit. */
export interface Fold {
  text: string | undefined
  inputRedactions: ReadonlyArray<RedactionCount>
  outputRedactions: ReadonlyArray<RedactionCount>
  droppedMessages: number
  /** The complete tool calls (and the unusable ones), in the order they came. */
  toolCalls: Array<ToolCall | ToolCallError>
  finish: Finish | undefined
}

/** An empty fold that keeps at most `maxText` characters of text (0: none). */
export const make = (maxText: number): { readonly state: Fold; readonly add: (part: Part) => void } => {
  const state: Fold = { text: "", inputRedactions: [], outputRedactions: [], droppedMessages: 0, toolCalls: [], finish: undefined }
  const add = (part: Part): void => {
    switch (part._tag) {
      case "TextDelta":
        if (state.text !== undefined) {
          state.text = state.text.length + part.text.length > maxText ? undefined : state.text + part.text
        }
        break
      case "RedactionNotice":
        if (part.direction === "input") state.inputRedactions = part.redactions
        else state.outputRedactions = part.redactions
        break
      case "ContextTrimmed":
        state.droppedMessages = part.droppedMessages
        break
      case "ToolCall":
      case "ToolCallError":
        state.toolCalls.push(part)
        break
      case "Finish":
        state.finish = part
        break
    }
  }
  return { state, add }
}
