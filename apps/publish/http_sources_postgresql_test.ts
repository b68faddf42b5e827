import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { Ed25519ReleaseSigner } from "../../adapters/crypto/ed25519_release_signer.ts";
import { canonicalJson } from "../../domain/audit.ts";
import { verifyReceipt } from "../../domain/release_receipt.ts";
import type { PostgresqlDestination } from "../../application/destinations.ts";
import { projectIdentifier } from "../../domain/names.ts";
import { PUBLISH_KEY } from "../../tests/support/apps.ts";
import {
  DestinationSandbox,
  sandboxPostgresqlDestination,
} from "../../tests/support/destination_databases.ts";
import { FakeOpal } from "../../tests/support/fake_opal.ts";
import { withHttpSourcesService } from "../../tests/support/http_sources_service.ts";
import { testReleaseSigner } from "../../tests/support/release_signing.ts";
import { postJson } from "../../tests/support/requests.ts";
import { ignorePostgres } from "../../tests/support/services.ts";

const PG = { type: "postgresql", name: "", format: "sql" } as const;
const RELEASE_ID = "6b1f7c2e-5d1a-4a8e-9f3b-2c7d9e0a1b44";

/** A source file with every inferred type, a quoted comma, empty fields and a CRLF line end. */
const CODES =
  'id,name,amount,active,day,at,note\r\n1,"Smith, J",12.50,true,2024-02-29,2024-02-29T10:11:12Z,\r\n' +
  "-9223372036854775808,,-3,FALSE,,2024-03-01 00:00:00+02:00,\r\n";

/** What the assertions read of a reply's payload. */
interface Payload {
  readonly project_start_time?: string;
  readonly loaded_tables?: string[];
  readonly code?: string;
  readonly detail?: string;
  readonly data_published?: { postgresql_table_name: string }[];
  readonly receipt?: { jws: string };
  readonly crate?: unknown;
  readonly certificate?: { tables: { table: string; rows: number }[] };
  readonly staging_digest?: string | null;
}

async function withPostgresqlSources(
  body: (s: {
    sandbox: DestinationSandbox;
    opal: FakeOpal;
    signer: Ed25519ReleaseSigner;
    run: () => Promise<{ status: number; payload: Payload }>;
    send: (path: string, body: unknown) => Promise<{ status: number; payload: Payload }>;
    put: (path: string, text: string | Uint8Array) => void;
    served: (path: string) => number;
    schemas: () => Promise<string[]>;
  }) => Promise<void>,
): Promise<void> {
  const sandbox = new DestinationSandbox();
  const signer = await testReleaseSigner();
  await using opal = await FakeOpal.start();
  try {
    await sandbox.create();
    const postgresql: PostgresqlDestination = sandboxPostgresqlDestination(sandbox, opal);
    await withHttpSourcesService(async ({ server, service }) => {
      const send = async (path: string, json: unknown) => {
        const res = await service.app.request(postJson(path, json, PUBLISH_KEY));
        return { status: res.status, payload: (await res.json()).payload };
      };
      await body({
        sandbox,
        opal,
        signer,
        run: () => send("/http-sources/weekly/run", {}),
        send,
        put: (path, text) => server.put(path, text),
        served: (path) => server.bodiesServed(path),
        schemas: async () =>
          (await sandbox.admin()<{ name: string }[]>`
            select nspname as name from pg_catalog.pg_namespace
             where nspname like ${projectIdentifier("Pr042") + "\\_%"} order by 1`)
            .map((r) => r.name),
      });
    }, { loadIntoPostgresql: true, postgresql, releaseSigner: signer });
  } finally {
    await sandbox.cleanup();
  }
}

function release(start: string) {
  return {
    project_name: "Pr042",
    project_start_time: start,
    destination: PG,
    release: {
      id: RELEASE_ID,
      requested_by: { kind: "person", id: "alice", issuer: "https://idp.example" },
      decisions: [],
      expires_at: null,
    },
  };
}

