/**
 * End to end, an HTTP-file source (issue 18): real gateway and publish processes, a local file server,
 * a source configured by file. A run through the gateway fetches the files into staging; a second run
 * fetches nothing; a changed listing fetches only what is new; publish makes a verified bag.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bagProblems } from "../support/bagit_check.ts";
import { HttpFileServer } from "../support/http_file_server.ts";
import {
  newServiceKeys,
  postToService,
  type ServiceProcess,
  startStack,
} from "../support/processes.ts";

const KEYS = newServiceKeys();

Deno.test({
  name: "e2e: an HTTP-file source fetched through the gateway, only what is new, then published",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-http-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const services: ServiceProcess[] = [];
    await using server = await HttpFileServer.start();
    try {
      await mkdir(secrets);
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      for (const [name, value] of Object.entries(KEYS)) await writeFile(join(secrets, name), value);
      const allowList = join(work, "allowed.json");
      await writeFile(
        allowList,
        JSON.stringify({
          sources: [],
          http_sources: [{ host: "127.0.0.1", port: server.port, scheme: "http", private: true }],
        }),
      );
      const sourcesFile = join(work, "http-sources.json");
      await writeFile(
        sourcesFile,
        JSON.stringify({
          sources: [{
            name: "weekly",
            index: { url: `${server.origin}/index.html`, format: "html", pattern: "\\.csv$" },
            destination: "LSC",
            project_name: "Pr042",
          }],
        }),
      );
      server.put("/a.csv", "id\n1\n");
      server.put("/b.csv", "id\n2\n");
      const { approval } = await startStack({
        secrets,
        storage,
        allowedSources: [],
        env: { ALLOWED_SOURCES_FILE: allowList },
        publishEnv: { HTTP_FILE_SOURCES_FILE: sourcesFile },
      }, services);
      const run = () =>
        postToService(`${approval.url}/http-sources/weekly/run`, {}, KEYS.approvalserviceapikey);

      const first = await run();
      assert.equal(first.status, 200, JSON.stringify(first.json));
      assert.deepEqual(
        first.json.payload.files.map((f: { outcome: string }) => f.outcome),
        ["fetched", "fetched"],
      );
      const second = await run();
      assert.deepEqual(
        second.json.payload.files.map((f: { outcome: string }) => f.outcome),
        ["unchanged", "unchanged"],
      );
      server.put("/c.csv", "id\n3\n");
      const third = await run();
      assert.deepEqual(
        third.json.payload.files.map((f: { outcome: string }) => f.outcome),
        ["unchanged", "unchanged", "fetched"],
      );
      assert.equal(server.bodiesServed("/a.csv"), 1);
      assert.equal(server.bodiesServed("/c.csv"), 1);

      const start = first.json.payload.project_start_time as string;
      const published = await postToService(`${approval.url}/project/publish`, {
        project_name: "Pr042",
        project_start_time: start,
        destination: { name: "LSC", type: "filestore", format: "csv" },
      }, KEYS.approvalserviceapikey);
      assert.equal(published.status, 200, JSON.stringify(published.json));
      assert.deepEqual(
        published.json.payload.data_published.map((i: { file_path: string }) => i.file_path),
        ["data/outputs/weekly/a.csv", "data/outputs/weekly/b.csv"],
      );
      assert.deepEqual(await bagProblems(join(storage, "production", "Pr042", start)), []);

      const listed = await fetch(`${approval.url}/http-sources`, {
        headers: { "x-api-key": KEYS.approvalserviceapikey },
      });
      const sources = (await listed.json()).payload.sources;
      assert.deepEqual(sources[0].files, { processed: 3, failed: 0, ignored: 0 });
    } finally {
      for (const service of services.reverse()) await service[Symbol.asyncDispose]();
      await rm(work, { recursive: true, force: true });
    }
  },
});
