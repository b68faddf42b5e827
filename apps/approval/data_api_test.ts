import assert from "node:assert/strict";
import { sha256Hex } from "../../domain/audit.ts";
import {
  DataApiWorld,
  GATEWAY,
  OTHER,
  peopleTable,
  PIPELINE,
  type SignedReply,
} from "../../tests/support/data_api_world.ts";
import { APPROVAL_KEY } from "../../tests/support/apps.ts";
import { DEFAULT_MAX_REPLY_BYTES } from "./sub_service.ts";

type Json = Record<string, unknown>;

function payloadOf(reply: SignedReply): Json {
  return (JSON.parse(reply.text) as { payload: Json }).payload;
}

function errorOf(reply: SignedReply): { status: number; code: unknown; detail: unknown } {
  const payload = payloadOf(reply);
  return { status: reply.res.status, code: payload.code, detail: payload.detail };
}

Deno.test("data API: GET /data/v1/releases lists only open, published, unexpired releases in scope", async () => {
  await using world = new DataApiWorld();
  const now = world.clock.now.getTime();
  const at = (minutes: number) => new Date(now - minutes * 60_000).toISOString();
  const a1 = await world.published("proj_a", [peopleTable(3)], { createdAt: at(50) });
  const special = await world.published("proj_z", [peopleTable(3)], {
    id: "r-special",
    createdAt: at(40),
  });
  await world.published("proj_b", [peopleTable(3)], { createdAt: at(30) });
  const expired = await world.published("proj_a", [peopleTable(1)], {
    createdAt: at(20),
    expiresAt: at(1),
  });
  const revoked = await world.published("proj_a", [peopleTable(1)], { createdAt: at(10) });
  await world.revoke(revoked.id, true);
  const reply = await world.get("/data/v1/releases");
  assert.equal(reply.res.status, 200, reply.text);
  world.verifyReply(reply);
  const payload = payloadOf(reply) as { releases: Json[]; next: unknown };
  assert.deepEqual(payload.releases.map((r) => r.id), [special.id, a1.id]);
  assert.equal(payload.next, null);
  assert.ok(!payload.releases.some((r) => r.id === expired.id));
  assert.deepEqual(Object.keys(payload.releases[0]!).sort(), [
    "destination",
    "expires_at",
    "id",
    "project_name",
    "project_start_time",
    "published_at",
  ]);
  const other = await world.get("/data/v1/releases", { credentials: OTHER });
  assert.deepEqual(
    (payloadOf(other) as { releases: Json[] }).releases.map((r) => r.project_name),
    ["proj_b"],
  );
});

Deno.test("data API: the releases list pages with the release store's cursor and a Link header", async () => {
  await using world = new DataApiWorld();
  const now = world.clock.now.getTime();
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) {
    const createdAt = new Date(now - (i + 1) * 60_000).toISOString();
    ids.push((await world.published("proj_a", [peopleTable(1)], { createdAt })).id);
    await world.published("proj_b", [peopleTable(1)], { createdAt });
  }
  const seen: string[] = [];
  let path: string | null = "/data/v1/releases?limit=3";
  let pages = 0;
  while (path !== null) {
    const reply = await world.get(path);
    assert.equal(reply.res.status, 200, reply.text);
    const payload = payloadOf(reply) as { releases: Json[]; next: string | null };
    seen.push(...payload.releases.map((r) => String(r.id)));
    if (payload.next !== null) {
      assert.equal(reply.res.headers.get("link"), `<${payload.next}>; rel="next"`);
    }
    path = payload.next;
    pages++;
  }
  assert.deepEqual(seen, ids);
  assert.equal(pages, 3);
});

