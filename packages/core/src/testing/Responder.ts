/**
 * What the simulator answers for each request of a batch. A responder is a pure function of the
 * input line (and its index); the default gives a deterministic, plausible body per endpoint with
 * a `usage`, and {@link failing} makes chosen lines fail with an HTTP status and error body.
 *
 * @since 0.1.0
 */
import type { BatchLine } from "../index.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Response {
  readonly status: number
  readonly body: unknown
}

/**
 * The answer to one request: `index` is its line in the batch (0-based), `attempt` how many
 * batches of this simulator have run a request with this `custom_id`, this one included.
 *
 * @since 0.1.0
 * @category models
 */
export type Responder = (request: BatchLine.InputLine, index: number, attempt: number) => Response

/** FNV-1a: a small, stable hash for ids and numbers that depend only on the input. */
export const hash = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

const hex = (text: string, length = 24) => {
  let out = ""
  for (let i = 0; out.length < length; i++) out += hash(`${i}:${text}`).toString(16).padStart(8, "0")
  return out.slice(0, length)
}

const tokens = (value: unknown) => Math.max(1, Math.ceil(JSON.stringify(value ?? "").length / 4))

const created = 1_730_000_000

/**
 * A deterministic answer per endpoint: `chat.completion`, an embedding `list`, a `response`, a
 * `text_completion`, a moderation, or an echo for other endpoints.
 *
 * @since 0.1.0
 * @category responders
 */
export const plausible: Responder = (request) => {
  const body = request.body
  const model = typeof body.model === "string" ? body.model : "gpt-4o-mini"
  const seed = `${request.custom_id}:${JSON.stringify(body)}`
  const text = `Simulated answer to ${request.custom_id}.`
  const input = tokens(body.messages ?? body.input ?? body.prompt)
  const output = tokens(text)
  // Azure's lines name their endpoint without /v1: /chat/completions
  switch (request.url.startsWith("/v1/") ? request.url : `/v1${request.url}`) {
    case "/v1/chat/completions":
      return {
        status: 200,
        body: {
          id: `chatcmpl-${hex(seed, 20)}`,
          object: "chat.completion",
          created,
          model,
          choices: [
            {
              index: 0,
              message: { role: "assistant", content: text, refusal: null },
              logprobs: null,
              finish_reason: "stop"
            }
          ],
          usage: {
            prompt_tokens: input,
            completion_tokens: output,
            total_tokens: input + output,
            prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
            completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 }
          },
          system_fingerprint: null
        }
      }
    case "/v1/embeddings": {
      const inputs = Array.isArray(body.input) ? body.input : [body.input]
      return {
        status: 200,
        body: {
          object: "list",
          data: inputs.map((item, index) => ({
            object: "embedding",
            index,
            embedding: Array.from(
              { length: 8 },
              (_, k) => (hash(`${k}:${JSON.stringify(item)}`) / 0xffffffff) * 2 - 1
            )
          })),
          model,
          usage: { prompt_tokens: input, total_tokens: input }
        }
      }
    }
    case "/v1/responses":
      return {
        status: 200,
        body: {
          id: `resp_${hex(seed)}`,
          object: "response",
          created_at: created,
          status: "completed",
          model,
          output: [
            {
              type: "message",
              id: `msg_${hex(`m${seed}`)}`,
              status: "completed",
              role: "assistant",
              content: [{ type: "output_text", text, annotations: [] }]
            }
          ],
          usage: {
            input_tokens: input,
            input_tokens_details: { cached_tokens: 0 },
            output_tokens: output,
            output_tokens_details: { reasoning_tokens: 0 },
            total_tokens: input + output
          }
        }
      }
    case "/v1/completions":
      return {
        status: 200,
        body: {
          id: `cmpl-${hex(seed, 20)}`,
          object: "text_completion",
          created,
          model,
          choices: [{ text, index: 0, logprobs: null, finish_reason: "stop" }],
          usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output }
        }
      }
    case "/v1/moderations":
      return {
        status: 200,
        body: {
          id: `modr-${hex(seed, 20)}`,
          model: typeof body.model === "string" ? body.model : "omni-moderation-latest",
          results: [{ flagged: false, categories: {}, category_scores: {} }]
        }
      }
    default:
      return {
        status: 200,
        body: { id: `sim_${hex(seed)}`, object: "simulated", created, model, echo: body }
      }
  }
}

/**
 * The error body a failing line gets by default.
 *
 * @since 0.1.0
 * @category responders
 */
export const defaultError = {
  message: "Simulated failure of this request.",
  type: "invalid_request_error",
  param: null,
  code: null
}

/**
 * Makes the lines `which` picks fail with `status` (default 400) and `error`, answering the rest
 * with `base` (default {@link plausible}).
 *
 * @since 0.1.0
 * @category responders
 * @example
 * ```ts
 * Responder.failing((line) => line.custom_id.endsWith("-7"), { status: 429 })
 * Responder.failing(["request-3"], { error: { message: "max_tokens is too large", type: "invalid_request_error", param: "max_tokens", code: null } })
 * ```
 */
export const failing = (
  which: Iterable<string> | ((request: BatchLine.InputLine, index: number) => boolean),
  options?: {
    readonly status?: number | undefined
    readonly error?:
      | {
          readonly message: string
          readonly type?: string
          readonly param?: string | null
          readonly code?: string | null
        }
      | undefined
    readonly base?: Responder | undefined
  }
): Responder => {
  const ids = typeof which === "function" ? undefined : new Set(which)
  const picks =
    typeof which === "function" ? which : (request: BatchLine.InputLine) => ids!.has(request.custom_id)
  const base = options?.base ?? plausible
  const error = { ...defaultError, ...options?.error }
  return (request, index, attempt) =>
    picks(request, index)
      ? { status: options?.status ?? 400, body: { error } }
      : base(request, index, attempt)
}

const transientErrors: Record<number, { message: string; type: string }> = {
  429: { message: "Rate limit reached for requests. Please try again later.", type: "requests" },
  500: {
    message: "The server had an error while processing your request. Sorry about that!",
    type: "server_error"
  },
  503: { message: "The server is overloaded or not ready yet.", type: "server_error" }
}

/**
 * Makes the lines `which` picks fail with a transient status (default 500; 429 and 503 too) on
 * their first attempt only: run again (in a retry round), they get `base`'s answer. What retry
 * rounds of a job are for.
 *
 * @since 0.2.0
 * @category responders
 */
export const transient = (
  which: Iterable<string> | ((request: BatchLine.InputLine, index: number) => boolean),
  options?: { readonly status?: 429 | 500 | 503 | undefined; readonly base?: Responder | undefined }
): Responder => {
  const status = options?.status ?? 500
  const error = { ...transientErrors[status]!, param: null, code: null }
  const ids = typeof which === "function" ? undefined : new Set(which)
  const picks =
    typeof which === "function" ? which : (request: BatchLine.InputLine) => ids!.has(request.custom_id)
  const base = options?.base ?? plausible
  return (request, index, attempt) =>
    attempt === 1 && picks(request, index) ? { status, body: { error } } : base(request, index, attempt)
}
