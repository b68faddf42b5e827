/**
 * `returnFreedMemoryPromptly` changes what glibc's malloc does, checked in fresh processes (malloc's
 * thresholds are per process): after a 4 MiB block is freed, glibc by default takes the next 4 MiB
 * block from its heap; with the thresholds fixed it maps that block on its own again.
 *
 * @module
 */
import assert from "node:assert/strict";
import { inFreshProcess } from "../../tests/support/fresh_process.ts";

/** Frees a 4 MiB block, then reports how many bytes of a second one glibc mapped on their own. */
const PROBE = `
import { returnFreedMemoryPromptly } from ${
  JSON.stringify(new URL("./glibc_malloc.ts", import.meta.url).href)
};
const applied = Deno.args[0] === "apply" ? returnFreedMemoryPromptly() : null;
const { symbols } = Deno.dlopen("libc.so.6", {
  malloc: { parameters: ["usize"], result: "pointer" },
  free: { parameters: ["pointer"], result: "void" },
  mallinfo2: { parameters: [], result: { struct: ["usize", "usize", "usize", "usize", "usize", "usize", "usize", "usize", "usize", "usize"] } },
});
const mapped = () => Number(new BigUint64Array(symbols.mallinfo2().buffer)[4]);
const SIZE = 4n << 20n;
symbols.free(symbols.malloc(SIZE));
const before = mapped();
const block = symbols.malloc(SIZE);
const mappedForBlock = mapped() - before;
symbols.free(block);
console.log(JSON.stringify({ applied, mappedForBlock }));
`;

function probe(...args: string[]): Promise<{ applied: boolean | null; mappedForBlock: number }> {
  return inFreshProcess(PROBE, { args });
}

Deno.test("glibc malloc: by default a freed 4 MiB block makes the next one come from the heap", async () => {
  assert.deepEqual(await probe(), { applied: null, mappedForBlock: 0 });
});

Deno.test("glibc malloc: returnFreedMemoryPromptly keeps large blocks mapped on their own", async () => {
  const { applied, mappedForBlock } = await probe("apply");
  assert.equal(applied, true);
  assert.ok(mappedForBlock >= 4 << 20, `mapped ${mappedForBlock} bytes for a 4 MiB block`);
});
