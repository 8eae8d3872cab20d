import { it, expect } from "vitest"
import { Schema } from "effect"
import { BatchLine } from "../src/index.js"
it("outcome classes built fast equal the constructor's", () => {
  const line = {
    id: "r",
    custom_id: "a",
    response: { status_code: 200, request_id: "q", body: { x: 1 } },
    error: null
  }
  const fast = BatchLine.toOutcome(line)
  const slow = new BatchLine.Succeeded({
    customId: "a",
    statusCode: 200,
    requestId: "q",
    body: { x: 1 },
    line
  })
  expect(fast).toBeInstanceOf(BatchLine.Succeeded)
  expect(fast._tag).toBe("Succeeded")
  expect({ ...fast }).toEqual({ ...slow })
  expect(Schema.is(BatchLine.Succeeded)(fast)).toBe(true)
})
