/**
 * Where and how batchkit talks to the API: key, base URL, organization, project, timeout and
 * retry policy. The key is `Redacted` from the moment it is read.
 *
 * @since 0.1.0
 * @example
 * ```ts
 * import { BatchConfig } from "@batchkit/core"
 * // from OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_PROJECT_ID
 * const FromEnv = BatchConfig.layerConfig()
 * // or explicitly
 * const Explicit = BatchConfig.layer({ apiKey: "sk-…", maxRetries: 4, timeout: "30 seconds" })
 * ```
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Schedule from "effect/Schedule"
import * as ConfigErrorModule from "effect/ConfigError"
import type { BatchError } from "./BatchError.js"
import * as Provider from "./Provider.js"
import * as RetryPolicy from "./RetryPolicy.js"

/**
 * The default base URL.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBaseUrl = "https://api.openai.com/v1"

/**
 * The resolved configuration.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly apiKey: Redacted.Redacted<string>
  /** Without a trailing slash, e.g. `https://api.openai.com/v1`. */
  readonly baseUrl: string
  /** Sent as `OpenAI-Organization` when set. */
  readonly organization: Option.Option<string>
  /** Sent as `OpenAI-Project` when set. */
  readonly project: Option.Option<string>
  /**
   * The longest one attempt may wait for an answer; for downloads, for the headers and then
   * (over `@batchkit/node`) for each next piece of the body, so a stalled download fails.
   */
  readonly timeout: Duration.Duration
  /** Decides, from the failure of an attempt, whether and when to try again. */
  readonly retry: Schedule.Schedule<unknown, BatchError>
  /**
   * Whether `create` tags each batch with an idempotency key in its metadata and, after an
   * ambiguous failure, looks for it before sending again, so that a retry never makes a second
   * batch. On by default; it takes one of the 16 metadata pairs.
   */
  readonly idempotentCreate: boolean
  /** Who serves the API: how to authenticate, and the limits local validation applies. */
  readonly provider: Provider.Profile
  /**
   * How the key goes: `bearer` (`Authorization: Bearer`; also an Azure AD token) or `api-key`
   * (an `api-key` header, Azure's keys).
   */
  readonly auth: "bearer" | "api-key"
  /** Query parameters every request carries (Azure's `api-version`). */
  readonly query: Readonly<Record<string, string>>
  /** Headers every request carries, beside the key and OpenAI's organization and project. */
  readonly headers: Readonly<Record<string, string>>
  /**
   * Asked for a bearer token before each request, in place of `apiKey` (Azure's Entra ID
   * tokens, which expire within hours).
   */
  readonly tokenProvider: Option.Option<Effect.Effect<Redacted.Redacted<string>, unknown>>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class BatchConfig extends Context.Tag("@batchkit/core/BatchConfig")<BatchConfig, Service>() {}

/**
 * What {@link make} and {@link layer} take; everything but the key has a default.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The key; for Azure, give `azureAdToken` instead to authenticate with Entra ID. */
  readonly apiKey?: Redacted.Redacted<string> | string | undefined
  /** An Azure AD (Entra ID) access token, sent as `Authorization: Bearer` (Azure only). */
  readonly azureAdToken?: Redacted.Redacted<string> | string | undefined
  /**
   * Gives an Entra ID token before each request (Azure only), as the official SDK's
   * `azureADTokenProvider` does: for jobs that outlive a token. Caching and refreshing are the
   * provider's (`@azure/identity`'s credentials do both); a failure is a `TransportError`.
   */
  readonly azureAdTokenProvider?: Effect.Effect<Redacted.Redacted<string> | string, unknown> | undefined
  /**
   * The base URL. Query parameters in it (`…/openai?api-version=2024-10-21`) are sent on every
   * request. For Azure, the resource's endpoint alone (`https://RESOURCE.openai.azure.com`)
   * means its `/openai` path.
   */
  readonly baseUrl?: string | undefined
  /** Default `openai`. */
  readonly provider?: Provider.Profile | Provider.Name | undefined
  /** Azure's `api-version`, sent as a query parameter (the classic `…/openai` form needs one). */
  readonly apiVersion?: string | undefined
  /** Headers sent on every request. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly organization?: string | undefined
  readonly project?: string | undefined
  /** Per attempt. Default 10 minutes, like the official SDKs. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Retries after the first attempt with the default policy. Default 2. Ignored when `retry` is given. */
  readonly maxRetries?: number | undefined
  /** Replaces the retry policy entirely. */
  readonly retry?: Schedule.Schedule<unknown, BatchError> | undefined
  /** Default `true`. */
  readonly idempotentCreate?: boolean | undefined
}

