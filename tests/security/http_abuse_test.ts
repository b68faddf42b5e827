/**
 * Abuse of the HTTP layer against the services as real processes, over raw TCP where a well-behaved client
 * library would not misbehave enough: slow-loris headers, keyless uploads of any declared size or a chunked
 * body that never ends, stalled and trickled bodies with the key, more bodies than the cap, a flood of
 * keyless requests against the audit trail, unsafe request ids, the bind address, and a sub-service reply
 * larger than the gateway reads. Each asserts the status and the CR8TOR envelope, that nothing outside the
 * service's files changed, and that no key appears in any reply, log line or audit record.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { verifyAuditFile } from "../../tools/audit_verify.ts";
import {
  newServiceKeys,
  type ServiceProcess,
  startService,
  writeAllowList,
} from "../support/processes.ts";
import {
  assertErrorEnvelope,
  assertLeaksNothing,
  changedPaths,
  snapshotTree,
} from "./_hostile_world.ts";

const KEYS = newServiceKeys();
const SECRET_VALUES = Object.values(KEYS);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A scratch directory with the three keys, an empty allow-list and an audit trail. */
interface Workspace extends AsyncDisposable {
  readonly dir: string;
  /** The environment every service of the test gets. */
  readonly env: Record<string, string>;
  readonly auditPath: string;
}

