import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { inFreshProcess } from "../../tests/support/fresh_process.ts";
import {
  copyWithSha512,
  HASH_BUFFER_BYTES,
  HASH_BUFFERS,
  HASH_WORKER_IDLE_MS,
  HashingFileWriter,
  hashingWorkersStarted,
  SHA512_WORKER,
  sha512File,
  stopIdleHashingWorkers,
} from "./sha512.ts";

const MiB = HASH_BUFFER_BYTES;

/** Deterministic bytes, different at every offset of a buffer. */
function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function sha512(data: Uint8Array): string {
  return createHash("sha512").update(data).digest("hex");
}

/** Writes `chunks` through a HashingFileWriter; checks the digest and size against the file's bytes. */
async function roundTrip(dir: string, name: string, chunks: Uint8Array[]): Promise<void> {
  const path = join(dir, name);
  const out = await HashingFileWriter.create(path);
  for (const chunk of chunks) await out.write(chunk);
  const digest = await out.finish();
  const written = new Uint8Array(await readFile(path));
  const expected = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    expected.set(chunk, offset);
    offset += chunk.length;
  }
  assert.deepStrictEqual(written, expected, `${name}: file contents`);
  assert.deepStrictEqual(digest, { sha512: sha512(expected), bytes: expected.length }, name);
}