const nonEmpty = (s: string | undefined): Option.Option<string> =>
  s === undefined || s.trim() === "" ? Option.none() : Option.some(s.trim())

/**
 * Why a configuration cannot work (no key, an Azure URL without its `api-version`, a header
 * that would replace the key): a mistake of the caller, told before any request.
 *
 * @since 0.4.0
 * @category errors
 */
export class InvalidConfig extends Error {
  readonly _tag = "InvalidConfig"
}

/** Headers batchkit sets itself: `headers` may not replace them. */
const reserved = new Set(["authorization", "api-key", "content-type", "content-length", "host"])

/**
 * The configuration, resolved: the provider's defaults applied, query parameters taken out of
 * the base URL, the key's header chosen. Throws {@link InvalidConfig} on a configuration that
 * cannot work.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Service => {
  const provider =
    typeof options.provider === "string"
      ? Provider.profiles[options.provider]
      : (options.provider ?? Provider.openai)
  if (provider === undefined)
    throw new InvalidConfig(
      `unknown provider ${String(options.provider)}; one of ${Provider.names.join(", ")}`
    )
  const adToken = options.azureAdToken
  const tokenProvider = options.azureAdTokenProvider
  if ((adToken !== undefined || tokenProvider !== undefined) && provider.name !== "azure")
    throw new InvalidConfig("azureAdToken and azureAdTokenProvider are for the azure provider")
  const secret = options.apiKey ?? adToken ?? (tokenProvider !== undefined ? "" : undefined)
  if (secret === undefined) throw new InvalidConfig(`no API key: give apiKey (${provider.env.apiKey})`)
  const given = options.baseUrl ?? provider.defaultBaseUrl
  if (given === undefined)
    throw new InvalidConfig(
      `the ${provider.name} provider needs a base URL${provider.env.baseUrl ? ` (${provider.env.baseUrl})` : ""}`
    )
  let url: URL
  try {
    url = new URL(given)
  } catch {
    throw new InvalidConfig(`base URL ${JSON.stringify(given)} is not a URL`)
  }
  const query: Record<string, string> = {}
  for (const [k, v] of url.searchParams) query[k] = v
  const versionInUrl = query["api-version"] !== undefined
  if (options.apiVersion !== undefined && options.apiVersion.trim() !== "")
    query["api-version"] = options.apiVersion.trim()
  let path = url.pathname.replace(/\/+$/, "")
  if (provider.name === "azure") {
    // the resource's endpoint alone, as AZURE_OPENAI_ENDPOINT holds it: its /openai path
    if (path === "") path = "/openai"
    const v1 = /\/openai\/v1$/.test(path)
    if (!v1 && query["api-version"] === undefined)
      throw new InvalidConfig(
        `Azure's ${url.origin}${path} needs an api-version (apiVersion, OPENAI_API_VERSION, or ?api-version= in the URL), or use the v1 API at ${url.origin}/openai/v1`
      )
    // the v1 API takes no version: one from OPENAI_API_VERSION (set for the classic form) is
    // left out; one written in the URL itself (`?api-version=preview`) is the caller's and kept
    if (v1 && !versionInUrl) delete query["api-version"]
  }
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(options.headers ?? {})) {
    const name = k.trim().toLowerCase()
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name))
      throw new InvalidConfig(`header name ${JSON.stringify(k)} is not a valid HTTP header name`)
    if (reserved.has(name))
      throw new InvalidConfig(`header ${name} is set by batchkit; it cannot be replaced`)
    headers[name] = v
  }
  return {
    apiKey: Redacted.isRedacted(secret) ? secret : Redacted.make(secret),
    baseUrl: `${url.origin}${path}`,
    organization: nonEmpty(options.organization),
    project: nonEmpty(options.project),
    timeout: Duration.decode(options.timeout ?? "10 minutes"),
    retry: options.retry ?? RetryPolicy.make({ maxRetries: options.maxRetries }),
    idempotentCreate: options.idempotentCreate ?? true,
    provider,
    auth:
      (adToken !== undefined || tokenProvider !== undefined) && options.apiKey === undefined
        ? "bearer"
        : provider.auth,
    tokenProvider:
      tokenProvider !== undefined && options.apiKey === undefined && adToken === undefined
        ? Option.some(
            Effect.map(tokenProvider, (token) => (Redacted.isRedacted(token) ? token : Redacted.make(token)))
          )
        : Option.none(),
    query,
    headers
  }
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<BatchConfig> => Layer.succeed(BatchConfig, make(options))

/**
 * What the environment says for a provider, as its official SDK reads it (empty means unset):
 * the key (`OPENAI_API_KEY`, `AZURE_OPENAI_API_KEY`, `GROQ_API_KEY`; redacted), for Azure an
 * Entra ID token when there is no key (`AZURE_OPENAI_AD_TOKEN`), the base URL
 * (`OPENAI_BASE_URL`, `AZURE_OPENAI_ENDPOINT` else `OPENAI_BASE_URL`, `GROQ_BASE_URL`),
 * `OPENAI_API_VERSION`, `OPENAI_ORG_ID` and `OPENAI_PROJECT_ID`. The provider is the one given,
 * else `BATCHKIT_PROVIDER`, else `openai`. Nothing is required here: {@link layerConfig} and
 * the CLI say what is missing in their own words.
 *
 * @since 0.4.0
 * @category constructors
 */