async function workspace(): Promise<Workspace> {
  const dir = await Deno.makeTempDir({ prefix: "cr8tor-http-abuse-" });
  await Deno.mkdir(join(dir, "secrets"));
  await Deno.mkdir(join(dir, "audit"));
  for (const [name, value] of Object.entries(KEYS)) {
    await Deno.writeTextFile(join(dir, "secrets", name), value);
  }
  const auditPath = join(dir, "audit", "audit.jsonl");
  const env = {
    SECRETS_MNT_PATH: join(dir, "secrets"),
    ALLOWED_SOURCES_FILE: await writeAllowList(dir, []),
    AUDIT_LOG_PATH: auditPath,
  };
  return {
    dir,
    env,
    auditPath,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** What a raw exchange saw: the reply (as far as it came) and when the server closed the connection. */
interface RawReply {
  readonly status: number | undefined;
  readonly headers: Record<string, string>;
  readonly body: string;
  /** Milliseconds from the first byte sent to the reply's first byte (`undefined` if none came). */
  readonly repliedAfterMs: number | undefined;
  /** Milliseconds from the first byte sent until the server closed the connection. */
  readonly closedAfterMs: number | undefined;
}

/**
 * Sends `head` on a new connection, then `trickle` every `everyMs` until the server closes the connection
 * or `giveUpMs` pass; reads everything the server sends.
 */
async function rawExchange(
  port: number,
  head: string,
  options: { trickle?: string; everyMs?: number; giveUpMs?: number; hostname?: string } = {},
): Promise<RawReply> {
  const conn = await Deno.connect({ hostname: options.hostname ?? "127.0.0.1", port });
  const started = performance.now();
  let text = "";
  let repliedAfterMs: number | undefined;
  let closedAfterMs: number | undefined;
  const reading = (async () => {
    const buffer = new Uint8Array(16 * 1024);
    while (true) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch {
        n = null;
      }
      if (n === null) {
        closedAfterMs = performance.now() - started;
        return;
      }
      repliedAfterMs ??= performance.now() - started;
      text += decoder.decode(buffer.subarray(0, n));
    }
  })();
  try {
    await conn.write(encoder.encode(head));
    const giveUp = started + (options.giveUpMs ?? 10_000);
    while (closedAfterMs === undefined && performance.now() < giveUp) {
      await Promise.race([reading, sleep(options.everyMs ?? 100)]);
      if (closedAfterMs !== undefined || options.trickle === undefined) continue;
      await conn.write(encoder.encode(options.trickle)).catch(() => {});
    }
  } finally {
    try {
      conn.close();
    } catch {
      // closed by the server
    }
    await reading;
  }
  return { ...parseReply(text), repliedAfterMs, closedAfterMs };
}

function parseReply(text: string): Pick<RawReply, "status" | "headers" | "body"> {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return { status: undefined, headers: {}, body: text };
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = text.slice(end + 4);
  if (headers["transfer-encoding"] === "chunked") body = unchunk(body);
  return { status: Number(statusLine.split(" ")[1]), headers, body };
}

function unchunk(text: string): string {
  let out = "";
  let rest = text;
  while (true) {
    const newline = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, newline), 16);
    if (!(size > 0)) return out;
    out += rest.slice(newline + 2, newline + 2 + size);
    rest = rest.slice(newline + 2 + size + 2);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A POST's request line and headers, ended by the blank line. */
function postHead(path: string, headers: Record<string, string>): string {
  const lines = Object.entries({
    host: "127.0.0.1",
    "content-type": "application/json",
    ...headers,
  })
    .map(([name, value]) => `${name}: ${value}\r\n`);
  return `POST ${path} HTTP/1.1\r\n${lines.join("")}\r\n`;
}

/**
 * The resident memory of a process, in KiB. Deno lets only `--allow-all` read `/proc` directly, so it is read
 * by `cat`, which the e2e tier's `--allow-run` already permits.
 */
async function rssKiB(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("cat", { args: [`/proc/${pid}/status`] }).output();
  const kib = Number(/VmRSS:\s+(\d+)/.exec(new TextDecoder().decode(stdout))?.[1]);
  assert.ok(Number.isFinite(kib) && kib > 0, `no VmRSS for process ${pid}`);
  return kib;
}

/** Fails when a service's own output holds a key (its startup lines name its files, which is fine). */
function assertNoKey(text: string): void {
  for (const value of SECRET_VALUES) assert.ok(!text.includes(value), "a key was written out");
}

/** Everything a service said and stored: its log lines and its audit trail. */
async function outputOf(service: ServiceProcess, auditPath: string): Promise<string> {
  const audit = await Deno.readTextFile(auditPath).catch(() => "");
  return service.logs.join("\n") + "\n" + audit;
}

/** The files of the workspace other than the audit trail. */
async function filesOutsideTheTrail(dir: string) {
  const tree = await snapshotTree(dir);
  for (const path of tree.keys()) if (path.startsWith("audit")) tree.delete(path);
  return tree;
}

const METADATA_PATH = "/metadata/project";

Deno.test({
  name: "http abuse: keys before bodies, header and body timeouts, the body cap, refusal summaries",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    await using space = await workspace();
    const before = await filesOutsideTheTrail(space.dir);
    await using metadata = await startService("metadata", {
      ...space.env,
      HEADERS_TIMEOUT_SECONDS: "1",
      BODY_TIMEOUT_SECONDS: "3",
      BODY_IDLE_TIMEOUT_SECONDS: "1",
      MAX_CONCURRENT_BODIES: "2",
      AUDIT_REFUSAL_INTERVAL_SECONDS: "1",
    });
    const replies: string[] = [];
    const key = KEYS.metadataserviceapikey;

    await t.step(
      "a request whose headers trickle in is cut off after the header timeout",
      async () => {
        const reply = await rawExchange(metadata.port, "POST /metadata/project HTTP/1.1\r\n", {
          trickle: "x-slow: a\r\n",
          everyMs: 200,
        });
        replies.push(reply.body);
        assert.equal(reply.status, 408, "node:http answers 408 Request Timeout");
        assert.ok(reply.closedAfterMs !== undefined, "the server closed the connection");
        assert.ok(reply.closedAfterMs < 2600, `closed after ${reply.closedAfterMs} ms`);
      },
    );

    await t.step("a connection that sends nothing is closed after the header timeout", async () => {
      const reply = await rawExchange(metadata.port, "");
      assert.ok(reply.closedAfterMs !== undefined && reply.closedAfterMs < 2600);
    });

    const keyless: [string, Record<string, string>, string][] = [
      ["no key, a declared length of 10 GB", { "content-length": "10000000000" }, "{"],
      [
        "a wrong key, a declared length of 10 GB",
        { "content-length": "10000000000", "x-api-key": "wrong-key-0123456789" },
        "{",
      ],
      ["no key, a chunked body that never ends", { "transfer-encoding": "chunked" }, "1\r\n{\r\n"],
      ["no key, POST to a public path", { "content-length": "10000000000" }, "{"],
    ];
    for (const [name, headers, trickle] of keyless) {
      await t.step(`${name}: 403 at once, and the connection is closed`, async () => {
        const path = name.includes("public") ? "/health" : METADATA_PATH;
        const reply = await rawExchange(metadata.port, postHead(path, headers) + trickle, {
          trickle,
          everyMs: 50,
        });
        replies.push(reply.body);
        assert.equal(reply.status, 403, reply.body);
        assertErrorEnvelope(JSON.parse(reply.body), {
          code: "forbidden",
          forbidden: SECRET_VALUES,
        });
        assert.ok(reply.repliedAfterMs! < 1000, `answered after ${reply.repliedAfterMs} ms`);
        assert.ok(reply.closedAfterMs! < 1000, `closed after ${reply.closedAfterMs} ms`);
        assert.equal(reply.headers.connection, "close");
      });
    }

    await t.step(
      "a body with the key that stalls: 408 after the idle timeout, closed",
      async () => {
        const reply = await rawExchange(
          metadata.port,
          postHead(METADATA_PATH, { "x-api-key": key, "content-length": "100" }) + '{"a":',
        );
        replies.push(reply.body);
        assert.equal(reply.status, 408);
        const payload = assertErrorEnvelope(JSON.parse(reply.body), {
          code: "request_timeout",
          forbidden: SECRET_VALUES,
        });
        assert.equal(payload.detail, "MetadataService: Request body sent nothing for 1 seconds");
        assert.ok(reply.repliedAfterMs! >= 900 && reply.repliedAfterMs! < 2500);
        assert.ok(reply.closedAfterMs! < 2500, "the connection is dropped");
      },
    );

    await t.step("a body with the key that trickles: 408 after the body timeout", async () => {
      const reply = await rawExchange(
        metadata.port,
        postHead(METADATA_PATH, { "x-api-key": key, "transfer-encoding": "chunked" }),
        { trickle: "1\r\n \r\n", everyMs: 300 },
      );
      replies.push(reply.body);
      assert.equal(reply.status, 408);
      assert.match(JSON.parse(reply.body).payload.detail, /did not arrive within 3 seconds/);
      assert.ok(reply.repliedAfterMs! >= 2900 && reply.repliedAfterMs! < 5000);
      assert.ok(reply.closedAfterMs! < 5000);
    });

    await t.step("a third body while two stall: 503 with Retry-After at once", async () => {
      const stalled = [1, 2].map(() =>
        rawExchange(
          metadata.port,
          postHead(METADATA_PATH, { "x-api-key": key, "content-length": "100" }) + "{",
        )
      );
      await sleep(300);
      const third = await rawExchange(
        metadata.port,
        postHead(METADATA_PATH, { "x-api-key": key, "content-length": "2" }) + "{}",
        { giveUpMs: 500 },
      );
      replies.push(third.body);
      assert.equal(third.status, 503);
      assert.equal(third.headers["retry-after"], "1");
      assertErrorEnvelope(JSON.parse(third.body), {
        code: "too_many_uploads",
        forbidden: SECRET_VALUES,
      });
      assert.ok(third.repliedAfterMs! < 500);
      for (const reply of await Promise.all(stalled)) assert.equal(reply.status, 408);
    });

    await t.step(
      "a flood of keyless requests writes one summary per period, not a record each",
      async () => {
        await sleep(1500); // the refusals of the steps before are summarised by now
        const path = space.auditPath;
        const linesBefore = (await Deno.readTextFile(path)).split("\n").length - 1;
        const sizeBefore = (await Deno.stat(path)).size;
        const logLinesBefore = metadata.logs.length;
        const flood = Array.from(
          { length: 300 },
          (_, i) =>
            fetch(`${metadata.url}${METADATA_PATH}`, {
              method: "POST",
              headers: {
                "content-type": "application/json",
                ...(i % 3 === 0 ? { "x-api-key": `wrong-${i}-0123456789` } : {}),
              },
              body: "{}",
            }).then(async (res) => {
              const text = await res.text();
              replies.push(text);
              return res.status;
            }),
        );
        const statuses = await Promise.all(flood);
        assert.deepEqual(new Set(statuses), new Set([403]));
        assert.equal((await Deno.stat(path)).size, sizeBefore, "no write per refusal");
        assert.equal(metadata.logs.length, logLinesBefore, "no log line per refusal");
        await sleep(1500);
        const lines = (await Deno.readTextFile(path)).split("\n").slice(linesBefore, -1);
        const summaries = lines.map((l) => JSON.parse(l));
        assert.deepEqual(
          summaries.map((s) => [s.kind, s.service, s.missing_key, s.wrong_key]),
          [["refusals", "metadata", 200, 100]],
        );
        const logged = metadata.logs.slice(logLinesBefore).map((l) => JSON.parse(l));
        assert.deepEqual(logged.map((e) => [e.event, e.missing_key, e.wrong_key]), [
          ["requests_refused", 200, 100],
        ]);
      },
    );

    await t.step("an unsafe x-request-id is replaced; the service adds its own id", async () => {
      const unsafe = `evil id ${"x".repeat(200)} \u2028`;
      const res = await fetch(`${metadata.url}/nope`, {
        method: "POST",
        headers: { "x-api-key": key, "x-request-id": encodeURI(unsafe) },
      });
      replies.push(await res.text());
      assert.equal(res.status, 404);
      const id = res.headers.get("x-request-id") ?? "";
      assert.match(id, /^[0-9a-f-]{36}$/);
      const audit = (await Deno.readTextFile(space.auditPath)).trim().split("\n");
      const record = JSON.parse(audit.at(-1)!);
      assert.equal(record.request_id, id);
      assert.match(record.service_request_id, /^[0-9a-f-]{36}$/);
      const line = metadata.logs.map((l) => JSON.parse(l)).findLast((e) => e.event === "request");
      assert.deepEqual([line.request_id, line.service_request_id], [id, record.service_request_id]);
      assert.ok(!(await outputOf(metadata, space.auditPath)).includes("evil"));
    });

    await t.step("/ready without the key says only whether the service is ready", async () => {
      const res = await fetch(`${metadata.url}/ready`);
      const json = await res.json();
      replies.push(JSON.stringify(json));
      assert.equal(res.status, 200);
      assert.deepEqual(json, { status: "success", payload: { ready: true } });
      const detailed =
        await (await fetch(`${metadata.url}/ready`, { headers: { "x-api-key": key } }))
          .json();
      assert.deepEqual(detailed.payload.checks.map((c: { name: string }) => c.name), [
        "secrets",
        "audit trail",
      ]);
    });

    await t.step("shutdown writes what was counted; the trail stays intact", async () => {
      const res = await fetch(`${metadata.url}${METADATA_PATH}`, { method: "POST", body: "{}" });
      replies.push(await res.text());
      await metadata.stop();
      const lines = (await Deno.readTextFile(space.auditPath)).trim().split("\n");
      const last = JSON.parse(lines.at(-1)!);
      assert.deepEqual([last.kind, last.missing_key, last.wrong_key], ["refusals", 1, 0]);
      const verified = await verifyAuditFile(space.auditPath);
      assert.equal(verified.intact, true);
    });

    await t.step(
      "no key in any reply, log line or audit record; no other file changed",
      async () => {
        assertLeaksNothing(replies.join("\n"), SECRET_VALUES);
        assertNoKey(await outputOf(metadata, space.auditPath));
        assert.deepEqual(changedPaths(before, await filesOutsideTheTrail(space.dir)), []);
      },
    );
  },
});

