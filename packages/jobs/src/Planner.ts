/**
 * Planning a job, locally and before anything is sent: every input file is read once, streamed;
 * each line gets the checks of `submit --dry-run`, `custom_id` must be unique across the whole
 * job, and every problem is reported as `FILE:LINE: message (code)`. Lines are grouped by
 * (`url`, `body.model`) and cut, in input order, into shards that fit one batch.
 *
 * @since 0.1.0
 */
import { BatchLine, Provider } from "@batchkit/core"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Job from "./Job.js"

/** Embeddings lines, as OpenAI (`/v1/embeddings`) and Azure (`/embeddings`) spell them. */
const isEmbeddings = (url: string) => url === "/v1/embeddings" || url === "/embeddings"

/**
 * One input: a name for messages (its path) and its bytes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Input<E = never, R = never> {
  readonly name: string
  readonly bytes: Stream.Stream<Uint8Array, E, R>
}

/**
 * One request of a job, as the store keeps it.
 *
 * @since 0.1.0
 * @category models
 */
export interface PlannedRequest {
  /** Its place in the job's input order, from 0. */
  readonly idx: number
  readonly customId: string
  /** The line as written. */
  readonly line: string
  readonly url: string
  readonly model: string
  readonly bytes: number
  readonly tokens: number
  readonly embeddingInputs: number
  readonly shard: string
}

/**
 * One shard: the requests one batch takes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Shard {
  readonly shard: string
  readonly url: string
  readonly model: string
  readonly requests: number
  readonly bytes: number
  readonly tokens: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Plan {
  readonly requests: number
  readonly bytes: number
  readonly shards: ReadonlyArray<Shard>
  readonly models: ReadonlyArray<string>
}

/**
 * A problem of one input line (or of the job), `FILE:LINE: message (code)` in `message`.
 *
 * @since 0.1.0
 * @category errors
 */
export interface Problem {
  readonly file: string
  readonly line: number | null
  readonly code: BatchLine.InputProblem["code"] | "request_too_large"
  readonly message: string
}

/**
 * The inputs would not make a job: nothing was sent. `problems` holds the first 100, in order;
 * `count` says how many there were.
 *
 * @since 0.1.0
 * @category errors
 */
