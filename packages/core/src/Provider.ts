/**
 * Providers: who serves the Batch API and how to talk to them. A profile says how to
 * authenticate (`Authorization: Bearer` or Azure's `api-key`), the query parameters every request
 * carries (Azure's `api-version`), extra headers, and the limits that local validation and the
 * job planner apply: requests and bytes per batch, the `completion_window`s and endpoints a batch
 * may have, and whether a line's `url` carries `/v1`.
 *
 * Every fact has its source and the date it was read (`sources`); where the source is secondary
 * (a reading of the provider's page, not an API schema), `secondary` says so.
 *
 * @since 0.4.0
 * @example
 * ```ts
 * import { BatchConfig, Provider } from "@batchkit/core"
 * // Azure OpenAI, classic form: https://RESOURCE.openai.azure.com/openai?api-version=…
 * const Azure = BatchConfig.layer({
 *   apiKey: "…",
 *   provider: Provider.azure,
 *   baseUrl: "https://my-resource.openai.azure.com/openai",
 *   apiVersion: "2024-10-21"
 * })
 * ```
 */

import { KnownEndpoint } from "./Batch.js"

/**
 * The names of the profiles.
 *
 * @since 0.4.0
 * @category models
 */
export type Name = "openai" | "azure" | "groq" | "compatible"

/**
 * @since 0.4.0
 * @category models
 */
export const names: ReadonlyArray<Name> = ["openai", "azure", "groq", "compatible"]

/**
 * What a provider takes in one batch.
 *
 * @since 0.4.0
 * @category models
 */
export interface Limits {
  /** Requests (lines) in one input file. */
  readonly requests: number
  /** Bytes of one input file. */
  readonly bytes: number
  /** Inputs across the `/embeddings` lines of one batch, where the provider counts them. */
  readonly embeddingInputs: number | undefined
  /**
   * The `completion_window` values a batch may have: a list, or a range of hours for a provider
   * that takes any `Nh` / `Nd` between two bounds (Groq); an empty list takes any.
   */
  readonly completionWindows: ReadonlyArray<string> | { readonly minHours: number; readonly maxHours: number }
  /** The endpoints a batch may have, as its lines' `url` spell them; `"any"` checks none. */
  readonly endpoints: ReadonlyArray<string> | "any"
}

/**
 * Where a fact comes from.
 *
 * @since 0.4.0
 * @category models
 */
export interface Source {
  readonly url: string
  /** The day it was read. */
  readonly read: string
  /** True when what we have is a reading of a page, not the provider's own schema. */
  readonly secondary: boolean
  readonly facts: string
}

/**
 * A provider profile.
 *
 * @since 0.4.0
 * @category models
 */
export interface Profile {
  readonly name: Name
  /** `bearer`: `Authorization: Bearer KEY`; `api-key`: an `api-key: KEY` header (Azure's keys). */
  readonly auth: "bearer" | "api-key"
  /** The base URL when none is given; `undefined` when one must be (Azure, compatible). */
  readonly defaultBaseUrl: string | undefined
  /** `/v1`: lines' `url`s are `/v1/chat/completions`; `""`: `/chat/completions` (Azure). */
  readonly urlPrefix: "/v1" | ""
  readonly limits: Limits
  /** The environment variables the profile reads, as the official SDKs read them. */
  readonly env: {
    readonly apiKey: string
    readonly baseUrl: string | undefined
    readonly apiVersion: string | undefined
    readonly adToken: string | undefined
  }
  readonly sources: ReadonlyArray<Source>
}

const megabytes = (n: number) => n * 1024 * 1024

/**
 * OpenAI's own API.
 *
 * @since 0.4.0
 * @category profiles
 */
export const openai: Profile = {
  name: "openai",
  auth: "bearer",
  defaultBaseUrl: "https://api.openai.com/v1",
  urlPrefix: "/v1",
  limits: {
    requests: 50_000,
    bytes: megabytes(200),
    embeddingInputs: 50_000,
    completionWindows: ["24h"],
    endpoints: KnownEndpoint.literals
  },
  env: { apiKey: "OPENAI_API_KEY", baseUrl: "OPENAI_BASE_URL", apiVersion: undefined, adToken: undefined },
  sources: [
    {
      url: "https://platform.openai.com/docs/api-reference/batch/create",
      read: "2026-12-02",
      secondary: false,
      facts:
        "endpoints, completion_window 24h, 50,000 requests and 200 MB per input file, 50,000 embedding inputs (the OpenAPI spec, as in shared/spec)"
    }
  ]
}

/**
 * Azure OpenAI (global and data zone batch deployments). The base URL is the resource's
 * `https://RESOURCE.openai.azure.com/openai` with an `api-version` on every request, or
 * `…/openai/v1` (the v1 API: no `api-version`). Keys go in an `api-key` header; an Azure AD
 * (Entra ID) token goes as `Authorization: Bearer`. A line's `url` is `/chat/completions` and its
 * `model` the deployment's name.
 *
 * @since 0.4.0
 * @category profiles
 */