Deno.test({
  name: "http abuse: 100 stalled keyless uploads and 100 slow-loris clients barely move memory",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    await using space = await workspace();
    await using metadata = await startService("metadata", {
      ...space.env,
      HEADERS_TIMEOUT_SECONDS: "2",
    });
    const upload = postHead(METADATA_PATH, { "content-length": "10000000000" }) +
      "{".repeat(1024);
    // Warm up: the first requests compile the stack and size V8's heap, which costs memory once.
    for (let i = 0; i < 200; i++) await rawExchange(metadata.port, upload, { giveUpMs: 2000 });
    await sleep(500);

    await t.step("100 stalled keyless uploads: each 403 and closed, RSS within 20 MB", async () => {
      const baseline = await rssKiB(metadata.pid);
      const replies = await Promise.all(
        Array.from({ length: 100 }, () => rawExchange(metadata.port, upload, { giveUpMs: 5000 })),
      );
      const grown = (await rssKiB(metadata.pid) - baseline) / 1024;
      assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([403]));
      assert.ok(replies.every((r) => r.closedAfterMs !== undefined), "every connection closed");
      for (const reply of replies) assertLeaksNothing(reply.body, SECRET_VALUES);
      assert.ok(grown < 20, `RSS grew by ${grown.toFixed(1)} MB`);
    });

    await t.step("100 slow-loris clients: all cut off, RSS within 20 MB", async () => {
      const baseline = await rssKiB(metadata.pid);
      const pending = Array.from(
        { length: 100 },
        () =>
          rawExchange(metadata.port, "POST /metadata/project HTTP/1.1\r\nHost: x\r\n", {
            trickle: "x-a: b\r\n",
            everyMs: 250,
            giveUpMs: 6000,
          }),
      );
      await sleep(1000);
      const during = (await rssKiB(metadata.pid) - baseline) / 1024;
      const replies = await Promise.all(pending);
      assert.ok(replies.every((r) => r.closedAfterMs !== undefined && r.closedAfterMs < 4500));
      assert.ok(during < 20, `RSS grew by ${during.toFixed(1)} MB while they were connected`);
    });

    await t.step("nothing was audited one by one; no key was logged", async () => {
      await metadata.stop();
      const lines = (await Deno.readTextFile(space.auditPath)).trim().split("\n");
      assert.deepEqual(lines.map((l) => JSON.parse(l).kind), ["refusals"]);
      assert.equal(JSON.parse(lines[0]!).missing_key, 300);
      assertNoKey(await outputOf(metadata, space.auditPath));
    });
  },
});

