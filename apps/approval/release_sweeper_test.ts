import assert from "node:assert/strict";
import { startReleaseSweeper } from "./release_sweeper.ts";

Deno.test("the sweeper sweeps one at a time until stopped, and stopping waits for the sweep under way", async () => {
  let sweeps = 0;
  let running = 0;
  let overlapped = false;
  let release: (() => void) | undefined;
  const third = Promise.withResolvers<void>();
  const sweeper = startReleaseSweeper(async () => {
    running++;
    overlapped ||= running > 1;
    sweeps++;
    if (sweeps === 3) {
      third.resolve();
      await new Promise<void>((resolve) => release = resolve);
    }
    running--;
  }, 1);
  await third.promise;
  let stopped = false;
  const stopping = sweeper.stop().then(() => stopped = true);
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(stopped, false, "stop waits for the sweep under way");
  release?.();
  await stopping;
  assert.equal(sweeps, 3, "no sweep after stop");
  assert.equal(overlapped, false);
  await sweeper.stop();
});
