import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { canonicalJson } from "../domain/audit.ts";
import { verifyReceipt } from "../domain/release_receipt.ts";
import type { ReleaseSigning } from "../domain/release_signing.ts";
import type { StagedContent } from "../domain/staging_manifest.ts";
import {
  testProvenance,
  testReleaseSigner,
  testReleaseSigning,
} from "../tests/support/release_signing.ts";
import { CsvDatasetWriter } from "../adapters/filesystem/csv_dataset_writer.ts";
import { HttpOpalClient } from "../adapters/opal/http_opal_client.ts";
import { MemoryDestinationDatabase } from "../adapters/memory/memory_destination_database.ts";
import { MemorySourceDatabase } from "../adapters/memory/memory_source_database.ts";
import {
  DataContractPublishRequest,
  DataContractTransferRequest,
  PublishServicePublishRequest,
} from "../domain/contract.ts";
import { newRun, type Run } from "../domain/run.ts";
import { MemoryRunStore } from "../adapters/memory/memory_run_store.ts";
import { projectIdentifier } from "../domain/names.ts";
import type { ProgressReport } from "../ports/destination.ts";
import { NothingStagedError } from "../ports/filestore.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../tests/support/catalogs.ts";
import {
  DestinationSandbox,
  sandboxPostgresqlDestination,
} from "../tests/support/destination_databases.ts";
import { FakeOpal } from "../tests/support/fake_opal.ts";
import {
  aBothTablesTransfer,
  aPublishRequest,
  aTransferRequest,
} from "../tests/support/requests.ts";
import { ignorePostgres } from "../tests/support/services.ts";
import { destinationChooser } from "./destinations.ts";
import { packageDataset } from "./package_dataset.ts";
import { ProjectLocks } from "./project_locks.ts";
import { publishDataset } from "./publish_dataset.ts";
import { releaseSigning } from "./release_provenance.ts";

/** A transfer request for both ONCOLOGY tables, to the PostgreSQL destination. */
function bothTables() {
  return aBothTablesTransfer({ destination: { name: "pg", type: "postgresql", format: "sql" } });
}

const PUBLISH = DataContractPublishRequest.parse(
  aPublishRequest({ destination: { name: "pg", type: "postgresql", format: "sql" } }),
);

async function withDestination(
  work: (parts: { sandbox: DestinationSandbox; opal: FakeOpal }) => Promise<void>,
): Promise<void> {
  const sandbox = new DestinationSandbox();
  await using opal = await FakeOpal.start();
  try {
    await sandbox.create();
    await work({ sandbox, opal });
  } finally {
    await sandbox.cleanup();
  }
}

/** The OPAL client for the fake. */
function opalClient(opal: FakeOpal): HttpOpalClient {
  return new HttpOpalClient({
    baseUrl: opal.url,
    username: opal.admin.username,
    password: opal.admin.password,
    timeoutMs: 5_000,
  });
}

/** The PostgreSQL + OPAL destination over an in-memory destination database (one connection per call). */
function memoryPostgresqlOf(database: MemoryDestinationDatabase, opal: FakeOpal) {
  return destinationChooser({
    filestores: new Map(),
    writers: { csv: new CsvDatasetWriter(), duckdb: new CsvDatasetWriter() },
    postgresql: {
      connect: () => Promise.resolve(database.reopen()),
      opal: () => Promise.resolve(opalClient(opal)),
      resourceAccess: () =>
        Promise.resolve({
          database: { host: "127.0.0.1", port: 5432, database: "dest" },
          readOnly: { username: "opal_ro", password: "opal-ro-password" },
        }),
    },
  })(PUBLISH.destination);
}

function postgresqlOf(sandbox: DestinationSandbox, opal: FakeOpal) {
  return destinationChooser({
    filestores: new Map(),
    writers: { csv: new CsvDatasetWriter(), duckdb: new CsvDatasetWriter() },
    postgresql: sandboxPostgresqlDestination(sandbox, opal),
  })(PUBLISH.destination);
}

const openSource = () => Promise.resolve(new MemorySourceDatabase([ONCOLOGY], ONCOLOGY_ROWS));

