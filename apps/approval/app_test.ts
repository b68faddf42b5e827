import assert from "node:assert/strict";
import { aPublishRequest, aTransferRequest, postJson } from "../../tests/support/requests.ts";
import { APPROVAL_KEY, FakeWorld, METADATA_KEY, PUBLISH_KEY } from "../../tests/support/apps.ts";

Deno.test("approval app POST /project/validate", async (t) => {
  await t.step(
    "calls publish validate, then metadata, and returns the metadata payload",
    async () => {
      using world = new FakeWorld();
      const res = await world.approvalApp().request(
        postJson("/project/validate", aTransferRequest(), APPROVAL_KEY),
      );
      const json = await res.json();
      assert.equal(res.status, 200);
      assert.equal(json.status, "success");
      assert.equal(json.payload.schema_name, "oncology");
      assert.deepEqual(json.payload.tables[0].columns.map((c: { name: string }) => c.name), [
        "stage_id",
        "stage_label",
      ]);
      assert.equal(world.connections.length, 2, "publish validate and metadata each connect once");
      assert.equal(
        world.publishLog.lines.filter((l) => l.includes('"/data-publish/validate"')).length,
        1,
      );
      assert.equal(
        world.metadataLog.lines.filter((l) => l.includes('"/metadata/project"')).length,
        1,
      );
    },
  );

  await t.step(
    "returns the dataset description the request carries, with a project name holding spaces",
    async () => {
      using world = new FakeWorld();
      const body = aTransferRequest({ project_name: "CR8TOR Demo Project" });
      (body.dataset as Record<string, unknown>).description = "Ma description, écrite à la main";
      const res = await world.approvalApp().request(
        postJson("/project/validate", body, APPROVAL_KEY),
      );
      const json = await res.json();
      assert.equal(res.status, 200, JSON.stringify(json));
      assert.equal(json.payload.description, "Ma description, écrite à la main");
    },
  );

  await t.step(
    "stops at a failed publish validate and passes its status and detail through",
    async () => {
      using world = new FakeWorld();
      world.breakFilestore("staging");
      const res = await world.approvalApp().request(
        postJson("/project/validate", aTransferRequest(), APPROVAL_KEY),
      );
      const json = await res.json();
      assert.equal(res.status, 500);
      assert.equal(
        json.payload.detail,
        "PublishService: Cannot use the staging area: it does not exist",
      );
      assert.equal(world.metadataLog.lines.length, 0, "metadata is never called");
    },
  );

  await t.step("passes a metadata 404 through unchanged", async () => {
    using world = new FakeWorld();
    const body = aTransferRequest();
    (body.dataset as Record<string, unknown>).tables = [{ name: "missing_table" }];
    const res = await world.approvalApp().request(
      postJson("/project/validate", body, APPROVAL_KEY),
    );
    const json = await res.json();
    assert.equal(res.status, 404);
    assert.match(
      json.payload.detail,
      /^MetadataService: Cannot find in schema "oncology": tables "missing_table"/,
    );
  });

  await t.step("rejects an invalid body with 422 and calls nobody", async () => {
    using world = new FakeWorld();
    const res = await world.approvalApp().request(
      postJson(
        "/project/validate",
        aTransferRequest({ project_start_time: "yesterday" }),
        APPROVAL_KEY,
      ),
    );
    const json = await res.json();
    assert.equal(res.status, 422);
    assert.deepEqual(json.payload.issues.map((i: { path: string }) => i.path), [
      "project_start_time",
    ]);
    assert.equal(world.publishLog.lines.length + world.metadataLog.lines.length, 0);
  });

  await t.step(
    "forwards the request id and the sub-service keys, never the caller's key",
    async () => {
      const seen: { url: string; key: string | null; requestId: string | null }[] = [];
      using world = new FakeWorld();
      const recording: typeof fetch = (input, init) => {
        const headers = new Headers(init?.headers);
        seen.push({
          url: String(input),
          key: headers.get("x-api-key"),
          requestId: headers.get("x-request-id"),
        });
        const target = String(input).includes("metadata")
          ? world.metadataApp()
          : world.publishApp();
        return Promise.resolve(target.request(new URL(String(input)).pathname, init));
      };
      const res = await world.approvalApp({ fetch: recording }).request(
        postJson("/project/validate", aTransferRequest(), APPROVAL_KEY, {
          "x-request-id": "cli-123",
        }),
      );
      assert.equal(res.status, 200);
      assert.deepEqual(seen, [
        {
          url: "http://publish.test:8003/data-publish/validate",
          key: PUBLISH_KEY,
          requestId: "cli-123",
        },
        {
          url: "http://metadata.test:8002/metadata/project",
          key: METADATA_KEY,
          requestId: "cli-123",
        },
      ]);
    },
  );
});