Deno.test("data API: releases out of scope do not make the list stop short of the end", async () => {
  await using world = new DataApiWorld();
  const now = world.clock.now.getTime();
  const mine = await world.published("proj_a", [peopleTable(1)], {
    createdAt: new Date(now - 100 * 60_000).toISOString(),
  });
  for (let i = 0; i < 25; i++) {
    const createdAt = new Date(now - (i + 1) * 60_000).toISOString();
    await world.published("proj_b", [peopleTable(1)], { createdAt });
  }
  const seen: string[] = [];
  let path: string | null = "/data/v1/releases?limit=2";
  let pages = 0;
  while (path !== null) {
    const reply = await world.get(path);
    const payload = payloadOf(reply) as { releases: Json[]; next: string | null };
    seen.push(...payload.releases.map((r) => String(r.id)));
    path = payload.next;
    pages++;
  }
  assert.deepEqual(seen, [mine.id]);
  assert.ok(pages > 1, "a bounded scan per request, going on from where it stopped");
});

Deno.test("data API: GET /tables lists only the tables in scope, with columns and key", async () => {
  await using world = new DataApiWorld();
  await world.published("proj_z", [
    peopleTable(2),
    peopleTable(2, "visits"),
  ], { id: "r-special" });
  const reply = await world.get("/data/v1/releases/r-special/tables");
  assert.equal(reply.res.status, 200, reply.text);
  world.verifyReply(reply);
  const tables = (payloadOf(reply) as { tables: Json[] }).tables;
  assert.deepEqual(tables.map((t) => t.name), ["people"]);
  assert.deepEqual(tables[0]!.key, ["id"]);
  assert.deepEqual((tables[0]!.columns as Json[])[0], {
    name: "id",
    type: "integer",
    description: "Person id",
  });
});

Deno.test("data API: paging gives every row exactly once in key order while the table changes", async () => {
  await using world = new DataApiWorld();
  const release = await world.published("proj_a", [peopleTable(25)]);
  const table = world.reader.table(release, "clinic", "people");
  const got: string[] = [];
  let path: string | null = `/data/v1/releases/${release.id}/tables/people/rows?limit=10`;
  let page = 0;
  while (path !== null) {
    const reply = await world.get(path);
    assert.equal(reply.res.status, 200, reply.text);
    world.verifyReply(reply);
    const payload = payloadOf(reply) as { records: Json[]; next: string | null };
    assert.equal(reply.res.headers.get("x-rows-returned"), String(payload.records.length));
    got.push(...payload.records.map((r) => String(r.id)));
    if (payload.next !== null) {
      assert.equal(reply.res.headers.get("link"), `<${payload.next}>; rel="next"`);
    }
    page++;
    if (page === 1) {
      // Republished between pages: rows before the cursor added, one after it, and the same rows
      // again under a new array (a republication).
      table.rows = [
        ["0", "early", "0.00"],
        ...table.rows.map((row) => [...row]),
        ["26", "late", "9.99"],
      ];
    }
    if (page === 2) table.rows.reverse();
    path = payload.next;
  }
  const expected = [...Array.from({ length: 25 }, (_, i) => String(i + 1)), "26"];
  assert.deepEqual(got, expected, "every row once, in key order; the row added behind is not read");
});

Deno.test("data API: rows come as records or tabular, values as canonical text", async () => {
  await using world = new DataApiWorld();
  const release = await world.published("proj_a", [peopleTable(2)]);
  const base = `/data/v1/releases/${release.id}/tables/people/rows`;
  const records = payloadOf(await world.get(`${base}?orientation=records&dataset=clinic`));
  assert.deepEqual(records.records, [
    { id: "1", name: "p1", score: "0.50" },
    { id: "2", name: "p2", score: "1.50" },
  ]);
  const tabular = payloadOf(await world.get(`${base}?orientation=tabular`));
  assert.deepEqual(tabular.rows, [["1", "p1", "0.50"], ["2", "p2", "1.50"]]);
  assert.deepEqual(tabular.columns, [
    { name: "id", type: "integer" },
    { name: "name", type: "text" },
    { name: "score", type: "decimal(10,2)" },
  ]);
  const call = world.reader.calls.findLast((c) => c.path === "rows")!.body;
  assert.deepEqual(call, {
    project_name: "proj_a",
    project_start_time: release.project_start_time,
    destination: { type: "filestore", name: "LSC" },
    dataset: "clinic",
    table: "people",
    limit: 1000,
    cursor: null,
    orientation: "tabular",
    next_base:
      `/data/v1/releases/${release.id}/tables/people/rows?limit=1000&orientation=tabular&dataset=clinic&cursor=`,
  });
});

