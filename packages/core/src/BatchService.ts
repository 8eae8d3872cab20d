/**
 * The four batch operations as typed Effects, plus every batch as a `Stream`, a watcher and
 * `await`.
 *
 * @since 0.1.0
 * @example
 * ```ts
 * import { BatchService } from "@batchkit/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function* () {
 *   const batches = yield* BatchService.BatchService
 *   const batch = yield* batches.create({ input_file_id: "file-abc", endpoint: "/v1/chat/completions" })
 *   return yield* batches.await(batch.id)
 * })
 * ```
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
import * as Duration from "effect/Duration"
import * as Stream from "effect/Stream"
import * as Clock from "effect/Clock"
import {
  type Batch,
  type BatchPage,
  CreateBatchParams,
  type CreateBatchInput,
  ListBatchesParams,
  ResourceId,
  metadataLimits
} from "./Batch.js"
import type { BatchConfig } from "./BatchConfig.js"
import * as BatchLine from "./BatchLine.js"
import * as Provider from "./Provider.js"
import {
  type BatchError,
  type InvalidRequest,
  type RequestError,
  invalid,
  isRetryable
} from "./BatchError.js"
import * as Api from "./internal/api.js"
import * as Fast from "./internal/fast.js"
import { paginate } from "./internal/paginate.js"
import * as WatchMany from "./internal/watchMany.js"
import * as Webhooks from "./Webhooks.js"
import { checkId as checkIdWith, decodeParams } from "./internal/schema.js"

/**
 * The metadata key `create` tags each batch with when idempotent create is on.
 *
 * @since 0.1.0
 * @category constants
 */
export const idempotencyMetadataKey = "batchkit_idempotency_key"

/**
 * @since 0.1.0
 * @category models
 */