Deno.test("approval app forwards package and publish to the publish service", async (t) => {
  await t.step("package then publish return the publish service's payloads", async () => {
    using world = new FakeWorld();
    const app = world.approvalApp();
    let res = await app.request(postJson("/project/package", aTransferRequest(), APPROVAL_KEY));
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json()).payload, {
      data_retrieved: [{ file_path: "data/outputs/oncology/tumour_stage.csv" }],
    });
    res = await app.request(postJson("/project/publish", aPublishRequest(), APPROVAL_KEY));
    const json = await res.json();
    assert.equal(res.status, 200);
    assert.equal(
      json.payload.data_published[0].file_path,
      "data/outputs/oncology/tumour_stage.csv",
    );
    assert.match(json.payload.data_published[0].hash_value, /^[0-9a-f]{128}$/);
  });

  await t.step("a publish error passes through with its status and detail", async () => {
    using world = new FakeWorld();
    const res = await world.approvalApp().request(
      postJson("/project/publish", aPublishRequest(), APPROVAL_KEY),
    );
    const json = await res.json();
    assert.equal(res.status, 409);
    assert.match(json.payload.detail, /^PublishService: Cannot publish project "Pr042"/);
  });
});

/** A sub-service reply of `chunks` chunks of `size` bytes, counting the chunks pulled from it. */
function aLargeReply(chunks: number, size: number, headers: Record<string, string> = {}) {
  const state = { pulled: 0, cancelled: false };
  const chunk = new TextEncoder().encode("x".repeat(size));
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (state.pulled === chunks) return controller.close();
      state.pulled++;
      controller.enqueue(chunk);
    },
    cancel() {
      state.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { response: new Response(body, { status: 200, headers }), state };
}

Deno.test("approval app reads a sub-service reply only up to SUBSERVICE_MAX_REPLY_BYTES", async (t) => {
  await t.step("a streamed reply over the cap: 502, reading stops at the cap", async () => {
    using world = new FakeWorld();
    const { response, state } = aLargeReply(1000, 1024);
    const res = await world.approvalApp({
      fetch: () => Promise.resolve(response),
      maxReplyBytes: 10 * 1024,
    }).request(postJson("/project/package", aTransferRequest(), APPROVAL_KEY));
    assert.equal(res.status, 502);
    const json = await res.json();
    assert.equal(json.payload.code, "sub_service_reply_too_large");
    assert.equal(
      json.payload.detail,
      "The publish service sent a reply larger than 10240 bytes, which the gateway does not read",
    );
    assert.ok(state.pulled <= 11, `pulled ${state.pulled} chunks of 1 KiB`);
    assert.ok(state.cancelled, "the reply was cancelled");
  });

  await t.step("a declared length over the cap: 502 before a byte is read", async () => {
    using world = new FakeWorld();
    const { response, state } = aLargeReply(1000, 1024, { "content-length": "1024000" });
    const res = await world.approvalApp({
      fetch: () => Promise.resolve(response),
      maxReplyBytes: 10 * 1024,
    }).request(postJson("/project/package", aTransferRequest(), APPROVAL_KEY));
    assert.equal(res.status, 502);
    assert.equal((await res.json()).payload.code, "sub_service_reply_too_large");
    assert.equal(state.pulled, 0);
  });

  await t.step("a reply within the cap passes", async () => {
    using world = new FakeWorld();
    const reply = JSON.stringify({ status: "success", payload: { data_retrieved: [] } });
    const res = await world.approvalApp({
      fetch: () => Promise.resolve(new Response(reply, { status: 200 })),
      maxReplyBytes: reply.length,
    }).request(postJson("/project/package", aTransferRequest(), APPROVAL_KEY));
    assert.equal(res.status, 200);
  });
});

