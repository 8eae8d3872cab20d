import { Jobs } from "@batchkit/jobs"
import { NodeFileSource } from "@batchkit/node"
import * as NodeJobs from "@batchkit/node/NodeJobs"
import { Effect, Stream } from "effect"

const program = Effect.gen(function* () {
  const jobs = yield* Jobs.Jobs
  // planned locally: every line checked, cut into shards of at most 100 requests; nothing sent yet
  const { id, plan } = yield* jobs.submit(
    [{ name: "requests.jsonl", bytes: NodeFileSource.stream("requests.jsonl") }],
    {
      maxRequests: 100
    }
  )
  yield* Effect.log(`${id}: ${plan.requests} requests in ${plan.shards.length} shards`)
  // the workflow runs in this process; after a crash, the same `start` resumes it
  yield* jobs.start(id)
  const done = yield* jobs.await(id)
  yield* Effect.log(`${done.status}: ${done.requests.succeeded} succeeded, $${done.cost.usd}`)
  // one line per request, in input order, with the attempts each took
  yield* Stream.runForEach(jobs.results(id), (line) =>
    Effect.log(line.custom_id, line.outcome, line.attempts)
  )
})

// the store is .batchkit/state.db; OPENAI_API_KEY and OPENAI_BASE_URL from the environment
Effect.runPromise(program.pipe(Effect.provide(NodeJobs.layerConfig())))