Deno.test({
  name: "PostgreSQL + OPAL destination: package then publish through the use cases",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async ({ sandbox, opal }) => {
      const destination = postgresqlOf(sandbox, opal);
      const locks = new ProjectLocks();
      await destination.checkReady();
      const progress: ProgressReport[] = [];
      const staged = await packageDataset(bothTables(), { destination, openSource, locks }, {
        concurrency: 1,
        batchRows: 2,
        onProgress: (p) => progress.push(p),
      });
      const names = staged.dataRetrieved.map((d) => "table_name" in d ? d.table_name : "");
      assert.equal(names.length, 2);
      assert.deepEqual(staged.audit, { destination_tables: names });
      assert.deepEqual(staged.logFields, { destination: "postgresql", tables: names });
      const last = new Map(progress.map((p) => [p.table, p.rows]));
      assert.deepEqual(Object.fromEntries(last), { tumour_stage: 3, treatment_line: 3 });

      const published = await publishDataset(PUBLISH, { destination, locks });
      const project = projectIdentifier(PUBLISH.project_name);
      assert.deepEqual(
        published.dataPublished.map((p) => "opal_project_name" in p ? p.opal_project_name : ""),
        [project, project],
      );
      assert.deepEqual(
        published.audit.destination_tables?.toSorted(),
        names.toSorted(),
      );
      assert.ok(opal.state.projects[project] !== undefined);
    }),
});

Deno.test({
  name:
    "PostgreSQL + OPAL destination: publish with a release gives the provenance each loaded table's columns with their source types",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async ({ sandbox, opal }) => {
      const destination = postgresqlOf(sandbox, opal);
      const locks = new ProjectLocks();
      await packageDataset(bothTables(), { destination, openSource, locks }, {
        concurrency: 1,
        batchRows: 2,
      });
      const run = { project: PUBLISH.project_name, startTime: PUBLISH.project_start_time };
      const seen: StagedContent[] = [];
      const release = testReleaseSigning(run, await testReleaseSigner(), seen);
      const published = await publishDataset(PUBLISH, {
        destination,
        locks,
        release: () => Promise.resolve(release),
      });
      assert.ok(published.release !== undefined);
      assert.deepEqual(
        seen.map((s) =>
          s.datasets.map((d) => ({
            schema_name: d.schema_name,
            columns: d.tables.flatMap((t) =>
              t.columns.map((c) => `${t.name}.${c.name} ${c.datatype}`)
            ),
          }))
        ),
        [[{
          schema_name: "oncology",
          columns: [
            "treatment_line.line_no integer",
            "tumour_stage.stage_id bigint",
            "tumour_stage.stage_label character varying(20)",
          ],
        }]],
      );
    }),
});

Deno.test({
  name:
    "PostgreSQL + OPAL destination: aborting during the load rejects with the reason and loads nothing to publish",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async ({ sandbox, opal }) => {
      const destination = postgresqlOf(sandbox, opal);
      const locks = new ProjectLocks();
      const controller = new AbortController();
      const reason = new Error("stopped");
      await assert.rejects(
        packageDataset(bothTables(), { destination, openSource, locks }, {
          concurrency: 1,
          batchRows: 2,
          signal: controller.signal,
          onProgress: () => controller.abort(reason),
        }),
        (e: unknown) => e === reason,
      );
      await assert.rejects(publishDataset(PUBLISH, { destination, locks }), NothingStagedError);
    }),
});

Deno.test(
  "PostgreSQL + OPAL destination (in-memory database): package reports each table done once, publish grants exactly the packaged tables",
  async () => {
    await using opal = await FakeOpal.start();
    const database = new MemoryDestinationDatabase();
    const destination = memoryPostgresqlOf(database, opal);
    const locks = new ProjectLocks();
    await destination.checkReady();
    const progress: ProgressReport[] = [];
    const staged = await packageDataset(bothTables(), { destination, openSource, locks }, {
      concurrency: 2,
      batchRows: 2,
      onProgress: (p) => progress.push(p),
    });
    const dones = progress.filter((p) => p.done !== undefined);
    assert.deepEqual(
      dones.map((p) => [p.table, p.rows, p.done]).sort(),
      [
        ["treatment_line", 3, { sha512: null, reused: false }],
        ["tumour_stage", 3, { sha512: null, reused: false }],
      ],
    );
    const names = staged.dataRetrieved.map((d) => "table_name" in d ? d.table_name : "");
    assert.deepEqual(database.readableTables(), [], "nothing readable before publish");

    const published = await publishDataset(PUBLISH, { destination, locks });
    assert.deepEqual(
      database.readableTables().map((t) => `${t.schema}.${t.table}`),
      names.toSorted(),
    );
    assert.deepEqual(published.audit.destination_tables?.toSorted(), names.toSorted());
    assert.ok(opal.state.projects[projectIdentifier(PUBLISH.project_name)] !== undefined);
  },
);

