/**
 * The gateway forwards the HTTP-file source routes to a real publish service (over HTTP), `Prefer`
 * included, and its replies match the gateway's own OpenAPI document.
 */
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import { MemoryReleaseStore } from "../../adapters/memory/memory_release_store.ts";
import { APPROVAL_KEY, METADATA_KEY, PUBLISH_KEY } from "../../tests/support/apps.ts";
import { withHttpSourcesService } from "../../tests/support/http_sources_service.ts";
import { memoryLogger } from "../_shared/log.ts";
import { RefusalTally } from "../_shared/refusals.ts";
import { listen } from "../_shared/serve.ts";
import { createApprovalApp } from "./app.ts";

Deno.test("the gateway forwards GET /http-sources and POST /http-sources/{name}/run", async () => {
  await withHttpSourcesService(async ({ server, service }) => {
    server.put("/a.csv", "id\n1\n");
    const publish = await listen(service.app.fetch, {
      hostname: "127.0.0.1",
      port: 0,
      headersTimeoutMs: 10_000,
    });
    const log = memoryLogger("approval");
    const refusals = new RefusalTally({ service: "approval", log, intervalMs: 60_000 });
    const gateway = createApprovalApp({
      releaseStore: new MemoryReleaseStore(),
      apiKey: APPROVAL_KEY,
      log,
      refusals,
      maxBodyBytes: 64 * 1024,
      metadata: { name: "metadata", baseUrl: "http://127.0.0.1:9/", apiKey: METADATA_KEY },
      publish: {
        name: "publish",
        baseUrl: `http://127.0.0.1:${publish.port}/`,
        apiKey: PUBLISH_KEY,
      },
      timeoutMs: 5000,
      readyTimeoutMs: 1000,
      fetch: globalThis.fetch,
    });
    try {
      // deno-lint-ignore no-explicit-any
      const doc: any = await (await gateway.request("http://test.local/openapi.json")).json();
      const ajv = new Ajv2020({ strict: false, allErrors: true });
      const call = async (
        method: string,
        path: string,
        headers: Record<string, string> = {},
        // deno-lint-ignore no-explicit-any
      ): Promise<{ res: Response; body: any }> => {
        const res = await gateway.request(`http://test.local${path}`, {
          method,
          headers: { "x-api-key": APPROVAL_KEY, ...headers },
        });
        // deno-lint-ignore no-explicit-any
        const body: any = await res.json();
        const template = path.replace(/\/http-sources\/[^/]+\//, "/http-sources/{name}/");
        const declared = doc.paths[template][method.toLowerCase()].responses[String(res.status)];
        assert.ok(declared, `${res.status} declared for ${method} ${template}`);
        const validate = ajv.compile({
          ...declared.content["application/json"].schema,
          components: doc.components,
        });
        assert.ok(validate(body), JSON.stringify(validate.errors));
        return { res, body };
      };

      const ran = await call("POST", "/http-sources/weekly/run");
      assert.equal(ran.res.status, 200);
      assert.equal(ran.body.payload.files[0].outcome, "fetched");

      const queued = await call("POST", "/http-sources/weekly/run", { prefer: "respond-async" });
      assert.equal(queued.res.status, 202);
      assert.equal(queued.res.headers.get("location"), `/runs/${queued.body.payload.id}`);
      await service.runner.settled(queued.body.payload.id);

      const listed = await call("GET", "/http-sources");
      assert.equal(listed.body.payload.sources[0].files.processed, 1);
      const files = await call("GET", "/http-sources/weekly/files");
      assert.equal(files.body.payload.files.length, 1);
      const missing = await call("POST", "/http-sources/nope/run");
      assert.equal(missing.res.status, 404);
      assert.equal(server.bodiesServed("/a.csv"), 1, "the second run fetched nothing");
    } finally {
      refusals.close();
      await publish.shutdown();
    }
  });
});
