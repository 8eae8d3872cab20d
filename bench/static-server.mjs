// A server that answers every batch request with the same JSON, as fast as node:http goes: what
// the clients' own cost per page and per request is measured against (no emulator work in it).
//   node static-server.mjs <page.json> <batch.json>   prints its base URL
import { readFileSync } from "node:fs"
import { createServer } from "node:http"

const page = readFileSync(process.argv[2])
const batch = readFileSync(process.argv[3])
const server = createServer((req, res) => {
  const path = (req.url ?? "/").split("?")[0]
  const body = path === "/v1/batches" ? page : path.startsWith("/v1/batches/") ? batch : undefined
  if (body === undefined) {
    res.writeHead(404, { "content-type": "application/json" })
    return res.end('{"error":{"message":"not here","type":"invalid_request_error","param":null,"code":null}}')
  }
  res.writeHead(200, { "content-type": "application/json", "content-length": body.byteLength })
  res.end(body)
})
server.keepAliveTimeout = 65_000
server.listen(0, "127.0.0.1", () => console.log(`http://127.0.0.1:${server.address().port}/v1`))
