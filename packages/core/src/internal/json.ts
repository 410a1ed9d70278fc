/** JSON helpers shared by the modules that read text from outside. */
import * as Option from "effect/Option"

/** `JSON.parse` that answers `None` instead of throwing on malformed text. */
export const parseOption = (text: string): Option.Option<unknown> => {
  try {
    return Option.some(JSON.parse(text) as unknown)
  } catch {
    return Option.none()
  }
}
