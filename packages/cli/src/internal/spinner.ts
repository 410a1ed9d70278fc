/**
 * A spinner on stderr while the first token is awaited: only on a terminal (a pipe or a file
 * gets nothing extra), erased before anything else is written.
 */

/** Where the spinner draws: a stream that may be a terminal. */
export interface Target {
  readonly isTTY?: boolean | undefined
  readonly write: (text: string) => unknown
}

/** A running spinner; `stop` erases it and is safe to call twice. */
export interface Spinner {
  readonly stop: () => void
}

const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

const none: Spinner = { stop: () => {} }

/** Starts drawing `label` with a turning frame every `intervalMs` when `target` is a terminal. */
export const start = (target: Target, label: string, intervalMs = 80): Spinner => {
  if (target.isTTY !== true) return none
  let frame = 0
  let running = true
  const draw = () => {
    target.write(`\r${frames[frame % frames.length]} ${label}`)
    frame++
  }
  draw()
  const timer = setInterval(draw, intervalMs)
  // The spinner never keeps the process alive on its own.
  timer.unref?.()
  return {
    stop: () => {
      if (!running) return
      running = false
      clearInterval(timer)
      target.write("\r\u001b[K")
    }
  }
}
