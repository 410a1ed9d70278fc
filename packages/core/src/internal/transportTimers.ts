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
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { performance } from "node:perf_hooks"
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
 * One turn of the event loop's I/O phase: replies that arrived while the loop was busy are
 * read before anything is decided on a deadline. (Node runs expired timers before it polls for
 * I/O, so a timer that fires late would otherwise win against a reply already in the socket.)
 */
export const ioTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** Whether `clock` tells real time (not a `TestClock`), so that real event-loop time applies. */
const isLiveClock = (clock: Clock.Clock): boolean => Math.abs(clock.unsafeCurrentTimeMillis() - Date.now()) < 60_000

/** The clock, the event loop's counters and the process's CPU time at one moment. */
interface Reading {
  readonly wall: number
  readonly loop: ReturnType<typeof performance.eventLoopUtilization>
  readonly cpu: NodeJS.CpuUsage
}

let lastReading: Reading | undefined

const read = (clock: Clock.Clock): Reading =>
  (lastReading = {
    wall: clock.unsafeCurrentTimeMillis(),
    loop: performance.eventLoopUtilization(),
    cpu: process.cpuUsage()
  })

/**
 * How old a reading may be to start a measurement for deadlines of `ms` (`Infinity` when off):
 * a twentieth of the shortest, from 50 ms to 2 s (see `recentReading`).
 */
export const readingMaxAge = (...ms: ReadonlyArray<number>): number =>
  Math.min(2_000, Math.max(50, Math.min(...ms) / 20))

/**
 * The last reading if it is at most `maxAge` old, else a new one: the start of a measurement,
 * shared by the requests of a busy process. `process.cpuUsage` is a system call that sums
 * every thread's time; on a loaded two-core VM one call has taken milliseconds, the CPU time of
 * a thousand streamed tokens. A measurement that starts from an earlier reading counts that
 * stretch only where it makes a deadline later, never earlier, by at most `maxAge`.
 */
const recentReading = (clock: Clock.Clock, maxAge: number): Reading => {
  const age = clock.unsafeCurrentTimeMillis() - (lastReading?.wall ?? -Infinity)
  return lastReading !== undefined && age >= 0 && age <= maxAge ? lastReading : read(clock)
}

/** Time this process could run between two readings: event-loop idle time plus CPU time. */
const ranBetween = (from: Reading, to: Reading): number =>
  performance.eventLoopUtilization(to.loop, from.loop).idle +
  (to.cpu.user - from.cpu.user + to.cpu.system - from.cpu.system) / 1000

/**
 * Reads how much of the clock time since the previous reading this process could not run:
 * clock time minus event-loop idle time and CPU time. Always 0 on a `TestClock`. Within
 * `starvationTolerance` of the previous reading it answers 0 without reading (less cannot
 * matter) and that stretch counts in the next answer.
 */
export const starvationMeter = (clock: Clock.Clock, maxAge: number = readingMaxAge(0)): () => number => {
  if (!isLiveClock(clock)) return () => 0
  let from = clock.unsafeCurrentTimeMillis()
  let base = recentReading(clock, maxAge)
  return () => {
    if (clock.unsafeCurrentTimeMillis() - from < starvationTolerance) return 0
    const now = read(clock)
    // From `base`, which may be a little before `from`: starvation then may count a little more.
    const lost = now.wall - base.wall - ranBetween(base, now)
    from = now.wall
    base = now
    return Math.max(0, lost)
  }
}