export interface CreateOptions {
  /**
   * The idempotency key to tag the batch with. Give your own to make a create safe across
   * process restarts too; by default a random one is made per call.
   */
  readonly idempotencyKey?: string | undefined
  /** Overrides `BatchConfig.idempotentCreate` for this call. */
  readonly idempotent?: boolean | undefined
  /**
   * When (unix ms) an earlier create with the same `idempotencyKey` may have been sent, by a
   * process that did not live to see its answer: the batch it made, if any, is looked for before
   * anything is sent.
   */
  readonly sentBefore?: number | undefined
  /**
   * Whose endpoints and `completion_window`s the batch is checked against. The service uses its
   * `BatchConfig`'s provider; {@link checkCreate} defaults to `openai`.
   */
  readonly provider?: Provider.Profile | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface WatchOptions {
  /**
   * When to poll again, given the last snapshot. Default {@link adaptivePolling}: about every
   * second, backing off to once a minute while nothing changes. With `Webhooks.Events` in the
   * context, an event about the batch wakes the watch at once, and polling is the fallback:
   * every 30 s, backing off to 5 minutes.
   */
  readonly schedule?: Schedule.Schedule<unknown, Batch> | undefined
  /**
   * Told each time a poll failed in a way that is retried (after the request's own retries): the
   * error, which retry comes next and of how many, and how long until it. For telling a person
   * that the server is not answering, instead of going quiet until the watch gives up.
   */
  readonly onRetry?: ((retry: PollRetry) => Effect.Effect<void>) | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export interface SnapshotsOptions {
  /** List pages to read at most before retrieving the rest. Default ⌈n/100⌉. */
  readonly maxPages?: number | undefined
  /** The `created_at` of the oldest of the batches, when known: pages past it are not read. */
  readonly oldest?: number | undefined
  /** Retrieves in flight at once. Default 8. */
  readonly concurrency?: number | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export type Snapshots = WatchMany.Snapshots

/**
 * @since 0.2.0
 * @category models
 */
export interface WatchManyOptions {
  /**
   * When to look again, given the batches that changed in the last cycle. Default
   * {@link adaptiveCycles}: about every second while anything changes, backing off to once a
   * minute while nothing does.
   */
  readonly schedule?: Schedule.Schedule<unknown, ReadonlyArray<Batch>> | undefined
  /** Told of each retried cycle, as `watch`'s `onRetry`. */
  readonly onRetry?: ((retry: PollRetry) => Effect.Effect<void>) | undefined
}

/**
 * The cadence of `watchMany`: `initial` after a cycle in which any batch changed, growing by
 * `factor` up to `max` while none does.
 *
 * @since 0.2.0
 * @category watch
 */
export const adaptiveCycles = WatchMany.adaptiveCycles

/**
 * A poll of `watch` that failed and will be tried again.
 *
 * @since 0.2.0
 * @category models
 */
export interface PollRetry {
  readonly error: RequestError
  /** 1 for the first retry. */
  readonly attempt: number
  readonly of: number
  readonly delay: Duration.Duration
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** `POST /batches`. Validates the parameters first; retried without ever making two batches. */
  readonly create: (
    params: CreateBatchInput,
    options?: CreateOptions
  ) => Effect.Effect<Batch, InvalidRequest | RequestError>
  /**
   * Every check `create` makes before it sends anything (the parameters, and the metadata pair
   * idempotent create keeps for itself), without sending: for a dry run, or to refuse a batch
   * before uploading its input file.
   */
  readonly validateCreate: (
    params: CreateBatchInput,
    options?: CreateOptions
  ) => Effect.Effect<CreateBatchParams, InvalidRequest>
  /** `GET /batches/{batch_id}`. */
  readonly retrieve: (batchId: string) => Effect.Effect<Batch, InvalidRequest | RequestError>
  /** `GET /batches`: one page. */
  readonly list: (params?: ListBatchesParams) => Effect.Effect<BatchPage, InvalidRequest | RequestError>
  /** `POST /batches/{batch_id}/cancel`. A batch that has ended fails with `Conflict` at once. */
  readonly cancel: (batchId: string) => Effect.Effect<Batch, InvalidRequest | RequestError>
  /**
   * Every batch, across pages (`limit` is the page size). Fails with `ResponseDecodeError`
   * when the server hands back a cursor it gave before, instead of looping.
   */
  readonly stream: (params?: ListBatchesParams) => Stream.Stream<Batch, InvalidRequest | RequestError>
  /**
   * Snapshots of a batch: the first at once, then one whenever its status or request counts
   * change; ends after the terminal snapshot. Transient failures of a poll are retried.
   */
  readonly watch: (
    batchId: string,
    options?: WatchOptions
  ) => Stream.Stream<Batch, InvalidRequest | RequestError>
  /**
   * One look at many batches through list pages: `GET /batches?limit=100` pages from the newest
   * (⌈n/100⌉ of them at most), then a retrieve for each batch they did not reach. Gives the
   * batches in the order of `ids`, with how many requests of each kind it took.
   */
  readonly snapshots: (
    ids: Iterable<string>,
    options?: SnapshotsOptions
  ) => Effect.Effect<Snapshots, InvalidRequest | RequestError>
  /**
   * Snapshots of many batches (or, given `"unfinished"`, of every batch not yet ended), from list
   * pages: the first of each at once, then one whenever a batch's status or counts change, on
   * `watch`'s adaptive cadence for the whole set; ends when all have ended.
   */
  readonly watchMany: (
    ids: Iterable<string> | "unfinished",
    options?: WatchManyOptions
  ) => Stream.Stream<Batch, InvalidRequest | RequestError>
  /** The batch once it has ended (`completed`, `failed`, `expired` or `cancelled`). */
  readonly await: (
    batchId: string,
    options?: WatchOptions
  ) => Effect.Effect<Batch, InvalidRequest | RequestError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class BatchService extends Context.Tag("@batchkit/core/BatchService")<BatchService, Service>() {}

const snapshotKey = WatchMany.snapshotKey

/**
 * A watch cadence: poll after `initial`, then, while the snapshot stays the same, multiply the
 * wait by `factor` up to `max`; any change (status or counts) starts again from `initial`.
 *
 * @since 0.1.0
 * @category watch
 */
export const adaptivePolling = (options?: {
  readonly initial?: Duration.DurationInput | undefined
  readonly max?: Duration.DurationInput | undefined
  readonly factor?: number | undefined
}): Schedule.Schedule<Duration.Duration, Batch> => {
  const initial = Duration.toMillis(Duration.decode(options?.initial ?? "1 second"))
  const max = Duration.toMillis(Duration.decode(options?.max ?? "1 minute"))
  const factor = options?.factor ?? 1.5
  return Schedule.makeWithState<
    { readonly key: string | undefined; readonly delay: number },
    Batch,
    Duration.Duration
  >({ key: undefined, delay: initial }, (now, batch, state) => {
    const key = snapshotKey(batch)
    const delay = key === state.key ? Math.min(state.delay * factor, max) : initial
    return Effect.succeed([
      { key, delay },
      Duration.millis(delay),
      ScheduleDecision.continueWith(ScheduleInterval.after(now + delay))
    ] as const)
  })
}

const pollRetries = 8

/**
 * How a single poll of `watch` outlives a run of transient failures: up to 8 more tries, 1 s
 * doubling to 30 s apart, each told to `onRetry`.
 */
const pollRetry = (onRetry: WatchOptions["onRetry"]) =>
  Schedule.exponential("1 second").pipe(
    Schedule.union(Schedule.spaced("30 seconds")),
    Schedule.delays,
    Schedule.intersect(Schedule.recurs(pollRetries)),
    Schedule.intersect(Schedule.identity<BatchError>()),
    Schedule.tapOutput(([[delay, n], error]) =>
      // the schedule is stepped before the retry's own `while` is asked: tell only real retries
      onRetry !== undefined && n < pollRetries && isRetryable(error)
        ? // a retryable error is never an InvalidRequest
          onRetry({ error: error as RequestError, attempt: n + 1, of: pollRetries, delay })
        : Effect.void
    )
  )

const checkBatchId = checkIdWith(ResourceId, "batch_id")

const decodeCreate = decodeParams(CreateBatchParams)

/**
 * Every check `create` makes before it sends anything, as a function of its options alone (no
 * service needed): the parameters, and, when `idempotent` (the default), the metadata pair
 * idempotent create keeps for itself. A dry run uses it to refuse what `create` would.
 *
 * @since 0.2.0
 * @category validation
 */
export const checkCreate = (
  input: CreateBatchInput,
  options?: CreateOptions
): Effect.Effect<CreateBatchParams, InvalidRequest> =>
  Effect.gen(function* () {
    const params = yield* decodeCreate(input)
    const provider = options?.provider ?? Provider.openai
    const endpoints = provider.limits.endpoints
    if (endpoints !== "any" && !endpoints.includes(params.endpoint)) {
      const hint = BatchLine.likelyEndpoint(params.endpoint, endpoints)
      return yield* Effect.fail(
        invalid(
          "endpoint",
          `${params.endpoint} is not a batch endpoint of ${provider.name}${hint ? ` (did you mean ${hint}?)` : ""}; it takes ${endpoints.join(", ")}`
        )
      )
    }
    if (!Provider.acceptsWindow(provider, params.completion_window)) {
      return yield* Effect.fail(
        invalid(
          "completion_window",
          `${params.completion_window} is not a completion window of ${provider.name}; it takes ${Provider.describeWindows(provider)}`
        )
      )
    }
    if (options?.idempotent === false) return params
    const metadata = params.metadata ?? {}
    if (idempotencyMetadataKey in metadata) {
      return yield* Effect.fail(
        invalid(
          "metadata",
          `the key ${idempotencyMetadataKey} is reserved for idempotent create; pass it as idempotencyKey`
        )
      )
    }
    if (Object.keys(metadata).length >= metadataLimits.pairs) {
      return yield* Effect.fail(
        invalid(
          "metadata",
          `at most ${metadataLimits.pairs - 1} pairs are allowed (got ${Object.keys(metadata).length}): idempotent create keeps one for ${idempotencyMetadataKey}; turn it off with idempotent: false`
        )
      )
    }
    const key = options?.idempotencyKey
    if (key !== undefined && (key === "" || key.length > metadataLimits.valueLength)) {
      return yield* Effect.fail(
        invalid("idempotencyKey", `must be 1 to ${metadataLimits.valueLength} characters`)
      )
    }
    return params
  })

/**
 * Builds the service from a `BatchConfig` and any `HttpClient`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Service, never, BatchConfig | HttpClient.HttpClient> = Effect.gen(
  function* () {
    const api = yield* Api.make
    const decodeList = decodeParams(ListBatchesParams)
    const encodeCreate = (params: CreateBatchParams) => {
      const body: Record<string, unknown> = {
        input_file_id: params.input_file_id,
        endpoint: params.endpoint,
        completion_window: params.completion_window
      }
      if (params.metadata !== undefined) body.metadata = params.metadata
      if (params.output_expires_after !== undefined) body.output_expires_after = params.output_expires_after
      return body
    }

    const retrieve = (batchId: string) =>
      checkBatchId(batchId).pipe(
        Effect.flatMap((id) => api.json(api.request("GET", `/batches/${id}`), Fast.batch))
      )

    const list = (params: ListBatchesParams = {}) =>
      decodeList(params).pipe(
        Effect.flatMap((query) => {
          const urlParams: Record<string, string> = {}
          if (query.limit !== undefined) urlParams.limit = String(query.limit)
          if (query.after !== undefined) urlParams.after = query.after
          return api.json(
            HttpClientRequest.appendUrlParams(api.request("GET", "/batches"), urlParams),
            Fast.batchPage
          )
        })
      )

    const cancel = (batchId: string) =>
      checkBatchId(batchId).pipe(
        Effect.flatMap((id) => {
          // set once an attempt failed in a way that may have come after the server cancelled
          let maybeActed = false
          const attempt = api.once(api.request("POST", `/batches/${id}/cancel`), Fast.batch).pipe(
            Effect.tapError((error) =>
              Effect.sync(() => {
                if (isAmbiguous(error)) maybeActed = true
              })
            )
          )
          return api.retry(attempt).pipe(
            // a retry that finds the batch ended may be finding our own first cancel: if the
            // batch is cancelling or cancelled, that is the success the caller asked for
            Effect.catchTag("Conflict", (conflict) =>
              maybeActed
                ? retrieve(id).pipe(
                    Effect.orElseFail(() => conflict),
                    Effect.filterOrFail(
                      (b) => b.status === "cancelling" || b.status === "cancelled",
                      () => conflict
                    )
                  )
                : Effect.fail(conflict)
            )
          )
        })
      )

    const stream = (params: ListBatchesParams = {}) =>
      Stream.unwrap(
        Effect.map(decodeList(params), (query) =>
          paginate("GET /batches", query.after, (after) =>
            list(after === undefined ? { ...query, after: undefined } : { ...query, after })
          )
        )
      )

    /** Looks for a batch created since `since` (unix ms) that carries the idempotency key. */
    const findByKey = (key: string, since: number) => {
      // newest first in practice; stop once a whole page is older than the attempt (with 10 min of
      // clock skew to spare), and never scan more than 10 pages
      const cutoff = Math.floor(since / 1000) - 600
      return Stream.paginateChunkEffect({ after: undefined as string | undefined, pages: 0 }, (state) =>
        api
          .once(
            HttpClientRequest.appendUrlParams(api.request("GET", "/batches"), {
              limit: "100",
              ...(state.after !== undefined ? { after: state.after } : {})
            }),
            Fast.batchPage
          )
          .pipe(
            Effect.map((page) => {
              const last = page.data.at(-1)?.id
              const allOlder = page.data.every((b) => b.created_at < cutoff)
              const next =
                page.has_more && last !== undefined && last !== state.after && !allOlder && state.pages < 9
                  ? Option.some({ after: last as string | undefined, pages: state.pages + 1 })
                  : Option.none()
              return [Chunk.fromIterable(page.data), next] as const
            })
          )
      ).pipe(
        Stream.filter((b) => b.metadata?.[idempotencyMetadataKey] === key),
        Stream.runHead
      )
    }

    const validateCreate = (input: CreateBatchInput, options?: CreateOptions) =>
      checkCreate(input, {
        provider: api.config.provider,
        ...options,
        idempotent: options?.idempotent ?? api.config.idempotentCreate
      })

    const create = (input: CreateBatchInput, options?: CreateOptions) =>
      Effect.gen(function* () {
        const params = yield* validateCreate(input, options)
        if (!(options?.idempotent ?? api.config.idempotentCreate)) {
          return yield* api.json(
            HttpClientRequest.bodyUnsafeJson(api.request("POST", "/batches"), encodeCreate(params)),
            Fast.batch
          )
        }
        const metadata = params.metadata ?? {}
        const key = options?.idempotencyKey ?? globalThis.crypto.randomUUID()
        const body = encodeCreate(params)
        body.metadata = { ...metadata, [idempotencyMetadataKey]: key }
        const request = HttpClientRequest.bodyUnsafeJson(api.request("POST", "/batches"), body)
        const since = options?.sentBefore ?? (yield* Clock.currentTimeMillis)
        // set once an attempt failed in a way that may have come after the server made the batch
        let maybeCreated = options?.sentBefore !== undefined
        const lookup = Effect.suspend(() => (maybeCreated ? findByKey(key, since) : Effect.succeedNone))
        const attempt = lookup.pipe(
          Effect.flatMap(
            Option.match({
              onSome: Effect.succeed,
              onNone: () =>
                api.once(request, Fast.batch).pipe(
                  Effect.tapError((error) =>
                    Effect.sync(() => {
                      if (isAmbiguous(error)) maybeCreated = true
                    })
                  )
                )
            })
          )
        )
        return yield* api.retry(attempt).pipe(
          // the last attempt may have made the batch even though its answer was lost
          Effect.catchAll((error) =>
            maybeCreated
              ? findByKey(key, since).pipe(
                  Effect.orElseSucceed(() => Option.none<Batch>()),
                  Effect.flatMap(Option.match({ onSome: Effect.succeed, onNone: () => Effect.fail(error) }))
                )
              : Effect.fail(error)
          )
        )
      })

    /** Webhook events in the context wake watchers; polling is then the slower fallback. */
    const wake = Effect.map(
      Effect.serviceOption(Webhooks.Events),
      Option.map(
        (events): WatchMany.Wake<InvalidRequest | RequestError> => ({ subscribe: events.subscribe, retrieve })
      )
    )
    const fallbackCycles = () => WatchMany.adaptiveCycles({ initial: "30 seconds", max: "5 minutes" })

    const watch = (batchId: string, options?: WatchOptions) =>
      Stream.unwrap(
        Effect.all([checkBatchId(batchId), wake]).pipe(
          Effect.map(([id, woken]) => {
            if (Option.isSome(woken)) {
              // as watchMany of one, with a retrieve a cycle; the caller's schedule sees the batch
              let seen: Batch | undefined
              const schedule =
                options?.schedule === undefined
                  ? fallbackCycles()
                  : Schedule.mapInput(
                      options.schedule,
                      (changed: ReadonlyArray<Batch>) => changed[0] ?? seen!
                    )
              const poll = () =>
                retrieve(id).pipe(
                  Effect.retry({ schedule: pollRetry(options?.onRetry), while: isRetryable }),
                  Effect.map((b) => {
                    seen = b
                    return { batches: [b], listRequests: 0, retrieveRequests: 1 }
                  })
                )
              return WatchMany.watchMany([id], poll, schedule, woken.value)
            }
            const poll = api
              .json(api.request("GET", `/batches/${id}`), Fast.batch)
              .pipe(Effect.retry({ schedule: pollRetry(options?.onRetry), while: isRetryable }))
            return Stream.repeatEffectWithSchedule(poll, options?.schedule ?? adaptivePolling()).pipe(
              Stream.changesWith((a, b) => snapshotKey(a) === snapshotKey(b)),
              Stream.takeUntil((batch) => batch.isTerminal)
            )
          })
        )
      )

    const source = { list, retrieve }

    const snapshots = (ids: Iterable<string>, options?: SnapshotsOptions) =>
      Effect.forEach(ids, checkBatchId).pipe(
        Effect.flatMap((checked) => WatchMany.snapshots(source, checked, options))
      )

    const watchMany = (ids: Iterable<string> | "unfinished", options?: WatchManyOptions) =>
      Stream.unwrap(
        Effect.gen(function* () {
          const set =
            ids === "unfinished"
              ? Chunk.toArray(
                  yield* stream({ limit: 100 }).pipe(
                    Stream.filter((b) => !b.isTerminal),
                    Stream.map((b) => b.id),
                    Stream.runCollect
                  )
                )
              : yield* Effect.forEach(ids, checkBatchId)
          // the pages that covered the whole set at first still cover what is left of it, however
          // it is spread; `oldest` stops them early once past the oldest batch still running
          const maxPages = Math.ceil(set.length / 100)
          const poll = (pending: ReadonlyArray<string>, oldest: number | undefined) =>
            WatchMany.snapshots(source, pending, { oldest, maxPages }).pipe(
              Effect.retry({ schedule: pollRetry(options?.onRetry), while: isRetryable })
            )
          const woken = yield* wake
          const schedule =
            options?.schedule ?? (Option.isSome(woken) ? fallbackCycles() : WatchMany.adaptiveCycles())
          return WatchMany.watchMany(set, poll, schedule, Option.getOrUndefined(woken))
        })
      )

    const awaitBatch = (batchId: string, options?: WatchOptions) =>
      watch(batchId, options).pipe(Stream.runLast, Effect.map(Option.getOrThrow))

    return {
      create,
      validateCreate,
      retrieve,
      list,
      cancel,
      stream,
      watch,
      snapshots,
      watchMany,
      await: awaitBatch
    } satisfies Service
  }
)

const isAmbiguous = (error: BatchError): boolean =>
  error._tag === "TransportError" ||
  error._tag === "ServerError" ||
  (error._tag === "UnexpectedStatus" && error.status === 408)

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<BatchService, never, BatchConfig | HttpClient.HttpClient> = Layer.effect(
  BatchService,
  make
)