Deno.test("HashingFileWriter's digest is the plain SHA-512 of the file, whatever the chunking", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "cr8tor-sha512-" });
  try {
    await t.step("an empty file, with no write and with empty writes", async () => {
      await roundTrip(dir, "none", []);
      await roundTrip(dir, "empty-writes", [new Uint8Array(0), new Uint8Array(0)]);
      assert.equal(
        sha512(new Uint8Array(0)),
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce" +
          "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
      );
    });
    await t.step("files smaller than, equal to and just over one hashing buffer", async () => {
      await roundTrip(dir, "small", [bytes(10, 1), bytes(1000, 2)]);
      await roundTrip(dir, "one-buffer", [bytes(MiB, 3)]);
      await roundTrip(dir, "one-buffer-in-two", [bytes(MiB - 1, 4), bytes(1, 5)]);
      await roundTrip(dir, "one-buffer-and-one", [bytes(MiB, 6), bytes(1, 7)]);
      await roundTrip(dir, "one-over", [bytes(MiB + 1, 8)]);
    });
    await t.step("chunks across buffer boundaries, more buffers than the pool holds", async () => {
      const chunks = [bytes(3, 9)];
      for (let i = 0; i < 70; i++) chunks.push(bytes(100_003 + i, 10 + i));
      chunks.push(bytes(3 * MiB + 5, 99), new Uint8Array(0), bytes(MiB, 100), bytes(7, 101));
      assert.ok(chunks.reduce((n, c) => n + c.length, 0) > (HASH_BUFFERS + 2) * MiB);
      await roundTrip(dir, "many", chunks);
      // One chunk far larger than every buffer together.
      await roundTrip(dir, "huge", [bytes((HASH_BUFFERS * 3 + 1) * MiB + 17, 102)]);
    });
    await t.step("a caller reusing two buffers, as the write contract allows", async () => {
      const path = join(dir, "reused");
      const out = await HashingFileWriter.create(path);
      const buffers = [new Uint8Array(300_001), new Uint8Array(300_001)];
      const whole = bytes(20 * 300_001, 103);
      for (let i = 0; i < 20; i++) {
        const buffer = buffers[i % 2]!;
        buffer.set(whole.subarray(i * 300_001, (i + 1) * 300_001));
        await out.write(buffer);
      }
      assert.deepStrictEqual(await out.finish(), { sha512: sha512(whole), bytes: whole.length });
      assert.deepStrictEqual(new Uint8Array(await readFile(path)), whole);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sha512File and copyWithSha512 read every byte once, in order, at any size", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "sha512-read-" });
  try {
    for (const length of [0, 1, MiB - 1, MiB, MiB + 1, 3 * MiB + 12345]) {
      await t.step(`${length} bytes`, async () => {
        const data = bytes(length, length + 7);
        const path = join(dir, `in-${length}`);
        await Deno.writeFile(path, data);
        assert.deepEqual(await sha512File(path, `in-${length}`), {
          sha512: sha512(data),
          bytes: length,
        });
        const copyPath = join(dir, `copy-${length}`);
        const source = await open(path, "r");
        const target = await open(copyPath, "wx");
        try {
          assert.deepEqual(await copyWithSha512(source, target), {
            sha512: sha512(data),
            bytes: length,
          });
        } finally {
          await source.close();
          await target.close();
        }
        assert.deepEqual(new Uint8Array(await readFile(copyPath)), data);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Hashes a 256 MiB file in a fresh process and prints how far its peak RSS rose above where it was. */
const HASH_MEMORY_PROBE = `
import { sha512File } from ${JSON.stringify(new URL("./sha512.ts", import.meta.url).href)};
const path = await Deno.makeTempFile();
const file = await Deno.open(path, { write: true });
const block = new Uint8Array(1 << 20).fill(7);
for (let i = 0; i < 256; i++) await file.write(block);
file.close();
const mib = (key) => Number(Deno.readTextFileSync("/proc/self/status").split("\\n")
  .find((line) => line.startsWith(key + ":")).match(/[0-9]+/)[0]) / 1024;
Deno.writeTextFileSync("/proc/self/clear_refs", "5");
const before = mib("VmRSS");
await sha512File(path, "big");
console.log(mib("VmHWM") - before);
await Deno.remove(path);
`;

Deno.test("sha512File reads into the same two buffers: a 256 MiB file raises the peak RSS by a few MiB", async () => {
  const growth = await inFreshProcess<number>(HASH_MEMORY_PROBE);
  // Measured 7 MiB; a buffer per chunk (a read stream over the handle) measured 70 MiB.
  assert.ok(growth < 24, `peak RSS rose by ${growth.toFixed(1)} MiB`);
});

Deno.test("HashingFileWriter waits for the worker when every hashing buffer is with it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cr8tor-sha512-" });
  try {
    // The real worker, holding each buffer until a file exists.
    const release = join(dir, "release");
    const workerModule = join(dir, "held_worker.ts");
    await Deno.writeTextFile(
      workerModule,
      `import ${JSON.stringify(SHA512_WORKER.href)};
const scope = self as unknown as { onmessage: (e: MessageEvent) => void };
const hash = scope.onmessage;
const held: MessageEvent[] = [];
const timer = setInterval(() => {
  try { Deno.statSync(${JSON.stringify(release)}); } catch { return; }
  clearInterval(timer);
  for (const e of held.splice(0)) hash(e);
  scope.onmessage = hash;
}, 5);
scope.onmessage = (e) => held.push(e);
`,
    );
    const path = join(dir, "held");
    const out = await HashingFileWriter.create(path, {
      workerModule: new URL(`file://${workerModule}`),
    });
    const data = bytes((HASH_BUFFERS + 2) * MiB, 104);
    // Every buffer is filled and sent; the worker keeps them.
    await out.write(data.subarray(0, HASH_BUFFERS * MiB));
    const next = out.write(data.subarray(HASH_BUFFERS * MiB));
    let settled = false;
    next.finally(() => settled = true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(settled, false, "a write went on while the worker held every buffer");
    await Deno.writeTextFile(release, "");
    await next;
    assert.deepStrictEqual(await out.finish(), { sha512: sha512(data), bytes: data.length });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HashingFileWriter reports a failing worker, and abandon deletes the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cr8tor-sha512-" });
  try {
    const workerModule = join(dir, "failing_worker.ts");
    await Deno.writeTextFile(
      workerModule,
      `(self as unknown as { onmessage: unknown }).onmessage = () => { throw new Error("boom"); };\n`,
    );
    const path = join(dir, "failing");
    const out = await HashingFileWriter.create(path, {
      workerModule: new URL(`file://${workerModule}`),
    });
    await assert.rejects(async () => {
      for (let i = 0; i < 3 * HASH_BUFFERS; i++) await out.write(bytes(MiB, 105 + i));
      await out.finish();
    }, /Cannot hash the file: the hashing worker failed: .*boom/);
    await out.abandon();
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Writes `chunks` in turn, yielding between them so that concurrent writers interleave. */
async function writeAll(out: HashingFileWriter, chunks: Uint8Array[]): Promise<void> {
  for (const chunk of chunks) {
    await out.write(chunk);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const whole = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    whole.set(chunk, offset);
    offset += chunk.length;
  }
  return whole;
}

/** Chunks of odd sizes (across buffer boundaries) adding up to about `total` bytes. */
function chunked(total: number, seed: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let n = 0, i = 0; n < total; i++) {
    const size = Math.min(total - n, 200_003 + 7_919 * ((seed + i) % 50));
    chunks.push(bytes(size, seed * 1000 + i));
    n += size;
  }
  return chunks;
}

// These tests check timers too: each ends its idle worker, whose timer would otherwise be left.
const sanitized = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "concurrent HashingFileWriters share one worker, each with its own digest",
  sanitized,
  async () => {
    assert.equal(stopIdleHashingWorkers(), 0, "a worker of an earlier test is still busy");
    const dir = await Deno.makeTempDir({ prefix: "cr8tor-sha512-" });
    try {
      const started = hashingWorkersStarted();
      // Five files at once: four through the worker (one of exactly 3 MiB), one too small to need it.
      const files = [
        chunked(9 * MiB + 12_345, 1),
        chunked(3 * MiB, 2),
        chunked((HASH_BUFFERS + 1) * MiB - 1, 3),
        [bytes(2 * MiB + 1, 4)],
        [bytes(1000, 5)],
      ];
      const writers = await Promise.all(
        files.map((_, i) => HashingFileWriter.create(join(dir, `f${i}`))),
      );
      await Promise.all(writers.map((out, i) => writeAll(out, files[i]!)));
      const digests = await Promise.all(writers.map((out) => out.finish()));
      for (const [i, chunks] of files.entries()) {
        const whole = concat(chunks);
        assert.deepStrictEqual(digests[i], { sha512: sha512(whole), bytes: whole.length }, `f${i}`);
        assert.deepStrictEqual(new Uint8Array(await readFile(join(dir, `f${i}`))), whole, `f${i}`);
      }
      assert.equal(hashingWorkersStarted() - started, 1, "the files did not share one worker");
    } finally {
      stopIdleHashingWorkers();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "a file abandoned mid-way leaves the others sharing its worker unharmed",
  sanitized,
  async () => {
    assert.equal(stopIdleHashingWorkers(), 0, "a worker of an earlier test is still busy");
    const dir = await Deno.makeTempDir({ prefix: "cr8tor-sha512-" });
    try {
      const started = hashingWorkersStarted();
      const a = await HashingFileWriter.create(join(dir, "a"));
      const b = await HashingFileWriter.create(join(dir, "b"));
      const c = await HashingFileWriter.create(join(dir, "c"));
      const [aChunks, bChunks, cChunks] = [
        chunked(8 * MiB, 6),
        chunked(6 * MiB, 7),
        chunked(7 * MiB, 8),
      ];
      // b abandons with buffers still at the worker, while a and c are half way.
      await Promise.all([
        writeAll(a, aChunks.slice(0, 20)),
        writeAll(b, bChunks),
        writeAll(c, cChunks.slice(0, 15)),
      ]);
      await b.abandon();
      await assert.rejects(Deno.stat(join(dir, "b")), Deno.errors.NotFound);
      await assert.rejects(b.write(bytes(10, 9)), /abandoned/);
      // A file started after the abandon joins the same worker.
      const d = await HashingFileWriter.create(join(dir, "d"));
      const dChunks = chunked(5 * MiB + 3, 10);
      await Promise.all([
        writeAll(a, aChunks.slice(20)),
        writeAll(c, cChunks.slice(15)),
        writeAll(d, dChunks),
      ]);
      for (const [out, chunks] of [[a, aChunks], [c, cChunks], [d, dChunks]] as const) {
        const whole = concat(chunks);
        assert.deepStrictEqual(await out.finish(), { sha512: sha512(whole), bytes: whole.length });
      }
      assert.equal(hashingWorkersStarted() - started, 1);
    } finally {
      stopIdleHashingWorkers();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("a stream the worker cannot hash fails alone", sanitized, async () => {
  assert.equal(stopIdleHashingWorkers(), 0, "a worker of an earlier test is still busy");
  const dir = await Deno.makeTempDir({ prefix: "cr8tor-sha512-" });
  try {
    // The real worker, refusing every buffer that starts with 0xff (as it reports a hash's error).
    const workerModule = join(dir, "refusing_worker.ts");
    await Deno.writeTextFile(
      workerModule,
      `import ${JSON.stringify(SHA512_WORKER.href)};
const scope = self as unknown as { onmessage: (e: MessageEvent) => void; postMessage(m: unknown): void };
const hash = scope.onmessage;
scope.onmessage = (e) => {
  const { stream, buffer } = e.data;
  if (buffer !== undefined && new Uint8Array(buffer)[0] === 0xff) {
    scope.postMessage({ stream, error: "refused" });
  } else hash(e);
};
`,
    );
    const module = new URL(`file://${workerModule}`);
    const good = await HashingFileWriter.create(join(dir, "good"), { workerModule: module });
    const bad = await HashingFileWriter.create(join(dir, "bad"), { workerModule: module });
    const goodChunks = chunked(6 * MiB, 11).map((c) => (c[0] = 0, c));
    await writeAll(good, goodChunks.slice(0, 10));
    await assert.rejects(async () => {
      for (let i = 0; i < 3 * HASH_BUFFERS; i++) await bad.write(new Uint8Array(MiB).fill(0xff));
      await bad.finish();
    }, /Cannot hash the file: refused/);
    await bad.abandon();
    await writeAll(good, goodChunks.slice(10));
    const whole = concat(goodChunks);
    assert.deepStrictEqual(await good.finish(), { sha512: sha512(whole), bytes: whole.length });
  } finally {
    stopIdleHashingWorkers();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "the hashing worker starts with the first stream and ends when idle",
  sanitized,
  async () => {
    assert.equal(stopIdleHashingWorkers(), 0, "a worker of an earlier test is still busy");
    const dir = await Deno.makeTempDir({ prefix: "cr8tor-sha512-" });
    try {
      const started = hashingWorkersStarted();
      const write = async (name: string, length: number) => {
        const out = await HashingFileWriter.create(join(dir, name));
        await out.write(bytes(length, 12));
        return out.finish();
      };
      await write("small", MiB - 1);
      assert.equal(hashingWorkersStarted(), started, "a file under one buffer started a worker");
      await write("first", 2 * MiB);
      // The next file, right after, finds the worker still there.
      await write("second", 2 * MiB);
      assert.equal(hashingWorkersStarted() - started, 1);
      // After the idle wait it has ended, and the next file starts another.
      await new Promise((resolve) => setTimeout(resolve, HASH_WORKER_IDLE_MS + 200));
      assert.equal(stopIdleHashingWorkers(), 0);
      await write("third", 2 * MiB);
      assert.equal(hashingWorkersStarted() - started, 2);
    } finally {
      stopIdleHashingWorkers();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("no hashing worker outlives a finished, failed, aborted or abandoned write", async () => {
  // An idle worker keeps a Deno process alive: the child below ends on its own only if every
  // worker it started has ended.
  const dir = await Deno.makeTempDir({ prefix: "cr8tor-sha512-" });
  try {
    const script = join(dir, "child.ts");
    const writerModule = new URL("./csv_dataset_writer.ts", import.meta.url).href;
    const memoryModule = new URL("../memory/memory_source_database.ts", import.meta.url).href;
    const catalogModule = new URL("../../domain/catalog.ts", import.meta.url).href;
    const contractModule =
      new URL("../../tests/contracts/dataset_writer_contract.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { HashingFileWriter } from ${
        JSON.stringify(new URL("./sha512.ts", import.meta.url).href)
      };
import { CsvDatasetWriter } from ${JSON.stringify(writerModule)};
import { MemorySourceDatabase } from ${JSON.stringify(memoryModule)};
import { tableExtracts } from ${JSON.stringify(catalogModule)};
import { stagingWork } from ${JSON.stringify(contractModule)};
const dir = Deno.args[0]!;
const MiB = 1 << 20;
// Finished.
const done = await HashingFileWriter.create(dir + "/done");
for (let i = 0; i < 6; i++) await done.write(new Uint8Array(MiB).fill(i));
await done.finish();
// Abandoned mid-way, the worker busy.
const abandoned = await HashingFileWriter.create(dir + "/abandoned");
for (let i = 0; i < 6; i++) await abandoned.write(new Uint8Array(MiB).fill(i));
await abandoned.abandon();
// Through the CSV writer: a source that fails, and a read aborted, each after many MiB.
const catalog = {
  name: "s", description: null,
  tables: [{ name: "t", kind: "table", description: null, primaryKey: [], columns: [
    { name: "a", dataType: "text", logicalType: { kind: "text" }, nullable: true, description: null },
  ] }],
};
class Endless extends MemorySourceDatabase {
  constructor(readonly fail: boolean, readonly controller?: AbortController) {
    super([catalog], new Map([["s.t", []]]));
  }
  async *readCsv() {
    for (let i = 0; ; i++) {
      if (i === 40) {
        if (this.fail) throw new Error("source lost");
        this.controller!.abort(new Error("cancelled"));
      }
      await Promise.resolve();
      yield new TextEncoder().encode("a\\n" + "x".repeat(262142) + "\\n");
    }
  }
}
const [extract] = tableExtracts(catalog);
const failing = new CsvDatasetWriter().write(stagingWork(dir + "/failing"), new Endless(true), [extract], { concurrency: 1 });
console.log("failing:", await failing.then(() => "finished", (e) => e.message));
const controller = new AbortController();
const aborted = new CsvDatasetWriter().write(stagingWork(dir + "/aborted"), new Endless(false, controller), [extract], { concurrency: 1, signal: controller.signal });
console.log("aborted:", await aborted.then(() => "finished", (e) => e.message));
console.log("end");
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", script, dir],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const { code, stdout, stderr } = await child.output();
    clearTimeout(timer);
    const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 0, `the child did not end on its own (a worker still ran?):\n${output}`);
    assert.match(output, /failing: source lost\naborted: cancelled\nend\n/);
    await assert.rejects(Deno.stat(join(dir, "abandoned")), Deno.errors.NotFound);
    assert.equal((await Deno.stat(join(dir, "done"))).size, 6 * MiB);
    for (const run of ["failing", "aborted"]) {
      const left = [...Deno.readDirSync(join(dir, run, "data/outputs/s"))];
      assert.deepStrictEqual(left, [], `${run}: an unfinished file is left`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