Deno.test("approval app forwards only a safe request id", async (t) => {
  const cases: [string, string, boolean][] = [
    ["a safe id", "cli-run-42", true],
    ["an id with a space", "cli run 42", false],
    ["an id of 200 characters", "r".repeat(200), false],
  ];
  for (const [name, given, kept] of cases) {
    await t.step(name, async () => {
      using world = new FakeWorld();
      const forwarded: string[] = [];
      const recording: typeof fetch = (_input, init) => {
        forwarded.push(new Headers(init?.headers).get("x-request-id") ?? "");
        return Promise.resolve(
          new Response(JSON.stringify({ status: "success", payload: {} }), { status: 200 }),
        );
      };
      const res = await world.approvalApp({ fetch: recording }).request(
        postJson("/project/package", aTransferRequest(), APPROVAL_KEY, { "x-request-id": given }),
      );
      assert.equal(res.status, 200);
      const id = res.headers.get("x-request-id");
      assert.deepEqual(forwarded, [id]);
      if (kept) assert.equal(id, given);
      else assert.match(id ?? "", /^[0-9a-f-]{36}$/);
    });
  }
});

Deno.test("approval app sub-service failures", async (t) => {
  await t.step("answers 502 naming the unreachable service but not its key", async () => {
    using world = new FakeWorld();
    const refused: typeof fetch = () =>
      Promise.reject(new TypeError("error sending request: Connection refused"));
    const res = await world.approvalApp({ fetch: refused }).request(
      postJson("/project/publish", aPublishRequest(), APPROVAL_KEY),
    );
    const json = await res.json();
    assert.equal(res.status, 502);
    assert.equal(
      json.payload.detail,
      "Error connecting to the publish service. Base url: http://publish.test:8003/",
    );
    assert.ok(!JSON.stringify(json).includes(PUBLISH_KEY));
    assert.ok(!world.allLogLines().join("\n").includes(PUBLISH_KEY));
  });

  await t.step("answers 504 when the sub-service does not answer in time", async () => {
    using world = new FakeWorld();
    const slow: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
      });
    const res = await world.approvalApp({ fetch: slow, timeoutMs: 50 }).request(
      postJson("/project/publish", aPublishRequest(), APPROVAL_KEY),
    );
    assert.equal(res.status, 504);
    assert.equal((await res.json()).payload.code, "sub_service_timeout");
  });

  await t.step("wraps a non-JSON error reply in the envelope with the same status", async () => {
    using world = new FakeWorld();
    const html: typeof fetch = () =>
      Promise.resolve(new Response("<h1>Bad Gateway</h1>", { status: 503 }));
    const res = await world.approvalApp({ fetch: html }).request(
      postJson("/project/publish", aPublishRequest(), APPROVAL_KEY),
    );
    const json = await res.json();
    assert.equal(res.status, 503);
    assert.equal(json.status, "error");
    assert.equal(json.payload.detail, "<h1>Bad Gateway</h1>");
  });

  await t.step("answers 502 for a 2xx reply that is not JSON", async () => {
    using world = new FakeWorld();
    const text: typeof fetch = () => Promise.resolve(new Response("ok", { status: 200 }));
    const res = await world.approvalApp({ fetch: text }).request(
      postJson("/project/publish", aPublishRequest(), APPROVAL_KEY),
    );
    assert.equal(res.status, 502);
  });

  await t.step("GET /ready reports an unreachable sub-service", async () => {
    using world = new FakeWorld();
    const partial: typeof fetch = (input) =>
      String(input).includes("metadata")
        ? Promise.reject(new TypeError("refused"))
        : Promise.resolve(new Response("{}", { status: 200 }));
    const res = await world.approvalApp({ fetch: partial }).request("http://test.local/ready", {
      headers: { "x-api-key": APPROVAL_KEY },
    });
    const json = await res.json();
    assert.equal(res.status, 503);
    assert.deepEqual(json.payload.checks, [
      { name: "metadata service", ok: false, detail: "cannot reach http://metadata.test:8002/" },
      { name: "publish service", ok: true },
      { name: "release store", ok: true },
    ]);
  });
});
