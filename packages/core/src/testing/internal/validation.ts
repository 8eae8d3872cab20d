/**
 * What the API does between `validating` and `in_progress`: checks the input file (with the same
 * rules as `BatchLine.validateInput`, so a file the dry run passes is one the simulator runs),
 * refuses a batch over its model's enqueued-token limit, and decides, through the responder,
 * what each request will answer.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as BatchLine from "../../BatchLine.js"
import type * as Provider from "../../Provider.js"
import type * as Responder from "../Responder.js"
import { decoder } from "./wire.js"

export interface Validated {
  readonly problems: ReadonlyArray<BatchLine.InputProblem | TokenLimitProblem>
  /** How many requests the batch holds (`lines` is emptied once its files are written). */
  readonly count: number
  readonly lines: ReadonlyArray<BatchLine.InputLine>
  readonly responses: ReadonlyArray<Responder.Response>
  /** failedBefore[k] = how many of the first k lines failed. */
  readonly failedBefore: Int32Array
  readonly model: string | null
  /** The enqueued tokens the batch holds while it runs (`BatchLine.estimateTokens` summed). */
  readonly tokens: number
}

export interface TokenLimitProblem {
  readonly line: null
  readonly code: "token_limit_exceeded"
  readonly message: string
}

const isOk = (r: Responder.Response) => r.status >= 200 && r.status < 300

/** The API's message for a batch over the limit (as users have reported it). */
export const tokenLimitProblem = (model: string, limit: number): TokenLimitProblem => ({
  line: null,
  code: "token_limit_exceeded",
  message: `Enqueued token limit reached for ${model} in organization org-simulated. Limit: ${limit.toLocaleString("en-US")} enqueued tokens. Please try again once some in_progress batches have been completed.`
})

export interface Checks {
  readonly provider: Provider.Profile
  readonly responder: Responder.Responder
  /** How many times a request with this custom_id has run before (and counts this run). */
  readonly attempt: (customId: string) => number
  /** The problem when the model's limit cannot take `tokens` more now, if any. */
  readonly admit: (model: string | null, tokens: number) => Effect.Effect<TokenLimitProblem | undefined>
}

export const validate = (content: Uint8Array, endpoint: string, checks: Checks): Effect.Effect<Validated> =>
  Effect.gen(function* () {
    const summary = yield* BatchLine.validateInput(Stream.succeed(content), {
      endpoint,
      // the create route has checked the endpoint already; the API does not know our list
      endpoints: "any",
      provider: checks.provider,
      maxProblems: 1000
    })
    const model = summary.model ?? null
    const refused = (problems: Validated["problems"], tokens = 0): Validated => ({
      problems,
      count: 0,
      lines: [],
      responses: [],
      failedBefore: new Int32Array(1),
      model,
      tokens
    })
    if (summary.problems.length > 0) return refused(summary.problems)
    const lines: Array<BatchLine.InputLine> = []
    let tokens = 0
    for (const text of decoder.decode(content).split("\n")) {
      if (text.trim() === "") continue
      const line = JSON.parse(text) as BatchLine.InputLine
      lines.push(line)
      tokens += BatchLine.estimateTokens(line)
    }
    const overLimit = yield* checks.admit(model, tokens)
    if (overLimit !== undefined) return refused([overLimit])
    const responses = lines.map((line, i) => checks.responder(line, i, checks.attempt(line.custom_id)))
    const failedBefore = new Int32Array(lines.length + 1)
    responses.forEach((r, i) => {
      failedBefore[i + 1] = (failedBefore[i] ?? 0) + (isOk(r) ? 0 : 1)
    })
    return { problems: [], count: lines.length, lines, responses, failedBefore, model, tokens }
  })