Deno.test(
  "PostgreSQL + OPAL destination (in-memory database): an abort during package rejects with its reason, loads nothing, leaves nothing to publish",
  async () => {
    await using opal = await FakeOpal.start();
    const database = new MemoryDestinationDatabase();
    const destination = memoryPostgresqlOf(database, opal);
    const locks = new ProjectLocks();
    const controller = new AbortController();
    const reason = new Error("cancelled by the run");
    await assert.rejects(
      packageDataset(bothTables(), { destination, openSource, locks }, {
        concurrency: 1,
        batchRows: 2,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.done !== undefined) controller.abort(reason);
        },
      }),
      (e: unknown) => e === reason,
    );
    assert.deepEqual(database.schemas(), []);
    await assert.rejects(publishDataset(PUBLISH, { destination, locks }), NothingStagedError);
    assert.deepEqual(opal.state.projects, {});
  },
);

Deno.test(
  "PostgreSQL + OPAL destination (in-memory database): publish with a release returns the crate and a receipt over sha512(canonicalJson(crate))",
  async () => {
    await using opal = await FakeOpal.start();
    const database = new MemoryDestinationDatabase();
    const destination = memoryPostgresqlOf(database, opal);
    const locks = new ProjectLocks();
    await packageDataset(bothTables(), { destination, openSource, locks }, {
      concurrency: 1,
      batchRows: 2,
    });
    const signer = await testReleaseSigner();
    const run = { project: PUBLISH.project_name, startTime: PUBLISH.project_start_time };
    const seen: StagedContent[] = [];
    const release: ReleaseSigning = {
      provenance: (staged) => {
        seen.push(staged);
        return {
          ...testProvenance(run, staged),
          destination: { type: "postgresql", name: "postgresql", format: null },
        };
      },
      sign: (claims) => signer.sign(claims),
    };
    const published = await publishDataset(PUBLISH, {
      destination,
      locks,
      release: () => Promise.resolve(release),
    });
    assert.deepEqual(seen, [{
      files: [],
      datasets: [{
        schema_name: "oncology",
        tables: [
          {
            name: "treatment_line",
            description: null,
            columns: [{ name: "line_no", datatype: "integer", description: null }],
          },
          {
            name: "tumour_stage",
            description: "TNM stage lookup",
            columns: [
              { name: "stage_id", datatype: "bigint", description: "surrogate key" },
              { name: "stage_label", datatype: "character varying(20)", description: null },
            ],
          },
        ],
        disclosure: null,
      }],
    }]);
    const signed = published.release;
    assert.ok(signed !== undefined);
    const claims = await verifyReceipt(signed.receipt.jws, await signer.keySet());
    assert.deepEqual(claims, signed.receipt.claims);
    assert.deepEqual(claims.destination, { type: "postgresql", name: "postgresql" });
    assert.deepEqual(claims.subject, {
      kind: "ro-crate-sha512",
      sha512: createHash("sha512").update(canonicalJson(signed.crate)).digest("hex"),
    });
    assert.equal(claims.release_id, "rel-test");
    assert.deepEqual(
      database.readableTables().map((t) => `${t.schema}.${t.table}`).length,
      2,
      "published as without a release",
    );
  },
);

/** The crate's entities of `type` by `@id`. */
function entitiesOf(crate: unknown, type: string): Map<string, Record<string, unknown>> {
  const graph = (crate as { "@graph": Record<string, unknown>[] })["@graph"];
  return new Map(graph.filter((e) => e["@type"] === type).map((e) => [e["@id"] as string, e]));
}

