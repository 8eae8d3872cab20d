/** The options every command that talks to the API takes, and the layer they build. */
import { BatchConfig, BatchError, type BatchService, type FileService, type Provider } from "@batchkit/core"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { Emulator } from "@batchkit/node"
import { existsSync, statSync } from "node:fs"
import { UsageError } from "./Exit.js"

const units = { ms: "millis", s: "seconds", m: "minutes", h: "hours", d: "days" } as const

/** `250ms`, `30s`, `5m`, `1h`, `7d`. */
export const parseDuration = (text: string): Option.Option<Duration.Duration> => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim())
  if (!m) return Option.none()
  const n = Number(m[1])
  const unit = units[m[2] as keyof typeof units]
  const duration = Duration.decode(`${n} ${unit}` as Duration.DurationInput)
  return Duration.greaterThan(duration, Duration.zero) ? Option.some(duration) : Option.none()
}

const invalidOption = (message: string) => ValidationError.invalidValue(HelpDoc.p(message))

/** An optional duration option, checked by @effect/cli (a bad one is a usage error). */
export const durationOption = (name: string, description: string) =>
  Options.text(name).pipe(
    Options.withPseudoName("DURATION"),
    Options.mapEffect((text) =>
      Option.match(parseDuration(text), {
        onNone: () =>
          Effect.fail(
            invalidOption(`--${name}: '${text}' is not a duration; write it like 250ms, 30s or 5m`)
          ),
        onSome: Effect.succeed
      })
    ),
    Options.optional,
    Options.withDescription(description)
  )

/**
 * How long files are kept, as the API takes it (`expires_after` / `output_expires_after`): 1 hour
 * to 30 days, counted from the file's creation. A value outside is bad usage.
 */
export const expiryOption = (name: string, description: string) =>
  Options.text(name).pipe(
    Options.withPseudoName("DURATION"),
    Options.mapEffect((text) => {
      const d = parseDuration(text)
      const seconds = Option.isSome(d) ? Duration.toSeconds(d.value) : Number.NaN
      return Number.isInteger(seconds) && seconds >= 3600 && seconds <= 2_592_000
        ? Effect.succeed({ anchor: "created_at" as const, seconds })
        : Effect.fail(
            invalidOption(
              `--${name}: '${text}' must be a whole number of seconds from 1h to 30d (3600 to 2592000 s), e.g. 7d`
            )
          )
    }),
    Options.optional,
    Options.withDescription(description)
  )

/** `--metadata k=v`, repeatable. */
export const metadataOption = Options.text("metadata").pipe(
  Options.withPseudoName("KEY=VALUE"),
  Options.repeated,
  Options.mapEffect((pairs) => {
    const metadata: Record<string, string> = {}
    for (const pair of pairs) {
      const eq = pair.indexOf("=")
      if (eq <= 0) return Effect.fail(invalidOption(`--metadata: '${pair}' is not key=value`))
      metadata[pair.slice(0, eq)] = pair.slice(eq + 1)
    }
    return Effect.succeed(metadata)
  }),
  Options.withDescription("a metadata pair on the batch")
)

/** Spelled out here (not `Provider.names`) so the commands' types name no module of core's. */
export const providerNames = [
  "openai",
  "azure",
  "groq",
  "compatible"
] as const satisfies ReadonlyArray<Provider.Name>

export const common = {
  apiKey: Options.redacted("api-key").pipe(
    Options.withPseudoName("KEY"),
    Options.optional,
    Options.withDescription(
      "the API key (default: $OPENAI_API_KEY; with --provider azure $AZURE_OPENAI_API_KEY, groq $GROQ_API_KEY)"
    )
  ),
  baseUrl: Options.text("base-url").pipe(
    Options.withPseudoName("URL"),
    Options.optional,
    Options.withDescription(
      "the API's base URL (default: $OPENAI_BASE_URL, else https://api.openai.com/v1; azure: $AZURE_OPENAI_ENDPOINT)"
    )
  ),
  provider: Options.choice("provider", providerNames).pipe(
    Options.withFallbackConfig(Config.literal(...providerNames)("BATCHKIT_PROVIDER")),
    Options.withDefault("openai" as const),
    Options.withDescription(
      "whose Batch API: openai, azure, groq or compatible; its limits apply to local checks (default: $BATCHKIT_PROVIDER, else openai)"
    )
  ),
  apiVersion: Options.text("api-version").pipe(
    Options.withPseudoName("VERSION"),
    Options.withFallbackConfig(Config.string("OPENAI_API_VERSION")),
    Options.optional,
    Options.withDescription("Azure's api-version, sent on every request (default: $OPENAI_API_VERSION)")
  ),
  header: Options.text("header").pipe(
    Options.withPseudoName("NAME=VALUE"),
    Options.repeated,
    Options.withDescription("a header sent on every request (repeatable)")
  ),
  organization: Options.text("organization").pipe(
    Options.withPseudoName("ID"),
    Options.withFallbackConfig(Config.string("OPENAI_ORG_ID")),
    Options.optional,
    Options.withDescription("sent as OpenAI-Organization (default: $OPENAI_ORG_ID)")
  ),
  project: Options.text("project").pipe(
    Options.withPseudoName("ID"),
    Options.withFallbackConfig(Config.string("OPENAI_PROJECT_ID")),
    Options.optional,
    Options.withDescription("sent as OpenAI-Project (default: $OPENAI_PROJECT_ID)")
  ),
  maxRetries: Options.integer("max-retries").pipe(
    Options.withPseudoName("N"),
    Options.withDefault(2),
    Options.withDescription("retries after a transient failure (default 2)")
  ),
  timeout: durationOption("timeout", "the longest one attempt may wait, e.g. 30s (default 10m)"),
  json: Options.boolean("json").pipe(
    Options.withDescription("print the API's JSON on stdout (one object per line for lists and streams)")
  )
}

