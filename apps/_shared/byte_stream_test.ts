import assert from "node:assert/strict";
import { byteStream } from "./byte_stream.ts";

Deno.test("byteStream() gives the parts' bytes in order, without copying them first", async () => {
  const parts = [new Uint8Array([1, 2]), new Uint8Array(0), new Uint8Array([3])];
  const response = new Response(byteStream(parts));
  // Handed over, not copied: a change made before the body is read shows in it.
  parts[0]![0] = 9;
  assert.deepEqual(new Uint8Array(await response.arrayBuffer()), new Uint8Array([9, 2, 3]));
});