Deno.test({
  name:
    "an HTTP-file source with postgresql: true loads its CSV files as typed tables; publish grants them with a crate and receipt; revoke drops them",
  ignore: ignorePostgres,
  fn: () =>
    withPostgresqlSources(async ({ sandbox, opal, signer, run, send, put, schemas }) => {
      put("/codes.csv", CODES);
      put("/Weekly-2026.csv", "n\n1\n2\n");
      const fetched = await run();
      assert.equal(fetched.status, 200, JSON.stringify(fetched.payload));
      const start = fetched.payload.project_start_time as string;
      const schema = `${projectIdentifier("Pr042")}_${start}_weekly`;
      const weekly = projectIdentifier("Weekly-2026");
      assert.match(weekly, /^weekly_2026_[0-9a-f]{8}$/);
      assert.deepEqual(fetched.payload.loaded_tables, [`${schema}.codes`, `${schema}.${weekly}`]);
      assert.deepEqual(await schemas(), [schema]);

      const admin = sandbox.admin();
      const columns = await admin<{ name: string; type: string }[]>`
        select column_name as name, data_type as type from information_schema.columns
         where table_schema = ${schema} and table_name = 'codes' order by ordinal_position`;
      assert.deepEqual(columns.map((c) => `${c.name} ${c.type}`), [
        "id bigint",
        "name text",
        "amount numeric",
        "active boolean",
        "day date",
        "at timestamp with time zone",
        "note text",
      ]);
      await admin`set time zone 'UTC'`;
      const rows = await admin.unsafe(
        `select id::text, name, amount::text, active::text, day::text, at::text, note
           from "${schema}".codes order by id desc`,
      );
      assert.deepEqual(rows.map((r) => Object.values(r)), [
        ["1", "Smith, J", "12.50", "true", "2024-02-29", "2024-02-29 10:11:12+00", null],
        ["-9223372036854775808", null, "-3", "false", null, "2024-02-29 22:00:00+00", null],
      ]);
      // Nothing is readable by OPAL's role before publish.
      await assert.rejects(sandbox.asReader().unsafe(`select * from "${schema}".codes`));

      const published = await send("/data-publish/publish", release(start));
      assert.equal(published.status, 200, JSON.stringify(published.payload));
      const project = projectIdentifier("Pr042");
      assert.deepEqual(
        published.payload.data_published!.map((p: { postgresql_table_name: string }) =>
          p.postgresql_table_name
        ).sort(),
        [`${schema}.codes`, `${schema}.${weekly}`],
      );
      const claims = await verifyReceipt(published.payload.receipt!.jws, await signer.keySet());
      assert.equal(claims.release_id, RELEASE_ID);
      assert.deepEqual(claims.destination.type, "postgresql");
      assert.deepEqual(claims.subject, {
        kind: "ro-crate-sha512",
        sha512: createHash("sha512").update(canonicalJson(published.payload.crate)).digest("hex"),
      });
      const crateText = JSON.stringify(published.payload.crate);
      for (const column of ["amount", "active", "at"]) assert.ok(crateText.includes(`"${column}"`));
      assert.ok(crateText.includes(`${schema}.codes`));
      assert.ok(Object.keys(opal.state.resources[project] ?? {}).length === 2);
      const read = await sandbox.asReader().unsafe(
        `select count(*)::int as n from "${schema}".codes`,
      );
      assert.equal(read[0]!.n, 2);

      const revoked = await send("/data-publish/revoke", {
        ...release(start),
        release: undefined,
        release_id: RELEASE_ID,
        reason: "Consent withdrawn",
        requested_by: { kind: "person", id: "alice", issuer: "https://idp.example" },
      });
      assert.equal(revoked.status, 200, JSON.stringify(revoked.payload));
      assert.deepEqual(
        revoked.payload.certificate!.tables.map((t: { table: string; rows: number }) => [
          t.table,
          t.rows,
        ]),
        [["codes", 2], [weekly, 2]],
      );
      assert.deepEqual(await schemas(), []);
      assert.deepEqual(Object.keys(opal.state.resources[project] ?? {}), []);
    }),
});

Deno.test({
  name:
    "an HTTP-file source with postgresql: true refuses a ragged or non-UTF-8 file: 422, nothing loaded, staged or publishable",
  ignore: ignorePostgres,
  fn: () =>
    withPostgresqlSources(async ({ run, send, put, served, schemas }) => {
      put("/good.csv", "id\n1\n");
      put("/ragged.csv", "a,b\n1,2\n3\n");
      const ragged = await run();
      assert.equal(ragged.status, 422, JSON.stringify(ragged.payload));
      assert.equal(ragged.payload.code, "csv_load_refused");
      assert.match(
        ragged.payload.detail as string,
        /Cannot load "ragged\.csv" into the PostgreSQL destination: 1 rows do not have the header's 2 fields/,
      );
      assert.deepEqual(await schemas(), []);

      put("/ragged.csv", new Uint8Array([0x61, 0x0a, 0x31, 0xc3, 0x28, 0x0a]));
      const latin = await run();
      assert.equal(latin.status, 422);
      assert.match(latin.payload.detail as string, /not valid UTF-8 at byte offset 3/);
      assert.deepEqual(await schemas(), []);
      assert.equal(served("/good.csv"), 2, "a refused run records no file as processed");

      for (const start of ["20261207_010010", "20261207_010011"]) {
        const staging = await send("/data-publish/staging", {
          project_name: "Pr042",
          project_start_time: start,
          destination: { type: "filestore", name: "LSC", format: "csv" },
        });
        assert.equal(staging.payload.staging_digest, null, "nothing staged in the filestore");
        const published = await send("/data-publish/publish", release(start));
        assert.equal(published.status, 409);
        assert.equal(published.payload.code, "nothing_staged");
      }
    }),
});

Deno.test("a source with postgresql: true on a deployment without the PostgreSQL destination is refused before a run", async () => {
  await withHttpSourcesService(async ({ server, service, runStore }) => {
    server.put("/a.csv", "id\n1\n");
    const res = await service.app.request(postJson("/http-sources/weekly/run", {}, PUBLISH_KEY));
    const body = await res.json();
    assert.equal(body.payload.code, "destination_not_configured");
    assert.equal(res.status, 404);
    assert.deepEqual((await runStore.list({ limit: 10 })).runs, []);
    assert.equal(server.bodiesServed(), 0);
    const listed = await service.app.request(
      new Request("http://test.local/http-sources", { headers: { "x-api-key": PUBLISH_KEY } }),
    );
    assert.equal((await listed.json()).payload.sources[0].postgresql, true);
  }, { loadIntoPostgresql: true });
});