export const azure: Profile = {
  name: "azure",
  auth: "api-key",
  defaultBaseUrl: undefined,
  urlPrefix: "",
  limits: {
    requests: 100_000,
    bytes: megabytes(200),
    embeddingInputs: undefined,
    completionWindows: ["24h"],
    endpoints: ["/chat/completions", "/embeddings", "/responses"]
  },
  env: {
    apiKey: "AZURE_OPENAI_API_KEY",
    baseUrl: "AZURE_OPENAI_ENDPOINT",
    apiVersion: "OPENAI_API_VERSION",
    adToken: "AZURE_OPENAI_AD_TOKEN"
  },
  sources: [
    {
      url: "https://learn.microsoft.com/azure/ai-foundry/openai/how-to/batch",
      read: "2026-12-02",
      secondary: true,
      facts:
        "100,000 requests and 200 MB per input file, completion_window 24h, lines with url /chat/completions and the deployment name as model, api-version 2024-10-21 or the v1 API; /embeddings and /responses as batch endpoints are our reading of the same page"
    },
    {
      url: "https://github.com/openai/openai-node/blob/master/src/azure.ts",
      read: "2026-12-02",
      secondary: false,
      facts:
        "AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT, OPENAI_API_VERSION; the api-key header; the Azure AD token as a bearer token (openai 6.49.0)"
    }
  ]
}

/**
 * Groq's OpenAI-compatible batch API at `https://api.groq.com/openai/v1`.
 *
 * @since 0.4.0
 * @category profiles
 */
export const groq: Profile = {
  name: "groq",
  auth: "bearer",
  defaultBaseUrl: "https://api.groq.com/openai/v1",
  urlPrefix: "/v1",
  limits: {
    requests: 50_000,
    bytes: megabytes(200),
    embeddingInputs: undefined,
    completionWindows: { minHours: 24, maxHours: 7 * 24 },
    endpoints: ["/v1/chat/completions", "/v1/audio/transcriptions", "/v1/audio/translations"]
  },
  env: { apiKey: "GROQ_API_KEY", baseUrl: "GROQ_BASE_URL", apiVersion: undefined, adToken: undefined },
  sources: [
    {
      url: "https://console.groq.com/docs/batch",
      read: "2026-12-02",
      secondary: true,
      facts:
        "50,000 requests and 200 MB per input file; completion_window from 24h to 7d; /v1/chat/completions, /v1/audio/transcriptions and /v1/audio/translations"
    }
  ]
}

/**
 * Any server that speaks OpenAI's wire format at a base URL of your choosing: OpenAI's limits
 * by default, every endpoint and window allowed; give the server's own with {@link withLimits}.
 *
 * @since 0.4.0
 * @category profiles
 */
export const compatible: Profile = {
  name: "compatible",
  auth: "bearer",
  defaultBaseUrl: undefined,
  urlPrefix: "/v1",
  limits: { ...openai.limits, completionWindows: [], endpoints: "any" },
  env: { apiKey: "OPENAI_API_KEY", baseUrl: "OPENAI_BASE_URL", apiVersion: undefined, adToken: undefined },
  sources: []
}

/**
 * @since 0.4.0
 * @category profiles
 */
export const profiles: Readonly<Record<Name, Profile>> = { openai, azure, groq, compatible }

/**
 * A profile with some limits replaced (a `compatible` server's, or a quota of your own).
 *
 * @since 0.4.0
 * @category combinators
 */
export const withLimits = (profile: Profile, limits: Partial<Limits>): Profile => ({
  ...profile,
  limits: { ...profile.limits, ...limits }
})

/**
 * Whether a profile takes `completion_window` `window` (an empty list takes any).
 *
 * @since 0.4.0
 * @category predicates
 */
export const acceptsWindow = (profile: Profile, window: string): boolean => {
  const windows = profile.limits.completionWindows
  if ("minHours" in windows) {
    const m = /^(\d+)([hd])$/.exec(window)
    if (m === null) return false
    const hours = Number(m[1]) * (m[2] === "d" ? 24 : 1)
    return hours >= windows.minHours && hours <= windows.maxHours
  }
  return windows.length === 0 || windows.includes(window)
}

/**
 * The windows a profile takes, in words (for messages).
 *
 * @since 0.4.0
 * @category formatting
 */
export const describeWindows = (profile: Profile): string => {
  const windows = profile.limits.completionWindows
  if ("minHours" in windows) return `${windows.minHours}h to ${windows.maxHours / 24}d (e.g. 24h, 48h, 7d)`
  return windows.length === 0 ? "any" : windows.join(", ")
}
