import assert from "node:assert/strict";
import { join } from "node:path";
import { canonicalJson, chainAuditRecord, sha256Hex } from "../domain/audit.ts";
import { FileAuditTrail } from "../adapters/filesystem/file_audit_trail.ts";
import { anAuditEntry } from "../tests/contracts/audit_trail_contract.ts";
import { verifyAuditFile } from "./audit_verify.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** Runs `deno task audit:verify` as an operator would. */
async function auditVerify(...args: string[]): Promise<{ code: number; out: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "audit:verify", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, out: decoder.decode(output.stdout) + decoder.decode(output.stderr) };
}

/** A trail of five records, the third one large (more than one read chunk). */
async function aTrail(dir: string): Promise<string> {
  const file = join(dir, "audit.jsonl");
  const trail = new FileAuditTrail(file);
  const files = Array.from({ length: 800 }, (_, i) => ({
    path: `data/outputs/s/table_${i}.csv`,
    sha512: "ef".repeat(64),
    bytes: i,
  }));
  for (let i = 1; i <= 5; i++) {
    await trail.append(anAuditEntry({ request_id: `req-${i}`, ...(i === 3 ? { files } : {}) }));
  }
  return file;
}

Deno.test({
  name: "deno task audit:verify reports an intact trail and the first broken record",
  sanitizeResources: false,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "cr8tor-audit-verify-" });
    try {
      const file = await aTrail(dir);
      const lines = (await Deno.readTextFile(file)).split("\n").slice(0, -1);
      assert.ok(lines[2]!.length > 64 * 1024, "the third record spans several read chunks");

      await t.step("exit 0 and the record count for an intact trail", async () => {
        const { code, out } = await auditVerify(file);
        assert.equal(code, 0, out);
        const last = JSON.parse(lines[4]!).sha256;
        assert.equal(out.trim(), `intact: 5 records; last record seq 5, sha256 ${last}`);
      });

      const tampered: [string, (lines: string[]) => string, number][] = [
        ["an edited record", (l) => textOf(l.with(3, edit(l[3]!, { status: 500 }))), 4],
        ["an edited large record", (l) => textOf(l.with(2, edit(l[2]!, { outcome: "error" }))), 3],
        ["a deleted record", (l) => textOf(l.toSpliced(1, 1)), 2],
        ["reordered records", (l) => textOf(l.with(3, l[4]!).with(4, l[3]!)), 4],
        ["a truncated last record", (l) => textOf(l).slice(0, -40), 5],
        ["a byte-order mark at the start of the file", (l) => "\uFEFF" + textOf(l), 1],
        ["a byte-order mark before a later record", (l) => textOf(l.with(3, "\uFEFF" + l[3]!)), 4],
        ["Windows line ends", (l) => textOf(l).replaceAll("\n", "\r\n"), 1],
      ];
      for (const [name, tamper, line] of tampered) {
        await t.step(`exit 1 and line ${line} for ${name}`, async () => {
          const broken = join(dir, "broken.jsonl");
          await Deno.writeTextFile(broken, tamper(lines));
          const { code, out } = await auditVerify(broken);
          assert.equal(code, 1, out);
          assert.match(out, new RegExp(`^broken: line ${line} `));
          assert.match(out, new RegExp(`\\(${line - 1} intact records before it\\)`));
        });
      }

      await t.step(
        "exit 1 for a record with a key its kind does not define, even re-hashed",
        async () => {
          const broken = join(dir, "extra-key.jsonl");
          await Deno.writeTextFile(broken, textOf(lines.with(4, await forge(lines[4]!, { x: 1 }))));
          const { code, out } = await auditVerify(broken);
          assert.equal(code, 1, out);
          assert.match(out, /^broken: line 5 is not an audit record: .*"x"/);
        },
      );

      await t.step("exit 0 for a trail with a refusal summary", async () => {
        const mixed = join(dir, "mixed.jsonl");
        const last = JSON.parse(lines[4]!);
        const summary = await chainAuditRecord({
          kind: "refusals",
          time: "2025-06-11T09:31:00.000Z",
          service: "approval",
          period_start: "2025-06-11T09:30:00.000Z",
          period_end: "2025-06-11T09:30:59.000Z",
          missing_key: 100,
          wrong_key: 0,
        }, { seq: last.seq, sha256: last.sha256 });
        await Deno.writeTextFile(mixed, textOf([...lines, summary.line]));
        const { code, out } = await auditVerify(mixed);
        assert.equal(code, 0, out);
        assert.match(out, /^intact: 6 records/);
      });

      await t.step("exit 2 for a file that cannot be read, or no path", async () => {
        assert.equal((await auditVerify(join(dir, "missing.jsonl"))).code, 2);
        assert.equal((await auditVerify()).code, 2);
      });

      await t.step("verifyAuditFile() agrees with the domain check on an empty file", async () => {
        const empty = join(dir, "empty.jsonl");
        await Deno.writeTextFile(empty, "");
        assert.deepEqual(await verifyAuditFile(empty), { intact: true, records: 0 });
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

function textOf(lines: readonly string[]): string {
  return lines.map((line) => line + "\n").join("");
}

function edit(line: string, changes: Record<string, unknown>): string {
  return canonicalJson({ ...JSON.parse(line), ...changes });
}

/** Changes a record and recomputes its own sha256, as a careful forger would. */
async function forge(line: string, changes: Record<string, unknown>): Promise<string> {
  const { sha256: _, ...content } = { ...JSON.parse(line), ...changes };
  return canonicalJson({ ...content, sha256: await sha256Hex(canonicalJson(content)) });
}