Deno.test({
  name: "http abuse: services listen on loopback unless BIND_ADDRESS says otherwise",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    await using space = await workspace();
    await t.step("by default 127.0.0.1 only: 127.0.0.2 is refused", async () => {
      await using metadata = await startService("metadata", space.env);
      const listening = metadata.logs.map((l) => JSON.parse(l)).find((e) =>
        e.event === "listening"
      );
      assert.equal(listening.hostname, "127.0.0.1");
      assert.equal((await fetch(`${metadata.url}/health`)).status, 200);
      await assert.rejects(Deno.connect({ hostname: "127.0.0.2", port: metadata.port }));
    });
    await t.step("BIND_ADDRESS=0.0.0.0: reachable on every local address", async () => {
      await using metadata = await startService("metadata", {
        ...space.env,
        BIND_ADDRESS: "0.0.0.0",
      });
      const res = await fetch(`http://127.0.0.2:${metadata.port}/health`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
    });
  },
});

Deno.test({
  name: "http abuse: the gateway refuses a sub-service reply larger than it reads",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using space = await workspace();
    let sent = 0;
    const chunk = encoder.encode("x".repeat(64 * 1024));
    // A sub-service that answers 200 with an endless JSON string, counting what it sends.
    const huge = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(encoder.encode('{"status":"success","payload":"'));
        },
        pull(controller) {
          if (sent > 256 * 1024 * 1024) return controller.close();
          sent += chunk.byteLength;
          controller.enqueue(chunk);
        },
      });
      return new Response(body, { headers: { "content-type": "application/json" } });
    });
    try {
      await using approval = await startService("approval", {
        ...space.env,
        METADATA_CONTAINER_NAME: "127.0.0.1",
        METADATA_CONTAINER_PORT: String(huge.addr.port),
        PUBLISH_CONTAINER_NAME: "127.0.0.1",
        PUBLISH_CONTAINER_PORT: String(huge.addr.port),
        SUBSERVICE_MAX_REPLY_BYTES: String(1024 * 1024),
      });
      const baseline = await rssKiB(approval.pid);
      const res = await fetch(`${approval.url}/project/package`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": KEYS.approvalserviceapikey },
        body: JSON.stringify({
          project_name: "Pr042",
          project_start_time: "20250611_093000",
          destination: { name: "LSC", type: "filestore", format: "csv" },
          source: {
            type: "postgresql",
            host_url: "db.internal",
            port: 5432,
            database: "research",
            credentials: { username_key: "u", password_key: "p" },
          },
          dataset: { name: "d", schema_name: "s", description: "", tables: null },
        }),
      });
      const text = await res.text();
      assert.equal(res.status, 502, text);
      const payload = assertErrorEnvelope(JSON.parse(text), {
        code: "sub_service_reply_too_large",
        forbidden: SECRET_VALUES,
      });
      assert.equal(
        payload.detail,
        "The publish service sent a reply larger than 1048576 bytes, which the gateway does not read",
      );
      assert.ok(sent < 64 * 1024 * 1024, `the gateway stopped reading after ${sent} bytes`);
      const grown = (await rssKiB(approval.pid) - baseline) / 1024;
      assert.ok(grown < 20, `RSS grew by ${grown.toFixed(1)} MB`);
      await approval.stop();
      const records = (await Deno.readTextFile(space.auditPath)).trim().split("\n")
        .map((l) => JSON.parse(l));
      assert.deepEqual(records.map((r) => [r.service, r.status, r.error_code]), [
        ["approval", 502, "sub_service_reply_too_large"],
      ]);
      assertNoKey(await outputOf(approval, space.auditPath));
    } finally {
      await huge.shutdown();
    }
  },
});