/** `--webhook-listen HOST:PORT` and `--webhook-secret`: receive batch events instead of only polling. */
export const webhookOptions = {
  webhookListen: Options.text("webhook-listen").pipe(
    Options.withPseudoName("HOST:PORT"),
    Options.optional,
    Options.withDescription(
      "receive signed batch webhooks on http://HOST:PORT/webhooks and poll only as a fallback (needs --webhook-secret)"
    )
  ),
  webhookSecret: Options.redacted("webhook-secret").pipe(
    Options.withPseudoName("SECRET"),
    Options.withFallbackConfig(Config.redacted("OPENAI_WEBHOOK_SECRET")),
    Options.optional,
    Options.withDescription(
      "the webhook endpoint's signing secret, whsec_… (default: $OPENAI_WEBHOOK_SECRET)"
    )
  )
}

export interface WebhookOptions {
  readonly webhookListen: Option.Option<string>
  readonly webhookSecret: Option.Option<Redacted.Redacted<string>>
}

/**
 * With `--webhook-listen`, runs `effect` with a webhook receiver in its context: watchers wake on
 * events. Without it, runs it as it is.
 */
export const withWebhooks =
  (options: WebhookOptions) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.suspend((): Effect.Effect<A, E | UsageError | Emulator.ListenError, R> => {
      if (Option.isNone(options.webhookListen)) return effect
      const m = /^(?:(.*):)?(\d+)$/.exec(options.webhookListen.value.trim())
      const port = m === null ? Number.NaN : Number(m[2])
      if (!(port >= 0 && port <= 65535))
        return Effect.fail(
          new UsageError({ message: `--webhook-listen: '${options.webhookListen.value}' is not HOST:PORT` })
        )
      if (Option.isNone(options.webhookSecret))
        return Effect.fail(
          new UsageError({
            message:
              "--webhook-listen needs --webhook-secret (or OPENAI_WEBHOOK_SECRET): events are verified with it"
          })
        )
      const host = m?.[1] || "127.0.0.1"
      const secret = options.webhookSecret.value
      return Effect.flatMap(node, ({ NodeWebhooks }) =>
        Effect.gen(function* () {
          const receiver = yield* NodeWebhooks.NodeWebhookReceiver
          yield* Effect.logDebug(`receiving webhooks on ${receiver.url}`)
          process.stderr.write(`receiving batch webhooks on ${receiver.url}\n`)
          return yield* effect
        }).pipe(Effect.provide(NodeWebhooks.layer({ secret, host, port })))
      )
    })

/** An input file given on the command line: it must exist and not be a folder (bad usage else). */
export const inputFile = (path: string, option: string) =>
  Effect.suspend(() =>
    !existsSync(path)
      ? Effect.fail(new UsageError({ message: `${option}: ${path}: no such file` }))
      : statSync(path).isDirectory()
        ? Effect.fail(new UsageError({ message: `${option}: ${path} is a directory, not a file` }))
        : Effect.succeed(path)
  )

export interface Common {
  readonly apiKey: Option.Option<Redacted.Redacted<string>>
  readonly baseUrl: Option.Option<string>
  readonly provider: (typeof providerNames)[number]
  readonly apiVersion: Option.Option<string>
  readonly header: ReadonlyArray<string>
  readonly organization: Option.Option<string>
  readonly project: Option.Option<string>
  readonly maxRetries: number
  readonly timeout: Option.Option<Duration.Duration>
  readonly json: boolean
}

/**
 * @batchkit/node, loaded when a command first needs it: it brings undici, which is as large as
 * Effect itself, and `--help` or a usage error should not pay for it.
 */