/** Starvation below this is ordinary timer jitter, not a reason to move a deadline. */
const starvationTolerance = 25

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
 *
 * The first-token and idle deadlines are moved later by the time this process was starved of
 * CPU while they ran (see `starvationMeter`; at most three times their length), and a passed
 * one is confirmed after an I/O turn: under load an event may be waiting unread. The total
 * deadline is on the clock.
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

  const starved = starvationMeter(clock, readingMaxAge(idleMs, firstTokenMs))
  // Starvation credited to the first-token wait, and to the current idle wait (`idleFor`).
  let firstTokenCredit = 0
  let idleCredit = 0
  let idleFor: number | undefined = undefined

  // `afterIo`: a deadline found passed is confirmed after one I/O turn, so an event that
  // arrived while the loop was busy counts before the request is aborted.
  const check = (afterIo: boolean): Effect.Effect<void> => Effect.suspend(() => {
    const now = clock.unsafeCurrentTimeMillis()
    const lost = starved()
    if (progress.waitingSince !== idleFor) {
      idleFor = progress.waitingSince
      idleCredit = 0
    }
    if (lost > starvationTolerance) {
      firstTokenCredit = Math.min(firstTokenCredit + lost, 3 * firstTokenMs)
      if (idleFor !== undefined) idleCredit = Math.min(idleCredit + lost, 3 * idleMs)
    }
    let next = Number.isFinite(idleMs) ? now + idleMs : Infinity
    let fired: { phase: TimeoutPhase; after: Duration.Duration } | undefined
    const consider = (deadline: number, phase: TimeoutPhase, after: Duration.Duration) => {
      if (!Number.isFinite(deadline)) return
      if (deadline <= now) fired ??= { phase, after }
      else next = Math.min(next, deadline)
    }
    consider(startedAt + totalMs, "total", deadlines.total)
    if (!progress.sawText) consider(openedAt + firstTokenMs + firstTokenCredit, "firstToken", deadlines.firstToken)
    if (progress.sawEvent && progress.waitingSince !== undefined) {
      consider(progress.waitingSince + idleMs + idleCredit, "idle", deadlines.idle)
    }
    if (fired !== undefined) {
      if (!afterIo) return Effect.zipRight(ioTurn, check(true))
      progress.timedOut = new RequestTimeout({ ...fired, partial: progress.bodyStarted })
      return abort
    }
    if (!Number.isFinite(next)) return Effect.void
    return Effect.zipRight(Effect.sleep(Duration.millis(next - now)), check(false))
  })
  return check(false)
}

/**
 * Sleeps until `duration` of time in which this process could run has passed, or `maxWall` of
 * clock time (default four times `duration`), then gives pending I/O one turn.
 *
 * Time this process could run is the event loop's idle time (waiting on I/O: a reply would
 * have been read the moment it arrived) plus the CPU time the process got, never more than
 * the clock time. Why: under CPU load from other processes the loop gets a fraction of the
 * clock, a reply can sit unread in the socket, and a wall-clock deadline aborts and re-sends
 * requests the server already took. An idle or unhindered process times out on time; a
 * starved one waits longer, at most `maxWall`. With a `TestClock` the sleep is exactly
 * `duration` on that clock.
 */
export const responsiveSleep = (
  duration: Duration.Duration,
  maxWall: Duration.Duration = Duration.times(duration, 4)
): Effect.Effect<void> =>
  Effect.clockWith((clock) => {
    const ms = Duration.toMillis(duration)
    if (!Number.isFinite(ms)) return Effect.never
    if (!isLiveClock(clock)) return Effect.zipRight(Effect.sleep(duration), ioTurn)
    const maxWallMs = Math.max(ms, Duration.toMillis(maxWall))
    const startedAt = clock.unsafeCurrentTimeMillis()
    const base = recentReading(clock, readingMaxAge(ms))
    const wait = (sleepMs: number): Effect.Effect<void> =>
      Effect.flatMap(Effect.sleep(Duration.millis(sleepMs)), () => {
        const elapsed = clock.unsafeCurrentTimeMillis() - startedAt
        // What ran between `base` and `startedAt` is not this wait's: taken off, as if all ran.
        const ran = Math.min(elapsed, ranBetween(base, read(clock)) - Math.max(0, startedAt - base.wall))
        // One millisecond of slack: timers and the counters round differently.
        if (ran >= ms - 1 || elapsed >= maxWallMs) return ioTurn
        return wait(Math.max(1, Math.min(ms - ran, maxWallMs - elapsed)))
      })
    return wait(ms)
  })

/**
 * `effect`, failing with `onTimeout()` once `duration` of responsive time (see
 * `responsiveSleep`) has passed without it completing; `effect` is then interrupted.
 */
export const responsiveTimeout = <A, E, R, E2>(
  effect: Effect.Effect<A, E, R>,
  duration: Duration.Duration,
  onTimeout: () => E2
): Effect.Effect<A, E | E2, R> =>
  Effect.raceFirst(
    effect,
    Effect.flatMap(responsiveSleep(duration), () => Effect.fail(onTimeout()))
  )