Deno.test("data API: the publish service's refusals are relayed, signed", async () => {
  await using world = new DataApiWorld();
  const release = await world.published("proj_a", [peopleTable(2)]);
  const bad = await world.get(
    `/data/v1/releases/${release.id}/tables/people/rows?cursor=not-a-cursor&dataset=clinic`,
  );
  assert.equal(errorOf(bad).status, 400);
  assert.equal(errorOf(bad).code, "invalid_cursor");
  world.verifyReply(bad);
  const missing = await world.get(
    `/data/v1/releases/${release.id}/tables/people/rows?dataset=nowhere`,
  );
  assert.deepEqual([errorOf(missing).status, errorOf(missing).code], [404, "table_not_found"]);
  world.reader.publish(release, []);
  const gone = await world.get(`/data/v1/releases/${release.id}/tables/people/rows`);
  assert.deepEqual([errorOf(gone).status, errorOf(gone).code], [404, "table_not_found"]);
});

Deno.test("data API: a rows page is relayed only with the headers it is signed and audited by", async (t) => {
  await using world = new DataApiWorld();
  const release = await world.published("proj_a", [peopleTable(3)]);
  const path = `/data/v1/releases/${release.id}/tables/people/rows?limit=2&dataset=clinic`;
  const honest = await world.get(path);
  world.verifyReply(honest);
  const next = payloadOf(honest).next as string;
  assert.equal(honest.res.headers.get("link"), `<${next}>; rel="next"`);
  const PROTOCOL = "sub_service_protocol_error";
  const cases: [string, (headers: Headers) => void, string][] = [
    ["no payload hash", (h) => h.delete("x-hawk-payload-hash"), PROTOCOL],
    ["a payload hash that is not one", (h) => h.set("x-hawk-payload-hash", 'x", ext="y'), PROTOCOL],
    ["no length", (h) => h.delete("content-length"), PROTOCOL],
    ["no row count", (h) => h.delete("x-rows-returned"), PROTOCOL],
    [
      "a next page outside the table",
      (h) => h.set("link", '</data/v1/releases/other/rows?cursor=x>; rel="next"'),
      PROTOCOL,
    ],
    ["a link of another form", (h) => h.set("link", `<${next}>; rel="prev"`), PROTOCOL],
    [
      "a length over the gateway's reply limit",
      (h) => h.set("content-length", String(DEFAULT_MAX_REPLY_BYTES + 1)),
      "sub_service_reply_too_large",
    ],
  ];
  for (const [name, change, code] of cases) {
    await t.step(`${name}: 502 ${code}, nothing of the page relayed`, async () => {
      world.publishReply = (res) => {
        const headers = new Headers(res.headers);
        change(headers);
        return new Response(res.body, { status: res.status, headers });
      };
      const reply = await world.get(path);
      assert.deepEqual([errorOf(reply).status, errorOf(reply).code], [502, code]);
      assert.ok(!reply.text.includes('"p1"'), "no row of the page");
      world.verifyReply(reply);
    });
  }
  await t.step("a page changed after it was hashed fails the client's check", async () => {
    world.publishReply = (res) => {
      const headers = new Headers(res.headers);
      const changed = res.text().then((text) => text.replace('"p1"', '"px"'));
      return new Response(
        new ReadableStream({
          async start(controller) {
            controller.enqueue(new TextEncoder().encode(await changed));
            controller.close();
          },
        }),
        { status: res.status, headers },
      );
    };
    const reply = await world.get(path);
    assert.equal(reply.res.status, 200);
    assert.ok(reply.text.includes('"px"'));
    assert.throws(() => world.verifyReply(reply));
  });
});

