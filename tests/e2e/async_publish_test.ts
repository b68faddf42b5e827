/**
 * End to end, a publish accepted as a run (`Prefer: respond-async`) through the three services as real
 * processes and a real PostgreSQL source: the gateway records the release's publication (receipt, crate,
 * files) when the run ends, as for a synchronous publish: once read through the gateway's
 * `GET /runs/{id}`, and, for a gateway stopped before the run ended, by the restarted gateway's release
 * sweep from the release store it keeps under `STATE_DIR`.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PostgresSandbox } from "../support/databases.ts";
import {
  newServiceKeys,
  postToService,
  type ServiceProcess,
  startService,
  startStack,
  writeAllowList,
} from "../support/processes.ts";
import { allowedLocalPostgres, ignorePostgres, POSTGRES, randomName } from "../support/services.ts";

const KEYS = newServiceKeys();
const PROJECT = "Pr019";
const ASYNC = { prefer: "respond-async" };

const DDL = `
  create table $s.visits (id integer primary key, clinic varchar(40) not null);
  insert into $s.visits values (1, 'North'), (2, 'South');
`;

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

async function get(url: string, apiKey: string): Promise<{ status: number; json: Json }> {
  const res = await fetch(url, { headers: { "x-api-key": apiKey } });
  return { status: res.status, json: await res.json() };
}

/** Polls `read` until `done` holds for its value; fails after 60 s (a bound, not a timing test). */
async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

Deno.test({
  name: "e2e: an async publish gets its receipt, crate and files, also across a gateway restart",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-async-publish-"));
    const secrets = join(work, "secrets");
    const storage = join(work, "lsc");
    const approvalState = join(work, "approval-state");
    const pg = new PostgresSandbox();
    const schema = randomName("cr8_async");
    const services: ServiceProcess[] = [];
    try {
      await mkdir(secrets);
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      await mkdir(approvalState);
      await pg.createRole();
      await pg.createSchema(schema, DDL);
      const files = { ...KEYS, pguser: pg.role, pgpassword: pg.password };
      for (const [name, value] of Object.entries(files)) {
        await writeFile(join(secrets, name), value);
      }
      // A sweep an hour away: only GET /runs/{id} can record the first publication.
      const approvalEnv = { STATE_DIR: approvalState, RELEASE_SWEEP_INTERVAL_SECONDS: "3600" };
      const stack = await startStack({
        secrets,
        storage,
        allowedSources: [allowedLocalPostgres()],
        approvalEnv,
      }, services);
      let approval = stack.approval;
      const gatewayKey = KEYS.approvalserviceapikey;
      const request = (startTime: string) => ({
        project_name: PROJECT,
        project_start_time: startTime,
        destination: { name: "LSC", type: "filestore", format: "csv" },
        source: {
          type: "postgresql",
          host_url: POSTGRES.host,
          port: POSTGRES.port,
          database: POSTGRES.database,
          credentials: { username_key: "pguser", password_key: "pgpassword" },
        },
        dataset: { name: "visits", schema_name: schema, tables: null },
      });
      /** Packages, then publishes asynchronously; the run id. */
      const publishAsync = async (startTime: string): Promise<string> => {
        const body = request(startTime);
        const packaged = await postToService(`${approval.url}/project/package`, body, gatewayKey);
        assert.equal(packaged.status, 200, JSON.stringify(packaged.json));
        const { source: _source, dataset: _dataset, ...publishBody } = body;
        const started = await postToService(
          `${approval.url}/project/publish`,
          publishBody,
          gatewayKey,
          ASYNC,
        );
        assert.equal(started.status, 202, JSON.stringify(started.json));
        return started.json.payload.id;
      };
      const releaseOf = async (startTime: string): Promise<Json> => {
        const { json } = await get(`${approval.url}/releases?project=${PROJECT}`, gatewayKey);
        const release = json.payload.releases.find((r: Json) => r.project_start_time === startTime);
        assert.ok(release, `no release of ${startTime}`);
        return release;
      };
      const assertPublished = async (startTime: string, run: Json) => {
        const release = await releaseOf(startTime);
        const reply = run.outcome.body.payload;
        assert.deepEqual(release.pending_publishes, []);
        assert.deepEqual(release.publication.receipt, reply.receipt);
        assert.equal(release.publication.receipt.claims.release_id, release.id);
        assert.deepEqual(release.publication.files, reply.data_published);
        assert.equal(release.publication.published_at, run.finished_at);
        const crate = await fetch(`${approval.url}/releases/${release.id}/crate`, {
          headers: { "x-api-key": gatewayKey },
        });
        assert.equal(crate.status, 200);
        assert.deepEqual(await crate.json(), reply.crate);
      };

      await t.step(
        "read through GET /runs/{id}, a finished async publish is recorded",
        async () => {
          const startTime = "20261207_100000";
          const runId = await publishAsync(startTime);
          const pending = await releaseOf(startTime);
          assert.deepEqual(pending.pending_publishes.map((p: Json) => p.run_id), [runId]);
          const run = await until(
            () => get(`${approval.url}/runs/${runId}`, gatewayKey),
            ({ json }) => json.payload?.state === "succeeded",
            "the publish run",
          );
          await assertPublished(startTime, run.json.payload);
        },
      );

      await t.step(
        "a gateway stopped before the run ended records it after its restart",
        async () => {
          const startTime = "20261207_110000";
          const runId = await publishAsync(startTime);
          await approval.stop();
          const run = await until(
            () => get(`${stack.publish.url}/runs/${runId}`, KEYS.publishserviceapikey),
            ({ json }) => json.payload?.state === "succeeded",
            "the publish run",
          );
          approval = await startService("approval", {
            SECRETS_MNT_PATH: secrets,
            ALLOWED_SOURCES_FILE: await writeAllowList(work, [allowedLocalPostgres()]),
            METADATA_CONTAINER_NAME: "127.0.0.1",
            METADATA_CONTAINER_PORT: String(stack.metadata.port),
            PUBLISH_CONTAINER_NAME: "127.0.0.1",
            PUBLISH_CONTAINER_PORT: String(stack.publish.port),
            ...approvalEnv,
            RELEASE_SWEEP_INTERVAL_SECONDS: "1",
          });
          services.push(approval);
          await until(
            () => releaseOf(startTime),
            (release) => release.publication !== null,
            "the sweep to record the publication",
          );
          await assertPublished(startTime, run.json.payload);
          assert.ok(approval.logs.some((line) => line.includes("release_publish_run_settled")));
        },
      );
    } finally {
      for (const service of services.reverse()) await service.stop();
      await pg.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  },
});
