/**
 * The body-phase deadlines of one request (first token, idle, total) without a timer per
 * event: the pipeline only records progress in plain fields, and one watchdog fiber per
 * request sleeps until the nearest deadline. When one passes it records the timeout and
 * aborts the connection; the pending read then fails and the transport reports the recorded
 * `RequestTimeout` instead. (A race per read costs tens of microseconds per network chunk; this
 * costs a field write.)
 *
 * @internal
 */
import * as Channel from "effect/Channel"
import type * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { RequestTimeout, type TimeoutPhase } from "../GatewayError.js"

/** What the pipeline has seen so far; read by the watchdog and when an error is classified. */
export interface Progress {
  /** A byte of the body has arrived: any failure from here on is partial. */
  bodyStarted: boolean
  /** A server-sent event has arrived: the idle deadline applies from now on. */
  sawEvent: boolean
  /** Text has arrived: the first-token deadline no longer applies. */
  sawText: boolean
  /** When the pipeline began waiting for the next event, or `undefined` while the consumer holds it. */
  waitingSince: number | undefined
  /** The deadline that ran out, once one has. */
  timedOut: RequestTimeout | undefined
}

/** Fresh progress for one request. */
export const makeProgress = (): Progress => ({
  bodyStarted: false,
  sawEvent: false,
  sawText: false,
  waitingSince: undefined,
  timedOut: undefined
})

/**
 * A pass-through stage (placed after SSE parsing, so keep-alive comments are not progress)
 * that records when the pipeline waits for the next event and when one arrives. Time the
 * consumer spends with an event does not count as idle.
 */
export const trackEvents = <A, E>(
  progress: Progress,
  now: () => number
): Channel.Channel<Chunk.Chunk<A>, Chunk.Chunk<A>, E, E, unknown, unknown> => {
  const loop: Channel.Channel<Chunk.Chunk<A>, Chunk.Chunk<A>, E, E, unknown, unknown> = Channel.suspend(() => {
    progress.waitingSince = now()
    return Channel.readWithCause({
      onInput: (events: Chunk.Chunk<A>) => {
        progress.waitingSince = undefined
        if (events.length > 0) progress.sawEvent = true
        return Channel.zipRight(Channel.write(events), loop)
      },
      onFailure: (cause) => {
        progress.waitingSince = undefined
        return Channel.failCause(cause)
      },
      onDone: () => {
        progress.waitingSince = undefined
        return Channel.void
      }
    })
  })
  return loop
}

/** The body-phase deadlines, in milliseconds (`Infinity` when off). */
export interface Deadlines {
  readonly firstToken: Duration.Duration
  readonly idle: Duration.Duration
  readonly total: Duration.Duration
}

/**
 * Sleeps until the nearest deadline, re-reading progress each time it wakes; when one has
 * passed, records it in `progress.timedOut` and runs `abort` (closing the connection).
 * `startedAt` is when the request began (total), `openedAt` when the headers arrived (first
 * token). Wakes at least once per idle period so a wait that begins later is caught on time.
 */
export const watchdog = (options: {
  readonly progress: Progress
  readonly clock: Clock.Clock
  readonly deadlines: Deadlines
  readonly startedAt: number
  readonly openedAt: number
  readonly abort: Effect.Effect<void>
}): Effect.Effect<void> => {
  const { abort, clock, deadlines, openedAt, progress, startedAt } = options
  const idleMs = Duration.toMillis(deadlines.idle)
  const firstTokenMs = Duration.toMillis(deadlines.firstToken)
  const totalMs = Duration.toMillis(deadlines.total)
  if (!Number.isFinite(idleMs) && !Number.isFinite(firstTokenMs) && !Number.isFinite(totalMs)) return Effect.void

  const check: Effect.Effect<void> = Effect.suspend(() => {
    const now = clock.unsafeCurrentTimeMillis()
    let next = Number.isFinite(idleMs) ? now + idleMs : Infinity
    let fired: { phase: TimeoutPhase; after: Duration.Duration } | undefined
    const consider = (deadline: number, phase: TimeoutPhase, after: Duration.Duration) => {
      if (!Number.isFinite(deadline)) return
      if (deadline <= now) fired ??= { phase, after }
      else next = Math.min(next, deadline)
    }
    consider(startedAt + totalMs, "total", deadlines.total)
    if (!progress.sawText) consider(openedAt + firstTokenMs, "firstToken", deadlines.firstToken)
    if (progress.sawEvent && progress.waitingSince !== undefined) {
      consider(progress.waitingSince + idleMs, "idle", deadlines.idle)
    }
    if (fired !== undefined) {
      progress.timedOut = new RequestTimeout({ ...fired, partial: progress.bodyStarted })
      return abort
    }
    if (!Number.isFinite(next)) return Effect.void
    return Effect.zipRight(Effect.sleep(Duration.millis(next - now)), check)
  })
  return check
}