export const fromEnv = (
  given?: Provider.Profile | Provider.Name
): Effect.Effect<Options & { readonly provider: Provider.Profile }, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    const optional = (name: string | undefined) =>
      name === undefined
        ? Effect.succeed(undefined)
        : Effect.map(Config.option(Config.string(name)), (o) =>
            Option.getOrUndefined(Option.filter(o, (v) => v.trim() !== ""))
          )
    const name = given ?? ((yield* optional("BATCHKIT_PROVIDER")) as Provider.Name | undefined) ?? "openai"
    const provider = typeof name === "string" ? Provider.profiles[name] : name
    if (provider === undefined)
      return yield* Effect.fail(
        ConfigErrorModule.InvalidData(
          ["BATCHKIT_PROVIDER"],
          `unknown provider ${String(name)}; one of ${Provider.names.join(", ")}`
        )
      )
    const secret = (variable: string | undefined) =>
      Effect.map(optional(variable), (v) => (v === undefined ? undefined : Redacted.make(v.trim())))
    const apiKey = yield* secret(provider.env.apiKey)
    return {
      provider,
      apiKey,
      azureAdToken: apiKey === undefined ? yield* secret(provider.env.adToken) : undefined,
      baseUrl:
        (yield* optional(provider.env.baseUrl)) ??
        // Azure's SDK client reads OPENAI_BASE_URL too, in place of the endpoint
        (provider.name === "azure" ? yield* optional("OPENAI_BASE_URL") : undefined),
      apiVersion: yield* optional(provider.env.apiVersion),
      organization: yield* optional("OPENAI_ORG_ID"),
      project: yield* optional("OPENAI_PROJECT_ID")
    }
  })

/**
 * Reads the configuration from the `ConfigProvider` ({@link fromEnv}); `overrides` win over the
 * environment. A key is required: the provider's variable, `apiKey`, or for Azure an Entra ID
 * token (`AZURE_OPENAI_AD_TOKEN`, `azureAdToken` or `azureAdTokenProvider`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  overrides: Partial<Options> = {}
): Layer.Layer<BatchConfig, ConfigError.ConfigError> =>
  Layer.effect(
    BatchConfig,
    Effect.gen(function* () {
      const env = yield* fromEnv(overrides.provider)
      const given = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined))
      // a key given here replaces the environment's token as well as its key
      const keyed = overrides.apiKey !== undefined || overrides.azureAdToken !== undefined
      const options: Options = {
        ...env,
        ...(keyed || overrides.azureAdTokenProvider !== undefined
          ? { apiKey: undefined, azureAdToken: undefined }
          : {}),
        ...given
      }
      if (
        options.apiKey === undefined &&
        options.azureAdToken === undefined &&
        options.azureAdTokenProvider === undefined
      )
        return yield* Effect.fail(
          ConfigErrorModule.MissingData(
            [env.provider.env.apiKey],
            `${env.provider.env.apiKey} is not set (or empty); set it to your API key`
          )
        )
      return yield* Effect.try({
        try: () => make({ ...options, provider: env.provider }),
        catch: (e) => ConfigErrorModule.InvalidData([], e instanceof Error ? e.message : String(e))
      })
    })
  )
