/**
 * The simulator's side of HTTP: the request it is handed, the reply it gives, and the API's
 * shapes for JSON answers, error bodies, pages and the `limit` parameter.
 */

export interface Request {
  readonly method: string
  /** The URL's path, e.g. `/v1/batches`. */
  readonly path: string
  readonly query: URLSearchParams
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly body: Uint8Array
}

export type Reply =
  | {
      readonly _tag: "Answer"
      readonly status: number
      readonly headers: Record<string, string>
      readonly body: Uint8Array
      /** Send the headers and half the body, then cut the connection. */
      readonly truncate?: boolean
    }
  | { readonly _tag: "Reset" }

export const encoder = new TextEncoder()
export const decoder = new TextDecoder()

export const json = (status: number, body: unknown, headers: Record<string, string> = {}): Reply => ({
  _tag: "Answer",
  status,
  headers: { "content-type": "application/json", ...headers },
  body: encoder.encode(JSON.stringify(body))
})

/** The API's error body. */
export const errorBody = (
  message: string,
  type = "invalid_request_error",
  param: string | null = null,
  code: string | null = null
) => ({ error: { message, type, param, code } })

/** A 400 `invalid_request_error`, the most common answer to a bad parameter. */
export const invalidValue = (message: string, param: string | null, code: string | null = "invalid_value") =>
  json(400, errorBody(message, "invalid_request_error", param, code))

export const notFound = (message: string, param: string | null) =>
  json(404, errorBody(message, "invalid_request_error", param))

export const invalidUrl = (req: Request) => json(404, errorBody(`Invalid URL (${req.method} ${req.path})`))

/** The body as a JSON object, or undefined when it is not one. */
export const parseJsonObject = (body: Uint8Array): Record<string, unknown> | undefined => {
  try {
    const value = JSON.parse(decoder.decode(body)) as unknown
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

/** One page of a cursor list; an `after` the list does not hold gives an empty page. */
export const page = <A extends { readonly id: string }>(
  items: ReadonlyArray<A>,
  after: string | null,
  limit: number
) => {
  const start = after === null ? 0 : items.findIndex((i) => i.id === after) + 1
  const data = after !== null && start === 0 ? [] : items.slice(start, start + limit)
  return {
    object: "list" as const,
    data,
    first_id: data[0]?.id ?? null,
    last_id: data.at(-1)?.id ?? null,
    has_more: start + data.length < items.length && data.length > 0
  }
}

/** The `limit` query parameter, or the API's 400 for one out of range. */
export const limitOf = (query: URLSearchParams, fallback: number, max: number): number | Reply => {
  const raw = query.get("limit")
  if (raw === null) return fallback
  const n = Number(raw)
  if (Number.isInteger(n) && n >= 1 && n <= max) return n
  return invalidValue(
    `Invalid 'limit': integer must be between 1 and ${max}, got ${raw}.`,
    "limit",
    "integer_out_of_range"
  )
}

/** `expires_after` / `output_expires_after` seconds: the API takes 1 hour to 30 days. */
export const expiresAfterLimits = { min: 3600, max: 2_592_000 } as const
