/**
 * `deno task audit:verify <path>`: checks an audit trail's hash chain (`docs/audit.md`), streaming the file
 * so a trail of any size fits. Exit code 0 when it is intact (prints the number of records and the last
 * record's `sha256`, worth keeping elsewhere as an anchor), 1 with the first broken record's line number and
 * the reason otherwise (`broken: line 7 was edited: ...`), 2 when the file cannot be read.
 *
 * @module
 */
import { AuditChainVerifier, type AuditVerification } from "../domain/audit.ts";

const NEWLINE = 0x0a;

/** Verifies the trail in a file, one line at a time. */
export async function verifyAuditFile(path: string): Promise<AuditVerification> {
  const verifier = new AuditChainVerifier();
  // ignoreBOM: a byte-order mark stays in the line, where the record check reports it (the default would
  // drop it silently, and a file that is not what the services wrote would pass).
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  using file = await Deno.open(path, { read: true });
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;

  async function checkLine(bytes: Uint8Array, terminated: boolean): Promise<boolean> {
    let line: string;
    try {
      line = decoder.decode(bytes);
    } catch {
      line = "\uFFFD"; // not UTF-8: the verifier reports it as damaged
    }
    return await verifier.check(line, terminated) === undefined;
  }

  function takePending(tail: Uint8Array): Uint8Array {
    const joined = new Uint8Array(pendingBytes + tail.length);
    let offset = 0;
    for (const part of pending) {
      joined.set(part, offset);
      offset += part.length;
    }
    joined.set(tail, offset);
    pending = [];
    pendingBytes = 0;
    return joined;
  }

  for await (const chunk of file.readable) {
    let start = 0;
    for (
      let newline = chunk.indexOf(NEWLINE);
      newline >= 0;
      newline = chunk.indexOf(NEWLINE, start)
    ) {
      if (!await checkLine(takePending(chunk.subarray(start, newline)), true)) {
        return verifier.result();
      }
      start = newline + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.slice(start);
      pending.push(rest);
      pendingBytes += rest.length;
    }
  }
  if (pendingBytes > 0) await checkLine(takePending(new Uint8Array(0)), false);
  return verifier.result();
}

function print(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  stream.writeSync(new TextEncoder().encode(text + "\n"));
}

if (import.meta.main) {
  const [path] = Deno.args;
  if (path === undefined || Deno.args.length !== 1) {
    print(Deno.stderr, "Usage: deno task audit:verify <path>");
    Deno.exit(2);
  }
  let result: AuditVerification;
  try {
    result = await verifyAuditFile(path);
  } catch (e) {
    print(Deno.stderr, `Cannot read the audit trail ${path}: ${(e as Error).message}`);
    Deno.exit(2);
  }
  if (result.intact) {
    const last = result.last === undefined
      ? ""
      : `; last record seq ${result.last.seq}, sha256 ${result.last.sha256}`;
    print(Deno.stdout, `intact: ${result.records} records${last}`);
  } else {
    print(
      Deno.stderr,
      `broken: ${result.reason} (${result.records} intact records before it)`,
    );
    Deno.exit(1);
  }
}