export class PlanError extends Data.TaggedError("PlanError")<{
  readonly problems: ReadonlyArray<Problem>
  readonly count: number
}> {
  override get message(): string {
    const lines = this.problems.map(
      (p) => `${p.file}${p.line !== null ? `:${p.line}` : ""}: ${p.message} (${p.code})`
    )
    const more = this.count - this.problems.length
    return `${lines.join("\n")}${more > 0 ? `\n… and ${more} more` : ""}`
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface PlanOptions {
  readonly options: Job.ResolvedOptions
  /** How many tokens a request puts in the queue. Default `BatchLine.estimateTokens`. */
  readonly estimateTokens?: ((request: BatchLine.InputLine, line: string) => number) | undefined
  /** The endpoints batches take. Default: the provider's (`options.provider`). */
  readonly endpoints?: ReadonlyArray<string> | "any" | undefined
  /** Where the planned requests go, a chunk at a time, in input order (the store, or nowhere for a dry run). */
  readonly onRequests?: ((requests: ReadonlyArray<PlannedRequest>) => Effect.Effect<void>) | undefined
  /** The names of the shards (default `s0`, `s1`, …): retry rounds use `r1s0`, … */
  readonly shardPrefix?: string | undefined
}

interface OpenShard {
  shard: string
  readonly url: string
  readonly model: string
  requests: number
  bytes: number
  tokens: number
  inputs: number
}

/**
 * Cuts requests into shards, in order, per (url, model): a shard closes when the next request
 * would take it over a limit. Shared by the planner and by retry rounds.
 *
 * @since 0.1.0
 * @category planning
 */
export const sharder = (options: Job.ResolvedOptions, prefix = "s") => {
  // per url, per model: no key string built for every request
  const open = new Map<string, Map<string, OpenShard>>()
  const shards: Array<OpenShard> = []
  return {
    add: (request: {
      readonly url: string
      readonly model: string
      readonly bytes: number
      readonly tokens: number
      readonly embeddingInputs: number
    }): string => {
      let byModel = open.get(request.url)
      if (byModel === undefined) {
        byModel = new Map()
        open.set(request.url, byModel)
      }
      let shard = byModel.get(request.model)
      const maxTokens = Job.tokenLimit(options, request.model)
      const embeddings = isEmbeddings(request.url) ? request.embeddingInputs : 0
      if (
        shard === undefined ||
        shard.requests + 1 > options.maxRequests ||
        shard.bytes + request.bytes > options.maxBytes ||
        shard.inputs + embeddings > options.maxEmbeddingInputs ||
        (maxTokens !== undefined && shard.tokens + request.tokens > maxTokens)
      ) {
        shard = {
          shard: `${prefix}${shards.length}`,
          url: request.url,
          model: request.model,
          requests: 0,
          bytes: 0,
          tokens: 0,
          inputs: 0
        }
        shards.push(shard)
        byModel.set(request.model, shard)
      }
      shard.requests++
      shard.bytes += request.bytes
      shard.tokens += request.tokens
      shard.inputs += embeddings
      return shard.shard
    },
    shards: (): ReadonlyArray<Shard> =>
      shards.map(({ shard, url, model, requests, bytes, tokens }) => ({
        shard,
        url,
        model,
        requests,
        bytes,
        tokens
      }))
  }
}

const maxKept = 100
/** Requests handed to `onRequests` at a time. */
const chunkSize = 2000

/**
 * Plans a job from its inputs: checks every line, cuts the requests into shards, and hands the
 * requests to `onRequests` as it goes. Fails with `PlanError` (every problem with its file and
 * line) when anything is wrong, before `onRequests` has been given the whole job.
 *
 * @since 0.1.0
 * @category planning
 */
export const plan = <E, R>(
  inputs: ReadonlyArray<Input<E, R>>,
  options: PlanOptions
): Effect.Effect<Plan, PlanError | E, R> =>
  Effect.gen(function* () {
    const provider = Provider.profiles[options.options.provider]
    const endpoints = options.endpoints ?? provider.limits.endpoints
    const estimate = options.estimateTokens ?? BatchLine.estimateTokens
    const keep = options.onRequests !== undefined
    const problems: Array<Problem> = []
    let count = 0
    const report = (problem: Problem) => {
      count++
      if (problems.length < maxKept) problems.push(problem)
    }
    // a 53-bit hash of every custom_id, in a typed array (8 bytes a request where the strings
    // would cost many times that); sorted once the inputs are read, an equal pair marks a hash
    // worth a second look, and only then are the inputs read again for the ids themselves
    let hashes = new Float64Array(1 << 16)
    let hashCount = 0
    const checkedUrls = new Set<string>()
    const shards = sharder(options.options, options.shardPrefix)
    const models = new Set<string>()
    let idx = 0
    let bytes = 0
    let pending: Array<PlannedRequest> = []
    const flush = Effect.suspend(() => {
      if (pending.length === 0 || count > 0 || options.onRequests === undefined) {
        pending = []
        return Effect.void
      }
      const out = pending
      pending = []
      return options.onRequests(out)
    })
    for (let file = 0; file < inputs.length; file++) {
      const input = inputs[file]!
      // the requests of the previous chunk go to the store while this one is read
      const bytesIn = Stream.tap(input.bytes, () => (pending.length >= chunkSize ? flush : Effect.void))
      const scanned = yield* BatchLine.scanInput(bytesIn, {
        onProblem: (p) => report({ file: input.name, ...p }),
        onRequest: ({ line, text, request, bytes: length }) => {
          if (hashCount === hashes.length) {
            const grown = new Float64Array(hashes.length * 2)
            grown.set(hashes)
            hashes = grown
          }
          hashes[hashCount++] = idHash(request.custom_id)
          if (!checkedUrls.has(request.url)) {
            checkedUrls.add(request.url)
            if (endpoints !== "any" && !endpoints.includes(request.url))
              report({
                file: input.name,
                ...BatchLine.unknownEndpoint(
                  request.url,
                  line,
                  endpoints,
                  options.options.provider === "openai" ? undefined : options.options.provider
                )
              })
          }
          const model = typeof request.body.model === "string" ? request.body.model : ""
          const tokens = estimate(request, text)
          const embeddingInputs = BatchLine.embeddingInputs(request)
          if (
            length > options.options.maxBytes ||
            (isEmbeddings(request.url) && embeddingInputs > options.options.maxEmbeddingInputs)
          ) {
            report({
              file: input.name,
              line,
              code: "request_too_large",
              message: `one request of ${length} bytes (${embeddingInputs} inputs) does not fit a batch of at most ${options.options.maxBytes} bytes and ${options.options.maxEmbeddingInputs} inputs`
            })
            return
          }
          if (count > 0) return
          models.add(model)
          bytes += length
          const shard = shards.add({ url: request.url, model, bytes: length, tokens, embeddingInputs })
          if (!keep) {
            idx++
            return
          }
          pending.push({
            idx: idx++,
            customId: request.custom_id,
            line: text,
            url: request.url,
            model,
            bytes: length,
            tokens,
            embeddingInputs,
            shard
          })
        }
      }).pipe(Effect.tap(() => flush))
      if (scanned.lines === 0)
        report({ file: input.name, line: null, code: "empty_file", message: "the file holds no requests" })
    }
    yield* flush
    const suspects = repeated(hashes.subarray(0, hashCount))
    hashes = new Float64Array(0)
    const duplicates = suspects.size === 0 ? [] : yield* findDuplicates(inputs, suspects)
    if (count > 0 || duplicates.length > 0) {
      const all = [
        ...duplicates.map(({ file, line, id, first }) => ({
          file: inputs[file]!.name,
          line,
          code: "duplicate_custom_id" as const,
          message: `custom_id ${JSON.stringify(id)} is used more than once (first at ${inputs[Math.floor(first / 2 ** 26)]!.name}:${first % 2 ** 26})`,
          at: file * 2 ** 26 + line
        })),
        ...problems.map((p) => ({
          ...p,
          at: inputs.findIndex((i) => i.name === p.file) * 2 ** 26 + (p.line ?? 2 ** 26 - 1)
        }))
      ].sort((a, b) => a.at - b.at)
      return yield* Effect.fail(
        new PlanError({
          problems: all.slice(0, maxKept).map(({ at: _, ...p }) => p),
          count: count + duplicates.length
        })
      )
    }
    return { requests: idx, bytes, shards: shards.shards(), models: [...models] }
  })

/** A 53-bit hash of a string: two 32-bit FNV-1a variants, 32 + 21 bits of them. */
const idHash = (s: string): number => {
  let a = 0x811c9dc5
  let b = 0x9747b28c
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
    b ^= b >>> 13
  }
  return (a >>> 0) * 2 ** 21 + ((b >>> 0) >>> 11)
}

/** The values that occur more than once. */
const repeated = (values: Float64Array): Set<number> => {
  const sorted = values.slice().sort()
  const out = new Set<number>()
  for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) out.add(sorted[i]!)
  return out
}

/**
 * The duplicate custom_ids, each with where its id first appeared: a second pass over the inputs
 * looks at the ids whose hash was seen more than once. (Two different ids with one hash, one
 * chance in 2^53 a pair, are told apart here.) The pass runs only when the first one found some.
 */
const findDuplicates = <E, R>(inputs: ReadonlyArray<Input<E, R>>, suspects: ReadonlySet<number>) =>
  Effect.gen(function* () {
    const first = new Map<string, number>()
    const duplicates: Array<{
      readonly id: string
      readonly file: number
      readonly line: number
      readonly first: number
    }> = []
    for (let file = 0; file < inputs.length; file++) {
      yield* BatchLine.scanInput(inputs[file]!.bytes, {
        onProblem: () => {},
        onRequest: ({ line, request }) => {
          if (!suspects.has(idHash(request.custom_id))) return
          const at = first.get(request.custom_id)
          if (at === undefined) first.set(request.custom_id, file * 2 ** 26 + line)
          else duplicates.push({ id: request.custom_id, file, line, first: at })
        }
      })
    }
    return duplicates
  })
