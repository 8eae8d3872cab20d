/**
 * Watching many batches with list pages: `GET /batches?limit=100` shows up to 100 batches,
 * newest first, so one cycle over n batches that are among the newest costs ⌈n/100⌉ requests
 * instead of n retrieves. Batches the pages did not reach are retrieved one by one.
 */
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Batch, BatchPage, ListBatchesParams } from "../Batch.js"
import type { InvalidRequest, RequestError } from "../BatchError.js"
import * as Webhooks from "../Webhooks.js"

export interface Source {
  readonly list: (params: ListBatchesParams) => Effect.Effect<BatchPage, InvalidRequest | RequestError>
  readonly retrieve: (id: string) => Effect.Effect<Batch, InvalidRequest | RequestError>
}

export interface Snapshots {
  /** The batches asked for, in the order asked. */
  readonly batches: ReadonlyArray<Batch>
  readonly listRequests: number
  readonly retrieveRequests: number
}

const pageSize = 100

/**
 * One look at `ids`: list pages from the newest, at most `maxPages` (default ⌈n/100⌉), stopping
 * once every id was seen or a page reaches batches older than `oldest` (unix seconds, when the
 * caller knows how old the oldest of them is); the rest are retrieved, `concurrency` at a time.
 */
export const snapshots = (
  source: Source,
  ids: ReadonlyArray<string>,
  options?: {
    readonly maxPages?: number | undefined
    readonly oldest?: number | undefined
    readonly concurrency?: number | undefined
  }
): Effect.Effect<Snapshots, InvalidRequest | RequestError> =>
  Effect.gen(function* () {
    const wanted = new Set(ids)
    const found = new Map<string, Batch>()
    const maxPages = options?.maxPages ?? Math.ceil(wanted.size / pageSize)
    let listRequests = 0
    let after: string | undefined
    while (found.size < wanted.size && listRequests < maxPages) {
      const page = yield* source.list(after === undefined ? { limit: pageSize } : { limit: pageSize, after })
      listRequests++
      for (const b of page.data) if (wanted.has(b.id)) found.set(b.id, b)
      const last = page.data.at(-1)
      if (!page.has_more || last === undefined || last.id === after) break
      if (options?.oldest !== undefined && last.created_at < options.oldest) break
      after = last.id
    }
    const rest = ids.filter((id) => !found.has(id))
    const retrieved = yield* Effect.forEach(rest, source.retrieve, { concurrency: options?.concurrency ?? 8 })
    for (const b of retrieved) found.set(b.id, b)
    return {
      batches: ids.map((id) => found.get(id)!),
      listRequests,
      retrieveRequests: rest.length
    }
  })

/** What decides a change worth a snapshot: the status and the request counts. */
export const snapshotKey = (batch: Batch): string => {
  const counts = batch.request_counts
  return `${batch.status}|${counts?.total ?? ""}|${counts?.completed ?? ""}|${counts?.failed ?? ""}`
}

/**
 * The adaptive cadence over a cycle of many batches: `initial` after a cycle in which anything
 * changed, growing by `factor` up to `max` while nothing does.
 */
export const adaptiveCycles = (options?: {
  readonly initial?: Duration.DurationInput | undefined
  readonly max?: Duration.DurationInput | undefined
  readonly factor?: number | undefined
}): Schedule.Schedule<Duration.Duration, ReadonlyArray<Batch>> => {
  const initial = Duration.toMillis(Duration.decode(options?.initial ?? "1 second"))
  const max = Duration.toMillis(Duration.decode(options?.max ?? "1 minute"))
  const factor = options?.factor ?? 1.5
  return Schedule.makeWithState<number | undefined, ReadonlyArray<Batch>, Duration.Duration>(
    undefined,
    (now, changed, previous) => {
      const delay = changed.length > 0 || previous === undefined ? initial : Math.min(previous * factor, max)
      return Effect.succeed([
        delay,
        Duration.millis(delay),
        ScheduleDecision.continueWith(ScheduleInterval.after(now + delay))
      ] as const)
    }
  )
}

/** Events that wake a watcher (webhook deliveries), and how to look at the batch one names. */
export interface Wake<E> {
  readonly subscribe: Effect.Effect<Queue.Dequeue<Webhooks.Event>, never, Scope.Scope>
  readonly retrieve: (id: string) => Effect.Effect<Batch, E>
}

/**
 * Snapshots of every batch of `ids`: the first of each at once, then one whenever its status or
 * counts change; ends once all have ended. `poll` is one cycle (with its retries). With `wake`,
 * a batch whose id arrives is looked at at once, out of the cycle.
 */
export const watchMany = <E>(
  ids: ReadonlyArray<string>,
  poll: (ids: ReadonlyArray<string>, oldest: number | undefined) => Effect.Effect<Snapshots, E>,
  schedule: Schedule.Schedule<unknown, ReadonlyArray<Batch>>,
  wake?: Wake<E>
): Stream.Stream<Batch, E> =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const driver = yield* Schedule.driver(schedule)
      const woken = wake === undefined ? undefined : yield* wake.subscribe
      const last = new Map<string, string>()
      const created = new Map<string, number>()
      let pending = [...new Set(ids)]
      let first = true
      let changed: ReadonlyArray<Batch> = []
      type Step = Option.Option<readonly [Chunk.Chunk<Batch>, undefined]>
      /** Records a batch's snapshot; whether it changed. */
      const record = (b: Batch) => {
        created.set(b.id, b.created_at)
        const key = snapshotKey(b)
        if (last.get(b.id) === key) return false
        last.set(b.id, key)
        return true
      }
      const cycle = Effect.suspend((): Effect.Effect<Step, E> => {
        let oldest: number | undefined = Number.POSITIVE_INFINITY
        for (const id of pending) {
          const at = created.get(id)
          oldest = at === undefined || oldest === undefined ? undefined : Math.min(oldest, at)
        }
        return Effect.map(poll(pending, oldest), ({ batches }) => {
          changed = batches.filter(record)
          pending = batches.filter((b) => !b.isTerminal).map((b) => b.id)
          return Option.some([Chunk.unsafeFromArray(changed as Array<Batch>), undefined] as const)
        })
      })
      return Stream.unfoldChunkEffect(undefined, (): Effect.Effect<Step, E> => {
        if (pending.length === 0) return Effect.succeedNone
        if (first) {
          first = false
          return cycle
        }
        // the wait for the next cycle, which ends early on news of one of the batches
        const tick = driver.next(changed).pipe(
          Effect.as(true),
          Effect.catchAll(() => Effect.succeed(false))
        )
        const wait: Effect.Effect<boolean | string> =
          woken === undefined
            ? tick
            : Effect.raceFirst(
                tick,
                Queue.take(woken).pipe(
                  Effect.map((e) => (Webhooks.isBatchEvent(e) ? e.data.id : "")),
                  Effect.repeat({ until: (id) => pending.includes(id) })
                )
              )
        return Effect.flatMap(wait, (next): Effect.Effect<Step, E> => {
          if (next === false) return Effect.succeedNone
          if (next === true || wake === undefined) return cycle
          // news of one batch: look at it now, out of the cycle
          return Effect.map(wake.retrieve(next), (b) => {
            if (b.isTerminal) pending = pending.filter((id) => id !== b.id)
            return Option.some([record(b) ? Chunk.of(b) : Chunk.empty<Batch>(), undefined] as const)
          })
        })
      })
    })
  )
