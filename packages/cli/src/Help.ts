/**
 * The help pages: `batchkit --help`, `batchkit submit --help`, and so on. They are built from the
 * commands' own definitions (@effect/cli's help documents), without its boilerplate ("A
 * user-defined piece of text.", "This setting is optional."), its built-in options (--wizard,
 * --log-level) and its styling: plain text, the same on a terminal, in a pipe and under NO_COLOR.
 */
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import type * as HelpDoc from "@effect/cli/HelpDoc"
import type * as Span from "@effect/cli/HelpDoc/Span"
import { commandPaths, commands, commonFlags, description } from "./Cli.js"

const text = (span: Span.Span): string => {
  switch (span._tag) {
    case "Text":
    case "URI":
      return span.value
    case "Sequence":
      return text(span.left) + text(span.right)
    default:
      return text(span.value)
  }
}

/** What @effect/cli says of every option of a kind, which tells a reader nothing. */
const boilerplate =
  /^(A user-defined piece of text( that is confidential)?|An integer|A floating point number|A true or false value|A file|A directory|A path|This setting is optional|This option can be set from environment variables|This option may be repeated zero or more times|One of the following: .*)\.?$/

const builtIn = new Set(["--completions", "--log-level", "--wizard", "--version", "--help", "-h"])

interface Entry {
  readonly name: string
  readonly description: string
  readonly required?: boolean
}

interface Page {
  readonly description: string
  readonly args: ReadonlyArray<Entry>
  readonly options: ReadonlyArray<Entry>
}

const paragraphs = (doc: HelpDoc.HelpDoc): Array<string> => {
  switch (doc._tag) {
    case "Paragraph":
      return [text(doc.value)]
    case "Sequence":
      return [...paragraphs(doc.left), ...paragraphs(doc.right)]
    case "Enumeration":
      return doc.elements.flatMap(paragraphs)
    default:
      return []
  }
}

const blocks = (doc: HelpDoc.HelpDoc): Array<HelpDoc.HelpDoc> =>
  doc._tag === "Sequence" ? [...blocks(doc.left), ...blocks(doc.right)] : [doc]

/** The description, arguments and options of a command's help document. */
const page = (command: Command.Command<string, never, unknown, unknown>): Page => {
  let section = ""
  let about = ""
  const args: Array<Entry> = []
  const options: Array<Entry> = []
  for (const block of blocks(Command.getHelp(command, CliConfig.defaultConfig))) {
    if (block._tag === "Header") section = text(block.value)
    else if (block._tag === "Paragraph" && section === "DESCRIPTION") about = text(block.value)
    else if (block._tag === "DescriptionList") {
      for (const [span, doc] of block.definitions) {
        let name = text(span).replace(/^\((.*)\)$/, "$1")
        const all = paragraphs(doc)
        const said = all.filter((p) => !boilerplate.test(p))
        const repeated = name.endsWith("...")
        if (repeated) name = name.slice(0, -3)
        const entry = {
          name,
          description: `${said.join(" ")}${repeated ? " (repeatable)" : ""}`,
          required: !repeated && !all.some((p) => p.startsWith("This setting is optional"))
        }
        if (section === "ARGUMENTS") args.push({ ...entry, name: name.replace(/^<(.*)>$/, "$1") })
        else if (section === "OPTIONS" && !builtIn.has(name.split(" ")[0]!.replace(/,$/, "")))
          options.push(entry)
      }
    }
  }
  return { description: about, args, options }
}

const columns = (entries: ReadonlyArray<Entry>) => {
  const width = Math.min(30, Math.max(...entries.map((e) => e.name.length)))
  return entries.map((e) =>
    e.name.length > width
      ? `  ${e.name}\n  ${" ".repeat(width)}  ${e.description}`
      : `  ${e.name.padEnd(width)}  ${e.description}`
  )
}

const isCommon = (e: Entry) => commonFlags.includes(e.name.split(" ")[0]!)

const leaf = (path: ReadonlyArray<string>, p: Page): string => {
  const own = p.options.filter((e) => !isCommon(e))
  const api = p.options.filter(isCommon)
  const required = p.options.filter((o) => o.required)
  const usage = [
    "batchkit",
    ...path,
    ...required.map((o) => o.name),
    ...p.args.map((a) => a.name),
    ...(p.options.length > required.length ? ["[options]"] : [])
  ]
  return [
    `batchkit ${path.join(" ")}: ${p.description}`,
    "",
    `Usage: ${usage.join(" ")}`,
    ...(p.args.length > 0 ? ["", "Arguments:", ...columns(p.args)] : []),
    ...(own.length > 0 ? ["", "Options:", ...columns(own)] : []),
    ...(api.length > 0
      ? ["", "API options (every command that talks to the API takes them):", ...columns(api)]
      : []),
    "",
    "  -h, --help  show this help",
    ""
  ].join("\n")
}

const group = (path: ReadonlyArray<string>, p: Page): string => {
  const subs = commands.filter(
    (c) => c.path.length === path.length + 1 && path.every((s, i) => c.path[i] === s)
  )
  const entries = subs.map((c) => {
    const name = c.path.at(-1)!
    const more = commands.filter((d) => d.path.length === c.path.length + 1 && d.path[0] === name)
    const about = page(c.command).description
    return {
      name,
      description: more.length > 0 ? `${about} (${more.map((d) => d.path.at(-1)).join(" | ")})` : about
    }
  })
  const root = path.length === 0
  return [
    `batchkit${root ? "" : ` ${path.join(" ")}`}: ${root ? description : p.description}`,
    "",
    `Usage: batchkit ${root ? "" : `${path.join(" ")} `}<command> [options]`,
    "",
    "Commands:",
    ...columns(entries),
    "",
    `\`batchkit ${root ? "" : `${path.join(" ")} `}<command> --help\` shows a command's arguments and options.`,
    ...(root
      ? [
          `Every command that talks to the API takes ${commonFlags.join(", ")}.`,
          "Also: --version, --completions bash|zsh|fish|sh, -h/--help."
        ]
      : []),
    ""
  ].join("\n")
}

/** The help page of the command at `path` (the deepest known prefix of it). */
export const render = (path: ReadonlyArray<string>): string => {
  const known = commandPaths(path)
  const entry = commands.find((c) => c.path.join(" ") === known.join(" "))!
  const p = page(entry.command)
  const hasSubcommands = commands.some(
    (c) => c.path.length > known.length && known.every((s, i) => c.path[i] === s)
  )
  return hasSubcommands ? group(known, p) : leaf(known, p)
}