Deno.test(
  "PostgreSQL + OPAL destination (in-memory database): the release's crate lists every loaded table with its columns' source types, also tables asked as all",
  async () => {
    await using opal = await FakeOpal.start();
    await using runs = new MemoryRunStore();
    const database = new MemoryDestinationDatabase();
    const destination = memoryPostgresqlOf(database, opal);
    const locks = new ProjectLocks();
    const at = "2025-06-11T09:31:00.000Z";
    // Two loads of one run: one names its columns without types, the other asks for every table.
    const named = bothTables();
    const all = aTransferRequest({
      destination: { name: "pg", type: "postgresql", format: "sql" },
      dataset: { ...aTransferRequest().dataset as Record<string, unknown>, tables: null },
    });
    const everything = DataContractTransferRequest.parse({
      ...all,
      dataset: { ...all.dataset as Record<string, unknown>, schema_name: "oncology_all" },
    });
    const renamed = (schema: string) =>
      Promise.resolve(
        new MemorySourceDatabase(
          [{ ...ONCOLOGY, name: schema }],
          new Map([...ONCOLOGY_ROWS].map(([k, v]) => [k.replace("oncology.", `${schema}.`), v])),
        ),
      );
    for (const request of [named, everything]) {
      await packageDataset(request, {
        destination,
        openSource: () => renamed(request.dataset.schema_name),
        locks,
      }, { concurrency: 1, batchRows: 2 });
      const run = newRun({
        action: "package",
        project_name: request.project_name,
        project_start_time: request.project_start_time,
        dataset: {
          source_host: "db.internal",
          schema_name: request.dataset.schema_name,
          tables: null,
        },
        destination: request.destination,
        caller_key_id: "gateway-key",
        request: request as unknown as Run["request"],
      }, at);
      await runs.create(run, { exclusive: false });
      await runs.update(run.id, run.version, {
        state: "succeeded",
        started_at: at,
        finished_at: at,
      });
    }
    const request = PublishServicePublishRequest.parse({
      ...PUBLISH,
      release: {
        id: "rel-pg",
        requested_by: { kind: "key", id: "gateway-key" },
        decisions: [],
        expires_at: null,
      },
    });
    const publish = newRun({
      action: "publish",
      project_name: request.project_name,
      project_start_time: request.project_start_time,
      dataset: { source_host: "db.internal", schema_name: "oncology", tables: null },
      destination: request.destination,
      caller_key_id: "gateway-key",
      request: request as unknown as Run["request"],
    }, at);
    const signer = await testReleaseSigner();
    const published = await publishDataset(request, {
      destination,
      locks,
      release: () =>
        releaseSigning(request, publish, {
          runs,
          signer,
          service: { name: "cr8tor-publisher-ts", version: "test" },
          license: { id: "CC-BY-4.0", name: "CC-BY-4.0" },
        }),
    });
    const crate = published.release?.crate;
    assert.ok(crate !== undefined);

    const columns = entitiesOf(crate, "PropertyValue");
    const typeOf = (schema: string, table: string, column: string) =>
      columns.get(`#source/${schema}/${table}/${column}`)?.datatype;
    for (const schema of ["oncology", "oncology_all"]) {
      assert.equal(typeOf(schema, "tumour_stage", "stage_id"), "bigint");
      assert.equal(typeOf(schema, "tumour_stage", "stage_label"), "character varying(20)");
      assert.equal(typeOf(schema, "treatment_line", "line_no"), "integer");
    }
    // Asked as all: every table and column of the source, not only the ones a request named.
    assert.equal(typeOf("oncology_all", "tumour_stage", "secret_note"), "text");
    assert.equal(typeOf("oncology", "tumour_stage", "secret_note"), undefined);
    assert.ok(
      [...columns.values()].every((c) => typeof c.datatype !== "string" || c.datatype !== ""),
      "no column without its source type",
    );
    const tables = [...entitiesOf(crate, "Dataset").values()].map((d) => d.name).sort();
    for (const name of ["tumour_stage", "treatment_line"]) {
      assert.equal(tables.filter((t) => t === name).length, 2, `${name} in both datasets`);
    }
  },
);
