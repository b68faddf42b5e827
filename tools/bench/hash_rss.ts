/**
 * Peak memory of hashing files while they are written: writes `--files` files of `--mib` MiB at once
 * through `HashingFileWriter` (`--writer`, a `sha512.ts` module; this checkout's by default), 256 KiB
 * at a time as the CSV writer does, then prints the peak RSS (`VmHWM`) and the digests' check.
 *
 *   deno run -A tools/bench/hash_rss.ts --files 4 --mib 50 [--writer file:///.../sha512.ts]
 *
 * @module
 */
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { say } from "./processes.ts";

const { values } = parseArgs({
  options: {
    files: { type: "string", default: "4" },
    mib: { type: "string", default: "50" },
    writer: { type: "string" },
  },
});
const writerModule = values.writer ??
  new URL("../../adapters/filesystem/sha512.ts", import.meta.url).href;
const { HashingFileWriter } = await import(writerModule);
const files = Number(values.files);
const chunks = Number(values.mib) * 4;

function vm(field: string): number {
  const line = Deno.readTextFileSync("/proc/self/status").split("\n").find((l) =>
    l.startsWith(field)
  );
  return Number(line!.split(/\s+/)[1]) / 1024;
}

const dir = await Deno.makeTempDir({ prefix: "cr8tor-hash-rss-" });
try {
  const before = vm("VmRSS:");
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: files }, async (_, f) => {
    const out = await HashingFileWriter.create(`${dir}/f${f}`);
    const hash = createHash("sha512");
    // Two reused chunks, as the write contract allows, each different bytes per file and chunk.
    const buffers = [new Uint8Array(256 * 1024), new Uint8Array(256 * 1024)];
    for (let i = 0; i < chunks; i++) {
      const chunk = buffers[i % 2]!;
      chunk.fill((f * 31 + i) & 0xff);
      chunk[0] = f;
      hash.update(chunk);
      await out.write(chunk);
    }
    const digest = await out.finish();
    return digest.sha512 === hash.digest("hex");
  }));
  const seconds = (performance.now() - started) / 1000;
  say(
    JSON.stringify({
      files,
      mib: Number(values.mib),
      rssBeforeMB: Math.round(before),
      peakRssMB: Math.round(vm("VmHWM:")),
      seconds: Number(seconds.toFixed(2)),
      digestsMatch: results.every(Boolean),
    }),
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
