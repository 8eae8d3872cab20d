// Bundles the CLI (dist/bundle/main.js, with @batchkit/node and undici in a chunk loaded only by
// the commands that need them) so that it starts fast, then renders its --help into
// dist/help.txt for bin.js to print without loading the CLI at all.
import { execFileSync } from "node:child_process"
import { readFileSync, rmSync, writeFileSync } from "node:fs"
import { build } from "esbuild"

const dist = new URL("../dist/", import.meta.url)
const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))
// chunk names are content hashes: clear the old ones so none ship in the package
rmSync(new URL("bundle", dist), { recursive: true, force: true })
await build({
  entryPoints: [new URL("main.js", dist).pathname],
  outdir: new URL("bundle", dist).pathname,
  bundle: true,
  splitting: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
  // a native addon: installed beside the bundle as the package's one dependency
  external: ["better-sqlite3"],
  define: { BATCHKIT_VERSION: JSON.stringify(version) },
  // a few dependencies still call require(); give the ES module one
  banner: {
    js: 'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);'
  }
})
const help = execFileSync(process.execPath, [new URL("bundle/main.js", dist).pathname, "--help"], {
  env: { ...process.env, NO_COLOR: "" }
})
writeFileSync(new URL("help.txt", dist), help)
