// The floor of any planner that checks every line: the file read in 1 MiB pieces, cut into lines
// and each line given to JSON.parse, nothing else. `pnpm bench --only jobs` runs it beside the
// planner on the same input, so the planner's MB/s reads against what this machine can parse.
//   node json-floor.mjs <file.jsonl>   prints the lines parsed
import { createReadStream } from "node:fs"

const decoder = new TextDecoder()
let lines = 0
let rest = new Uint8Array(0)
for await (const piece of createReadStream(process.argv[2], { highWaterMark: 1024 * 1024 })) {
  const chunk = rest.length > 0 ? Buffer.concat([rest, piece]) : piece
  const last = chunk.lastIndexOf(10)
  const text = decoder.decode(chunk.subarray(0, last + 1))
  rest = chunk.subarray(last + 1)
  let start = 0
  for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", start)) {
    JSON.parse(text.slice(start, nl))
    lines++
    start = nl + 1
  }
}
if (rest.length > 0) {
  JSON.parse(decoder.decode(rest))
  lines++
}
console.log(lines)