Deno.test("data API: a rows page is sent on as it arrives, never held whole", async () => {
  await using world = new DataApiWorld();
  const release = await world.published("proj_a", [peopleTable(50)]);
  let letRestThrough = () => {};
  const rest = new Promise<void>((resolve) => letRestThrough = resolve);
  world.publishReply = (res) => {
    const bytes = res.arrayBuffer().then((b) => new Uint8Array(b));
    return new Response(
      new ReadableStream<Uint8Array>({
        async start(controller) {
          const all = await bytes;
          controller.enqueue(all.slice(0, 100));
          await rest;
          controller.enqueue(all.slice(100));
          controller.close();
        },
      }),
      { status: res.status, headers: res.headers },
    );
  };
  const path = `/data/v1/releases/${release.id}/tables/people/rows?dataset=clinic`;
  const timeout = new Promise<"held">((resolve) => setTimeout(() => resolve("held"), 2_000));
  const sent = await Promise.race([world.send(path), timeout]);
  assert.notEqual(sent, "held", "the reply started while the page was still arriving");
  if (sent === "held") return;
  assert.equal(sent.res.status, 200);
  const reader = sent.res.body!.getReader();
  const first = await reader.read();
  assert.equal(first.value?.length, 100, "the first part, before the rest was sent");
  letRestThrough();
  const parts = [first.value!];
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    parts.push(read.value);
  }
  const text = new TextDecoder().decode(new Uint8Array(await new Blob(parts).arrayBuffer()));
  world.verifyReply({ ...sent, text });
  assert.equal((payloadOf({ ...sent, text }).records as unknown[]).length, 50);
});

Deno.test("data API: a key-less table republished mid-paging is 409 release_changed, signed; restart works", async () => {
  await using world = new DataApiWorld();
  const csv = { ...peopleTable(5), key: [] };
  const release = await world.published("proj_a", [csv]);
  const tables = payloadOf(await world.get(`/data/v1/releases/${release.id}/tables`));
  assert.deepEqual((tables.tables as Json[])[0]!.key, [], "a CSV table has no key");
  const first = await world.get(
    `/data/v1/releases/${release.id}/tables/people/rows?limit=2&orientation=tabular`,
  );
  const next = payloadOf(first).next as string;
  assert.deepEqual((payloadOf(first).rows as string[][]).map((r) => r[0]), ["1", "2"]);
  world.reader.republish(release, "clinic", "people", peopleTable(3).rows);
  const changed = await world.get(next);
  assert.deepEqual([errorOf(changed).status, errorOf(changed).code], [409, "release_changed"]);
  assert.match(String(errorOf(changed).detail), /republished.*start again without a cursor/);
  world.verifyReply(changed);
  const restart = await world.get(
    `/data/v1/releases/${release.id}/tables/people/rows?limit=10&orientation=tabular`,
  );
  assert.deepEqual((payloadOf(restart).rows as string[][]).map((r) => r[0]), ["1", "2", "3"]);
  assert.equal(payloadOf(restart).next, null);
  for (const query of ["limit=0", "limit=10001", "orientation=sideways"]) {
    const calls = world.reader.calls.length;
    const bad = await world.get(`/data/v1/releases/${release.id}/tables/people/rows?${query}`);
    assert.deepEqual([errorOf(bad).status, errorOf(bad).code], [422, "invalid_request"], query);
    world.verifyReply(bad);
    assert.equal(world.reader.calls.length, calls, "refused before the publish service is asked");
  }
  await world.reads.flush();
  const reads = world.trail.dataReads.flatMap((e) => e.reads);
  const refused = reads.find((r) => r.status === 409);
  assert.equal(refused?.error_code, "release_changed");
  assert.equal(refused?.rows_returned, null);
});

Deno.test("data API: a table in two datasets needs dataset", async () => {
  await using world = new DataApiWorld();
  const release = await world.published("proj_a", [
    peopleTable(1),
    peopleTable(1, "people", "other"),
  ]);
  const reply = await world.get(`/data/v1/releases/${release.id}/tables/people/rows`);
  assert.deepEqual([errorOf(reply).status, errorOf(reply).code], [422, "table_ambiguous"]);
  const other = await world.get(`/data/v1/releases/${release.id}/tables/people/rows?dataset=other`);
  assert.equal(other.res.status, 200);
});