export const node = Effect.promise(() => import("@batchkit/node"))

/**
 * Provides both services from the common options. Everything wrong with them is bad usage,
 * found before any request: a missing key, a base URL that is not one, negative retries.
 */
/**
 * The client's configuration from the common options. Everything wrong with them is bad usage,
 * found before any request: a missing key, a base URL that is not one, negative retries.
 */
export const batchConfig = (options: Common): Effect.Effect<BatchConfig.Options, UsageError> =>
  Effect.gen(function* () {
    // the provider's own variables, as its SDK reads them; flags win over them
    const env = yield* BatchConfig.fromEnv(options.provider).pipe(
      Effect.mapError((e) => new UsageError({ message: `the environment: ${e}` }))
    )
    const provider = env.provider
    const flagKey = Option.filter(options.apiKey, (k) => Redacted.value(k).trim() !== "")
    const apiKey = Option.isSome(flagKey) ? flagKey.value : env.apiKey
    const adToken = Option.isSome(flagKey) ? undefined : env.azureAdToken
    if (apiKey === undefined && adToken === undefined) {
      return yield* new UsageError({
        message:
          provider.name === "azure"
            ? "no API key: set AZURE_OPENAI_API_KEY (or AZURE_OPENAI_AD_TOKEN, an Entra ID token) or pass --api-key"
            : `no API key: set ${provider.env.apiKey} (export ${provider.env.apiKey}=…) or pass --api-key`
      })
    }
    if (options.maxRetries < 0) return yield* new UsageError({ message: "--max-retries must be 0 or more" })
    // an empty OPENAI_BASE_URL means "not set", as it does for the official SDKs
    const flagUrl = Option.getOrUndefined(options.baseUrl)?.trim()
    const url = (flagUrl !== undefined && flagUrl !== "" ? flagUrl : env.baseUrl) ?? provider.defaultBaseUrl
    if (url === undefined)
      return yield* new UsageError({
        message: `--provider ${provider.name} needs --base-url${provider.env.baseUrl ? ` (or ${provider.env.baseUrl})` : ""}`
      })
    try {
      const parsed = new URL(url)
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("not http")
    } catch {
      return yield* new UsageError({ message: `--base-url: '${url}' is not an http(s) URL` })
    }
    const headers: Record<string, string> = {}
    for (const spec of options.header) {
      const m = /^([^=:\s]+)\s*[=:]\s*(.*)$/.exec(spec)
      if (m === null) return yield* new UsageError({ message: `--header: '${spec}' is not NAME=VALUE` })
      headers[m[1]!] = m[2]!
    }
    const config: BatchConfig.Options = {
      provider,
      ...(apiKey !== undefined ? { apiKey } : { azureAdToken: adToken }),
      baseUrl: url,
      apiVersion: Option.getOrUndefined(options.apiVersion),
      headers,
      organization: Option.getOrUndefined(options.organization),
      project: Option.getOrUndefined(options.project),
      maxRetries: options.maxRetries,
      timeout: Option.getOrUndefined(options.timeout)
    }
    // everything BatchConfig refuses (an Azure URL without api-version, a header that would
    // replace the key) is bad usage, told before any request
    try {
      BatchConfig.make(config)
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e)
      return yield* new UsageError({
        message: message
          .replace(/\bapiVersion\b/, "--api-version")
          .replace(/^header /, "--header ")
          .replace(/^header name /, "--header ")
      })
    }
    return config
  })

/** Provides both services from the common options (see {@link batchConfig}). */
export const withServices =
  (options: Common) =>
  <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | UsageError, Exclude<R, BatchService.BatchService | FileService.FileService>> =>
    Effect.flatMap(batchConfig(options), (config) =>
      Effect.provide(
        effect,
        Layer.unwrapEffect(Effect.map(node, ({ NodeBatch }) => NodeBatch.layer(config)))
      ).pipe(Effect.mapError((e) => withUrlHint(e, config.baseUrl ?? BatchConfig.defaultBaseUrl)))
    )

/**
 * A 404 for an unknown URL (not an unknown batch or file) usually means a base URL without its
 * `/v1`: the error says so, with the URL to try.
 */
export const withUrlHint = <E>(error: E, baseUrl: string): E => {
  if (!(error instanceof BatchError.NotFound) || !error.message.startsWith("Invalid URL")) return error
  const path = new URL(baseUrl).pathname.replace(/\/+$/, "")
  if (path.endsWith("/v1")) return error
  const suggested = `${baseUrl.replace(/\/+$/, "")}/v1`
  return new BatchError.NotFound({
    ...error,
    message: `${error.message}; the base URL ${baseUrl} may be missing /v1: try --base-url ${suggested} (or OPENAI_BASE_URL=${suggested})`
  }) as E
}
