/**
 * What tokens cost at batch prices: a table of common models in US dollars per million tokens
 * (input, cached input, output), shipped as data with its date and source, and replaceable with
 * a table of your own (`Prices.fromJson`). A model not in the table is counted, not priced.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/**
 * @since 0.1.0
 * @category models
 */
export const Price = Schema.Struct({
  input: Schema.Number,
  cached_input: Schema.Number,
  output: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type Price = typeof Price.Type

/**
 * @since 0.1.0
 * @category models
 */
export const Table = Schema.Struct({
  /** When the prices were read. */
  date: Schema.String,
  /** Where from. */
  source: Schema.String,
  /** USD per million tokens, at batch prices, by model (a dated snapshot name matches its base: `gpt-4o-mini-2024-07-18` → `gpt-4o-mini`). */
  models: Schema.Record({ key: Schema.String, value: Price })
})

/**
 * @since 0.1.0
 * @category models
 */
export type Table = typeof Table.Type

/**
 * The prices shipped with batchkit: the Batch API's 50% of each model's standard price. The
 * figures were read from secondary pages that quote OpenAI's pricing page (listed in `source`),
 * not from OpenAI itself; check them against https://platform.openai.com/docs/pricing and give
 * a table of your own where they matter.
 *
 * @since 0.1.0
 * @category tables
 */
export const batch2026: Table = {
  date: "2026-12-02",
  source:
    "OpenAI's standard prices halved (the Batch API's discount), as quoted by chatgptpricing-akr.pages.dev/api-pricing, deploybase.ai/articles/openai-pricing and tokenmath.io (checked 2026-12-02); secondary sources",
  models: {
    "gpt-5": { input: 0.625, cached_input: 0.0625, output: 5 },
    "gpt-5-mini": { input: 0.125, cached_input: 0.0125, output: 1 },
    "gpt-5-nano": { input: 0.025, cached_input: 0.0025, output: 0.2 },
    "gpt-4.1": { input: 1, cached_input: 0.25, output: 4 },
    "gpt-4.1-mini": { input: 0.2, cached_input: 0.05, output: 0.8 },
    "gpt-4.1-nano": { input: 0.05, cached_input: 0.0125, output: 0.2 },
    "gpt-4o": { input: 1.25, cached_input: 0.625, output: 5 },
    "gpt-4o-mini": { input: 0.075, cached_input: 0.0375, output: 0.3 },
    o3: { input: 1, cached_input: 0.25, output: 4 },
    "o4-mini": { input: 0.55, cached_input: 0.1375, output: 2.2 },
    "text-embedding-3-small": { input: 0.01, cached_input: 0.01, output: 0 },
    "text-embedding-3-large": { input: 0.065, cached_input: 0.065, output: 0 }
  }
}

/**
 * The price of a model, by its name or the name without a date suffix.
 *
 * @since 0.1.0
 * @category pricing
 */
export const priceOf = (table: Table, model: string): Price | undefined =>
  table.models[model] ?? table.models[model.replace(/-\d{4}-\d{2}-\d{2}$/, "")]

/**
 * The cost of tokens of one model in USD, or undefined when the table does not know it. Cached
 * input tokens are part of the input tokens and are charged at the cached price; reasoning tokens
 * are part of the output tokens.
 *
 * @since 0.1.0
 * @category pricing
 */
export const cost = (
  table: Table,
  model: string,
  tokens: { readonly input: number; readonly cached: number; readonly output: number }
): number | undefined => {
  const price = priceOf(table, model)
  if (price === undefined) return undefined
  const fresh = Math.max(0, tokens.input - tokens.cached)
  return (fresh * price.input + tokens.cached * price.cached_input + tokens.output * price.output) / 1_000_000
}

const decodeTable = Schema.decodeUnknownEither(Schema.parseJson(Table))

/**
 * A table from JSON text (`{"date", "source", "models": {"gpt-4o-mini": {"input", "cached_input", "output"}}}`),
 * or the reason it is not one.
 *
 * @since 0.1.0
 * @category tables
 */
export const fromJson = (text: string): Either.Either<Table, string> =>
  Either.mapLeft(decodeTable(text), (e) => ParseResult.TreeFormatter.formatErrorSync(e))