Deno.test("data API: out of scope, unknown, revoked, revoking, expired or unpublished is 404 alike", async (t) => {
  await using world = new DataApiWorld();
  const now = world.clock.now.getTime();
  const tables = [peopleTable(2), peopleTable(2, "visits")];
  const open = await world.published("proj_a", tables);
  const foreign = await world.published("proj_b", tables);
  const special = await world.published("proj_z", tables, { id: "r-special" });
  const revoked = await world.published("proj_a", tables);
  await world.revoke(revoked.id, true);
  const revoking = await world.published("proj_a", tables);
  await world.revoke(revoking.id, false);
  const expired = await world.published("proj_a", tables, {
    expiresAt: new Date(now - 1000).toISOString(),
  });
  const unpublished = await world.published("proj_a", tables);
  await world.store.update(unpublished.id, (r) => ({ ...r, publication: null }));

  const unknownReply = await world.get("/data/v1/releases/no-such-release/tables");
  const shapeOf = (reply: SignedReply) => ({
    status: reply.res.status,
    code: payloadOf(reply).code,
    detail: String(payloadOf(reply).detail).replace(/"[^"]*"/, "ID"),
  });
  const unknown = shapeOf(unknownReply);
  assert.deepEqual([unknown.status, unknown.code], [404, "release_not_found"]);
  world.verifyReply(unknownReply);
  for (
    const [name, id] of [
      ["another client's release", foreign.id],
      ["revoked", revoked.id],
      ["revoking", revoking.id],
      ["expired", expired.id],
      ["unpublished", unpublished.id],
    ] as const
  ) {
    await t.step(name, async () => {
      for (const path of [`/tables`, `/tables/people/rows`]) {
        const reply = await world.get(`/data/v1/releases/${id}${path}`);
        assert.deepEqual(shapeOf(reply), unknown, `${name} ${path}`);
      }
    });
  }
  await t.step("a table out of scope is like a missing one", async () => {
    const outOfScope = await world.get(`/data/v1/releases/${special.id}/tables/visits/rows`);
    const missing = await world.get(`/data/v1/releases/${special.id}/tables/nothing/rows`);
    assert.deepEqual([errorOf(outOfScope).status, errorOf(outOfScope).code], [
      404,
      "table_not_found",
    ]);
    assert.equal(errorOf(missing).status, 404);
    const qualified = await world.get(
      `/data/v1/releases/${special.id}/tables/visits/rows?dataset=clinic`,
    );
    assert.equal(errorOf(qualified).code, "table_not_found");
    const allowed = await world.get(`/data/v1/releases/${special.id}/tables/people/rows`);
    assert.equal(allowed.res.status, 200);
  });
  await t.step("a release revoked between pages is gone at once", async () => {
    const first = await world.get(`/data/v1/releases/${open.id}/tables/people/rows?limit=1`);
    const next = (payloadOf(first) as { next: string }).next;
    await world.revoke(open.id, false);
    const after = await world.get(next);
    assert.deepEqual([errorOf(after).status, errorOf(after).code], [404, "release_not_found"]);
  });
  // None of the refused ones reached the publish service.
  assert.ok(
    world.reader.calls.every((c) =>
      ![foreign.id, revoked.id, revoking.id, expired.id, unpublished.id].some((id) =>
        JSON.stringify(c.body).includes(id)
      )
    ),
  );
});

