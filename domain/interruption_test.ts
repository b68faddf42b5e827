import assert from "node:assert/strict";
import { isInterruption, RunInterruptedError, untilAborted } from "./interruption.ts";

Deno.test("isInterruption() tells a shutdown from a cancel", () => {
  assert.equal(isInterruption(new RunInterruptedError()), true);
  assert.equal(new RunInterruptedError().code, "run_interrupted");
  const cancelled = new AbortController();
  cancelled.abort();
  assert.equal(isInterruption(cancelled.signal.reason), false);
  assert.equal(isInterruption(new Error("other")), false);
  assert.equal(isInterruption(undefined), false);
});

Deno.test("untilAborted() passes every item through when nothing aborts", async () => {
  async function* numbers() {
    yield 1;
    yield 2;
  }
  const seen: number[] = [];
  for await (const n of untilAborted(numbers(), new AbortController().signal)) seen.push(n);
  for await (const n of untilAborted(numbers(), undefined)) seen.push(n);
  assert.deepEqual(seen, [1, 2, 1, 2]);
});

Deno.test("untilAborted() throws the reason while the source is still waiting, and closes it", async () => {
  const released = Promise.withResolvers<void>();
  let closed = false;
  async function* stalling() {
    try {
      yield 1;
      await released.promise;
      yield 2;
    } finally {
      closed = true;
    }
  }
  const controller = new AbortController();
  const reason = new RunInterruptedError();
  const seen: number[] = [];
  const reading = (async () => {
    for await (const n of untilAborted(stalling(), controller.signal)) {
      seen.push(n);
      queueMicrotask(() => controller.abort(reason));
    }
  })();
  await assert.rejects(reading, (e) => e === reason);
  assert.deepEqual(seen, [1]);
  released.resolve();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(closed, true, "the source was asked to finish");
});

Deno.test("untilAborted() refuses to start on an aborted signal, and passes source errors on", async () => {
  const controller = new AbortController();
  controller.abort(new Error("early"));
  async function* one() {
    yield 1;
  }
  await assert.rejects(Array.fromAsync(untilAborted(one(), controller.signal)), /early/);
  async function* failing(): AsyncGenerator<number> {
    yield 1;
    throw new Error("source failed");
  }
  await assert.rejects(
    Array.fromAsync(untilAborted(failing(), new AbortController().signal)),
    /source failed/,
  );
});
