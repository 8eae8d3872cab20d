/** A small multipart/form-data parser over bytes, for the simulator's uploads (no Node APIs). */

export interface Part {
  readonly name: string
  readonly filename: string | undefined
  readonly contentType: string | undefined
  readonly data: Uint8Array
}

const indexOf = (haystack: Uint8Array, needle: Uint8Array, from: number): number => {
  const first = needle[0]
  const last = haystack.length - needle.length
  outer: for (
    let i = haystack.indexOf(first as number, from);
    i !== -1 && i <= last;
    i = haystack.indexOf(first as number, i + 1)
  ) {
    for (let k = 1; k < needle.length; k++) if (haystack[i + k] !== needle[k]) continue outer
    return i
  }
  return -1
}

export const boundaryOf = (contentType: string | undefined): string | undefined => {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? "")
  return m?.[1] ?? m?.[2]
}

const decoder = new TextDecoder()
const encoder = new TextEncoder()

/** The parts of a multipart body, or undefined when it is not well formed. */
export const parse = (body: Uint8Array, boundary: string): Array<Part> | undefined => {
  const delimiter = encoder.encode(`--${boundary}`)
  const parts: Array<Part> = []
  let start = indexOf(body, delimiter, 0)
  if (start === -1) return undefined
  for (;;) {
    const afterDelimiter = start + delimiter.length
    // "--" after the delimiter closes the body
    if (body[afterDelimiter] === 45 && body[afterDelimiter + 1] === 45) return parts
    const headStart = afterDelimiter + 2
    const headEnd = indexOf(body, encoder.encode("\r\n\r\n"), headStart)
    if (headEnd === -1) return undefined
    const next = indexOf(body, encoder.encode(`\r\n--${boundary}`), headEnd + 4)
    if (next === -1) return undefined
    const head = decoder.decode(body.subarray(headStart, headEnd))
    const disposition = /content-disposition:([^\r\n]*)/i.exec(head)?.[1] ?? ""
    const name = /\bname="([^"]*)"/i.exec(disposition)?.[1]
    const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1]
    const contentType = /content-type:\s*([^\r\n]*)/i.exec(head)?.[1]?.trim()
    if (name !== undefined)
      parts.push({ name, filename, contentType, data: body.subarray(headEnd + 4, next) })
    start = next + 2
  }
}