Deno.test("data API: HAWK refusals are 401 with WWW-Authenticate and the envelope", async (t) => {
  await using world = new DataApiWorld();
  await world.published("proj_a", [peopleTable(1)]);
  const path = "/data/v1/releases";

  function refused(reply: SignedReply, reason: RegExp): void {
    assert.equal(reply.res.status, 401, reply.text);
    assert.match(reply.res.headers.get("www-authenticate") ?? "", /^Hawk/);
    assert.equal(reply.res.headers.get("server-authorization"), null);
    const payload = payloadOf(reply);
    assert.equal(payload.code, "unauthorized");
    assert.match(String(payload.detail), reason);
    assert.equal(typeof payload.request_id, "string");
  }

  await t.step("replay", async () => {
    const first = await world.get(path);
    assert.equal(first.res.status, 200);
    const again = await world.get(path, { authorization: first.header });
    refused(again, /nonce was already used/);
  });
  await t.step("wrong MAC and unknown client answer alike", async () => {
    const wrong = await world.get(path, { credentials: { ...PIPELINE, key: "x".repeat(36) } });
    const unknown = await world.get(path, { credentials: { ...PIPELINE, id: "nobody" } });
    refused(wrong, /valid HAWK/);
    refused(unknown, /valid HAWK/);
    assert.equal(wrong.res.headers.get("www-authenticate"), "Hawk");
    assert.equal(unknown.res.headers.get("www-authenticate"), "Hawk");
    assert.equal(payloadOf(wrong).detail, payloadOf(unknown).detail);
  });
  await t.step("no credentials, or the gateway's key", async () => {
    const res = await world.app.request(GATEWAY + path, { headers: { "x-api-key": APPROVAL_KEY } });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("www-authenticate"), "Hawk");
  });
  await t.step("a request signed for another path", async () => {
    const reply = await world.get(path + "?limit=1", { signedPath: path });
    refused(reply, /valid HAWK/);
  });
  await t.step("skew: the server's signed time comes back", async () => {
    const reply = await world.get(path, { localtimeOffsetMsec: -120_000 });
    refused(reply, /timestamp/);
    const challenge = reply.res.headers.get("www-authenticate") ?? "";
    assert.match(challenge, /^Hawk ts="\d+", tsm="/);
    const { hawk } = await import("../../tests/support/data_api_world.ts");
    const checked = hawk.client.authenticate(
      { headers: { "www-authenticate": challenge } },
      PIPELINE,
      reply.artifacts,
    );
    assert.ok(Math.abs(Number(checked.headers["www-authenticate"].ts) * 1000 - Date.now()) < 5000);
    const within = await world.get(path, { localtimeOffsetMsec: -50_000 });
    assert.equal(within.res.status, 200);
  });
  await t.step("a body needs its payload hash, and must match it", async () => {
    const body = JSON.stringify({ a: 1 });
    const unhashed = await world.get(path, { method: "POST", body, hashPayload: false });
    refused(unhashed, /payload hash/);
    const tampered = await world.get(path, {
      method: "POST",
      body,
      sentBody: JSON.stringify({ a: 2 }),
    });
    refused(tampered, /does not match/);
    const honest = await world.get(path, { method: "POST", body });
    assert.equal(honest.res.status, 405);
    world.verifyReply(honest);
  });
});

Deno.test("data API: a reply changed on the way fails the client's check", async () => {
  await using world = new DataApiWorld();
  await world.published("proj_a", [peopleTable(1)]);
  const reply = await world.get("/data/v1/releases");
  world.verifyReply(reply);
  assert.throws(() =>
    world.verifyReply({ ...reply, text: reply.text.replace("proj_a", "proj_x") })
  );
});

