/**
 * What the API does between `validating` and `in_progress`: checks the input file (with the same
 * rules as `BatchLine.validateInput`, so a file the dry run passes is one the simulator runs) and
 * decides, through the responder, what each request will answer.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as BatchLine from "../../BatchLine.js"
import type * as Responder from "../Responder.js"
import { decoder } from "./wire.js"

export interface Validated {
  readonly problems: ReadonlyArray<BatchLine.InputProblem>
  readonly lines: ReadonlyArray<BatchLine.InputLine>
  readonly responses: ReadonlyArray<Responder.Response>
  /** failedBefore[k] = how many of the first k lines failed. */
  readonly failedBefore: Int32Array
  readonly model: string | null
}

const isOk = (r: Responder.Response) => r.status >= 200 && r.status < 300

export const validate = (
  content: Uint8Array,
  endpoint: string,
  responder: Responder.Responder
): Effect.Effect<Validated> =>
  Effect.gen(function* () {
    const summary = yield* BatchLine.validateInput(Stream.succeed(content), {
      endpoint,
      // the create route has checked the endpoint already; the API does not know our list
      endpoints: "any",
      maxProblems: 1000
    })
    const model = summary.model ?? null
    if (summary.problems.length > 0) {
      return { problems: summary.problems, lines: [], responses: [], failedBefore: new Int32Array(1), model }
    }
    const lines: Array<BatchLine.InputLine> = []
    for (const text of decoder.decode(content).split("\n")) {
      if (text.trim() !== "") lines.push(JSON.parse(text) as BatchLine.InputLine)
    }
    const responses = lines.map((line, i) => responder(line, i))
    const failedBefore = new Int32Array(lines.length + 1)
    responses.forEach((r, i) => {
      failedBefore[i + 1] = (failedBefore[i] ?? 0) + (isOk(r) ? 0 : 1)
    })
    return { problems: [], lines, responses, failedBefore, model }
  })
