import assert from "node:assert/strict";
import { join } from "node:path";
import { verifyAuditChain } from "../../domain/audit.ts";
import { AuditTrailUnavailableError } from "../../ports/audit_trail.ts";
import { anAuditEntry, auditTrailContract } from "../../tests/contracts/audit_trail_contract.ts";
import { FileAuditTrail } from "./file_audit_trail.ts";

/** A temporary directory removed when disposed. */
function tempDir(): { path: string } & Disposable {
  const path = Deno.makeTempDirSync({ prefix: "cr8tor-audit-" });
  return { path, [Symbol.dispose]: () => Deno.removeSync(path, { recursive: true }) };
}

Deno.test("FileAuditTrail passes the AuditTrail contract", async (t) => {
  using dir = tempDir();
  await auditTrailContract(t, () => {
    const file = join(dir.path, `${crypto.randomUUID()}.jsonl`);
    return Promise.resolve({
      trail: new FileAuditTrail(file),
      text: () => Deno.readTextFile(file).catch(() => ""),
      reopen: () => new FileAuditTrail(file),
    });
  });
});

Deno.test("FileAuditTrail cuts off a partly written last line before appending", async () => {
  using dir = tempDir();
  const file = join(dir.path, "audit.jsonl");
  const dropped: number[] = [];
  const trail = new FileAuditTrail(file, { onPartialLineDropped: (bytes) => dropped.push(bytes) });
  const first = await trail.append(anAuditEntry());
  const complete = await Deno.readTextFile(file);
  const partial = complete.slice(0, 57); // a second writer killed mid-write
  await Deno.writeTextFile(file, partial, { append: true });
  const broken = await verifyAuditChain(await Deno.readTextFile(file));
  assert.equal(broken.intact, false);
  assert.equal(!broken.intact && broken.line, 2);

  await trail.checkWritable(); // a partial tail does not stop the trail
  const second = await trail.append(anAuditEntry());
  assert.deepEqual(dropped, [57]);
  assert.equal(second.seq, 2);
  assert.equal(second.prev_sha256, first.sha256);
  assert.deepEqual(await verifyAuditChain(await Deno.readTextFile(file)), {
    intact: true,
    records: 2,
    last: { seq: 2, sha256: second.sha256 },
  });
});

Deno.test("FileAuditTrail refuses to continue after a damaged last record and changes nothing", async (t) => {
  const encode = (text: string) => new TextEncoder().encode(text);
  const damages: [string, (text: string) => Uint8Array][] = [
    ["an edited value", (text) => encode(text.replace('"Pr042"', '"Pr043"'))],
    ["a line that is not JSON", (text) => encode(text + "not json\n")],
    ["an empty last line", (text) => encode(text + "\n")],
    ["bytes that are not UTF-8", (text) => {
      const bytes = encode(text);
      bytes[20] = 0xff;
      return bytes;
    }],
  ];
  for (const [name, damage] of damages) {
    await t.step(name, async () => {
      using dir = tempDir();
      const file = join(dir.path, "audit.jsonl");
      const trail = new FileAuditTrail(file);
      await trail.append(anAuditEntry());
      await Deno.writeFile(file, damage(await Deno.readTextFile(file)));
      const before = await Deno.readFile(file);
      await assert.rejects(trail.checkWritable(), AuditTrailUnavailableError);
      await assert.rejects(
        trail.append(anAuditEntry()),
        (e: Error) => e instanceof AuditTrailUnavailableError && /last record/.test(e.message),
      );
      assert.deepEqual(await Deno.readFile(file), before);
    });
  }
});

Deno.test("FileAuditTrail reports a path it cannot write as unavailable", async (t) => {
  using dir = tempDir();
  const paths: [string, string][] = [
    ["a missing directory", join(dir.path, "missing", "audit.jsonl")],
    ["a directory", dir.path],
  ];
  for (const [name, path] of paths) {
    await t.step(name, async () => {
      const trail = new FileAuditTrail(path);
      await assert.rejects(trail.checkWritable(), AuditTrailUnavailableError);
      await assert.rejects(trail.append(anAuditEntry()), AuditTrailUnavailableError);
    });
  }
});

Deno.test("FileAuditTrail chains after a last record longer than its read chunk", async () => {
  using dir = tempDir();
  const file = join(dir.path, "audit.jsonl");
  const trail = new FileAuditTrail(file);
  await trail.append(anAuditEntry());
  const files = Array.from({ length: 1500 }, (_, i) => ({
    path: `data/outputs/s/table_${i}.csv`,
    sha512: "cd".repeat(64),
    bytes: i,
  }));
  const big = await trail.append(anAuditEntry({ files }));
  const after = await trail.append(anAuditEntry());
  assert.ok((await Deno.stat(file)).size > 3 * 64 * 1024);
  assert.equal(after.prev_sha256, big.sha256);
  const result = await verifyAuditChain(await Deno.readTextFile(file));
  assert.equal(result.intact && result.records, 3);
});

Deno.test({
  name: "FileAuditTrail keeps one chain when three processes append 100 records each to one file",
  sanitizeResources: false,
  fn: async () => {
    using dir = tempDir();
    const file = join(dir.path, "audit.jsonl");
    const worker = new URL("../../tests/support/audit_worker.ts", import.meta.url).pathname;
    const writers = ["a", "b", "c"];
    const children = writers.map((writer) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-read", "--allow-write", worker, file, writer, "100"],
        stdout: "piped",
        stderr: "piped",
      }).spawn()
    );
    // The workers wait for this file, so that they all append at the same time.
    await Deno.writeTextFile(`${file}.go`, "");
    const outputs = await Promise.all(children.map((child) => child.output()));
    for (const output of outputs) {
      assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    }
    const text = await Deno.readTextFile(file);
    const result = await verifyAuditChain(text);
    assert.equal(result.intact, true, JSON.stringify(result));
    assert.equal(result.records, 300);
    const ids = text.trimEnd().split("\n").map((line) => JSON.parse(line).request_id as string);
    for (const writer of writers) {
      const own = ids.filter((id) => id.startsWith(`${writer}-`));
      assert.deepEqual(own, Array.from({ length: 100 }, (_, i) => `${writer}-${i + 1}`));
    }
    const interleaved = ids.some((id, i) => i > 0 && id[0] !== ids[i - 1]![0]);
    assert.ok(interleaved, "the writers ran at the same time");
  },
});