Deno.test("data API: every read is audited, batched, and none is lost at shutdown", async () => {
  const world = new DataApiWorld({ maxReadsPerRecord: 4 });
  const release = await world.published("proj_a", [peopleTable(10)]);
  let path: string | null = `/data/v1/releases/${release.id}/tables/people/rows?limit=1`;
  let pages = 0;
  const cursors: (string | null)[] = [];
  while (path !== null) {
    cursors.push(new URL(path, GATEWAY).searchParams.get("cursor"));
    const reply = await world.get(path);
    path = (payloadOf(reply) as { next: string | null }).next;
    pages++;
  }
  await world.get("/data/v1/releases/unknown/tables");
  const reads = pages + 1;
  assert.equal(pages, 10);
  // Full batches were written at once (their appends may still be settling on a loaded machine); the
  // rest waits for the period.
  for (let i = 0; i < 100 && world.trail.dataReads.length < Math.floor(reads / 4); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(world.trail.dataReads.length, Math.floor(reads / 4));
  assert.equal(world.reads.pending, reads % 4);
  await world[Symbol.asyncDispose]();
  const records = world.trail.dataReads;
  assert.equal(records.length, Math.ceil(reads / 4), "one append per batch, not per page");
  const all = records.flatMap((r) => r.reads);
  assert.equal(all.length, reads);
  assert.ok(all.every((r) => r.client_id === PIPELINE.id));
  const rows = all.filter((r) => r.action === "read_rows");
  assert.deepEqual(rows.map((r) => r.rows_returned), Array(10).fill(1));
  assert.ok(rows.every((r) => r.release_id === release.id && r.table === "people"));
  assert.ok(rows.every((r) => r.dataset === "clinic" && r.status === 200));
  assert.equal(rows[0]!.cursor_in_sha256, null);
  assert.equal(rows[1]!.cursor_in_sha256, await sha256Hex(cursors[1]!));
  assert.equal(rows[0]!.cursor_out_sha256, rows[1]!.cursor_in_sha256);
  assert.equal(rows.at(-1)!.cursor_out_sha256, null);
  const refused = all.at(-1)!;
  assert.deepEqual([refused.action, refused.status, refused.error_code], [
    "list_tables",
    404,
    "release_not_found",
  ]);
  assert.ok(!world.trail.text().includes("p1"), "no row data in the trail");
  assert.equal(world.trail.records.length, 0, "reads are not recorded one by one");
});

Deno.test("data API: reads are written once per flush period", async () => {
  await using world = new DataApiWorld({ flushMs: 50 });
  const release = await world.published("proj_a", [peopleTable(3)]);
  for (let i = 0; i < 5; i++) {
    await world.get(`/data/v1/releases/${release.id}/tables/people/rows`);
  }
  assert.equal(world.trail.dataReads.length, 0);
  await new Promise((resolve) => setTimeout(resolve, 120));
  assert.equal(world.trail.dataReads.length, 1);
  assert.equal(world.trail.dataReads[0]!.reads.length, 5);
});

Deno.test("data API: a full nonce store refuses with 503 and serves nothing", async () => {
  await using world = new DataApiWorld();
  await world.published("proj_a", [peopleTable(1)]);
  const { MemoryNonceStore } = await import("../../adapters/memory/memory_nonce_store.ts");
  const full = new MemoryNonceStore({ windowSeconds: 60, maxEntries: 1 });
  Object.defineProperty(world.nonces, "claim", { value: full.claim.bind(full) });
  assert.equal((await world.get("/data/v1/releases")).res.status, 200);
  const reply = await world.get("/data/v1/releases");
  assert.equal(reply.res.status, 503);
  assert.equal(payloadOf(reply).code, "nonce_store_full");
  assert.equal(reply.res.headers.get("retry-after"), "1");
});

Deno.test("data API off: no /data/v1 routes, nothing in the OpenAPI document", async () => {
  await using world = new DataApiWorld({ dataApi: false });
  await world.published("proj_a", [peopleTable(1)]);
  const res = await world.app.request(GATEWAY + "/data/v1/releases", {
    headers: { "x-api-key": APPROVAL_KEY },
  });
  assert.equal(res.status, 404);
  assert.equal((await res.json()).payload.code, "not_found");
  const signed = await world.get("/data/v1/releases");
  assert.equal(signed.res.status, 403, "without the data API, the gateway's key is asked for");
  const doc = await (await world.app.request(GATEWAY + "/openapi.json")).json();
  assert.ok(!Object.keys(doc.paths).some((p) => p.startsWith("/data/")));
});

Deno.test("data API on: the routes are in the OpenAPI document with the Hawk scheme", async () => {
  await using world = new DataApiWorld();
  const doc = await (await world.app.request(GATEWAY + "/openapi.json")).json();
  assert.deepEqual(Object.keys(doc.paths).filter((p) => p.startsWith("/data/")).sort(), [
    "/data/v1/releases",
    "/data/v1/releases/{id}/tables",
    "/data/v1/releases/{id}/tables/{table}/rows",
  ]);
  assert.deepEqual(doc.paths["/data/v1/releases"].get.security, [{ Hawk: [] }]);
  assert.ok(doc.components.securitySchemes.Hawk);
});

Deno.test("data API: the gateway's other routes still take the key only", async () => {
  await using world = new DataApiWorld();
  const reply = await world.get("/releases");
  assert.equal(reply.res.status, 403);
});
