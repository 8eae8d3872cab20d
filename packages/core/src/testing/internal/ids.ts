import { hash } from "../Responder.js"

/**
 * Ids in the API's shapes (`batch_…`, `file-…`, `req_…`): a counter hashed with a salt, so that
 * one simulator never repeats an id and two simulators (two emulator processes, say) do not hand
 * out the same ones. A fixed `seed` makes them repeatable.
 */
export const make = (seed: string = globalThis.crypto.randomUUID()) => {
  let counter = 0
  return (prefix: string, length = 24): string => {
    counter++
    let id = ""
    for (let i = 0; id.length < length; i++)
      id += hash(`${seed}:${prefix}${counter}:${i}`).toString(16).padStart(8, "0")
    return `${prefix}${id.slice(0, length)}`
  }
}

export type NextId = ReturnType<typeof make>
