import assert from "node:assert/strict";
import {
  decision,
  filesOf,
  payloadOf,
  provenance,
  sha512Hex,
} from "../tests/support/release_fixtures.ts";
import { fileEntityId, filePathOfEntityId } from "./crate_file_ids.ts";
import type { ReleaseProvenance } from "./provenance.ts";
import {
  DUCKDB_MEDIA_TYPE,
  FIVE_SAFES_PROFILE,
  hostWithoutCredentials,
  releaseCrate,
  releaseCrateText,
  RO_CRATE_CONTEXT,
  RO_CRATE_SPEC,
  SHP,
} from "./release_crate.ts";

type Entity = Record<string, unknown>;
const COMPLETED = "http://schema.org/CompletedActionStatus";
const FAILED = "http://schema.org/FailedActionStatus";

function graphOf(p: ReleaseProvenance): Map<string, Entity> {
  const crate = releaseCrate(p);
  const graph = crate["@graph"] as Entity[];
  const ids = graph.map((e) => e["@id"] as string);
  assert.equal(new Set(ids).size, ids.length, "every @id is unique");
  return new Map(graph.map((e) => [e["@id"] as string, e]));
}

const ofType = (graph: Map<string, Entity>, type: string) =>
  [...graph.values()].filter((e) => e["@type"] === type);

const idsOf = (value: unknown) => (value as { "@id": string }[]).map((r) => r["@id"]);

const signOffs = (graph: Map<string, Entity>) =>
  ofType(graph, "AssessAction").filter((a) =>
    (a.additionalType as { "@id": string })["@id"] === SHP.signOff
  );
const disclosureChecks = (graph: Map<string, Entity>) =>
  ofType(graph, "AssessAction").filter((a) =>
    (a.additionalType as { "@id": string })["@id"] === SHP.disclosureCheck
  );

const duckdbPayload = payloadOf("duckdb");

const cases: {
  name: string;
  input: ReleaseProvenance;
  check: (graph: Map<string, Entity>, p: ReleaseProvenance) => void;
}[] = [
  {
    name: "CSV filestore: one File per payload file with size, media type and SHA-512",
    input: provenance(),
    check(graph, p) {
      const files = ofType(graph, "File");
      assert.deepEqual(files.map((f) => f["@id"]), p.files.map((f) => f.path).sort());
      for (const file of p.files) {
        const entity = graph.get(file.path)!;
        assert.equal(entity.contentSize, String(file.bytes));
        assert.equal(entity.encodingFormat, "text/csv");
        assert.equal(entity.sha512, file.sha512);
      }
      assert.deepEqual(idsOf(graph.get("data/outputs/cohort/people.csv")!.isBasedOn), [
        "#source/cohort/people",
      ]);
      assert.deepEqual(idsOf(graph.get("./")!.hasPart), p.files.map((f) => f.path).sort());
      assert.deepEqual(
        idsOf(graph.get("#publish/run-publish-1")!.result),
        idsOf(graph.get("./")!.hasPart),
      );
    },
  },
  {
    name:
      "DuckDB filestore: the database file has the DuckDB media type and is based on every dataset",
    input: provenance({
      destination: { type: "filestore", name: "LSC", format: "duckdb" },
      files: filesOf(duckdbPayload),
    }),
    check(graph) {
      const [file] = ofType(graph, "File");
      assert.equal(file!["@id"], "data/outputs/database.duckdb");
      assert.equal(file!.encodingFormat, DUCKDB_MEDIA_TYPE);
      assert.equal(file!.sha512, sha512Hex(duckdbPayload["data/outputs/database.duckdb"]!));
      assert.deepEqual(idsOf(file!.isBasedOn), ["#source/cohort"]);
    },
  },
  {
    name: "PostgreSQL destination: no File entity; the publish results are the destination tables",
    input: provenance({
      destination: { type: "postgresql", name: "analysis_db", format: null },
      files: [],
      destination_tables: [{ schema: "pr042", table: "people", opal_resource: "Pr042.people" }],
    }),
    check(graph) {
      assert.equal(ofType(graph, "File").length, 0);
      assert.deepEqual(graph.get("./")!.hasPart, []);
      const table = graph.get("#destination/analysis_db/pr042/people")!;
      assert.equal(table.name, "pr042.people");
      assert.equal(table.identifier, "Pr042.people");
      assert.deepEqual(idsOf(graph.get("#publish/run-publish-1")!.result), [table["@id"]]);
      assert.deepEqual(idsOf(graph.get("#destination/analysis_db")!.dataset), [table["@id"]]);
    },
  },
  {
    name: "no approvals: no sign-off action",
    input: provenance({ decisions: [] }),
    check(graph) {
      assert.equal(signOffs(graph).length, 0);
      assert.equal(ofType(graph, "Person").length, 1, "only the publish run's person");
    },
  },
  {
    name: "checks off: no disclosure assessment",
    input: provenance({
      disclosure_thresholds: null,
      datasets: provenance().datasets.map((d) => ({ ...d, disclosure: null })),
    }),
    check(graph) {
      assert.equal(disclosureChecks(graph).length, 0);
      assert.equal(graph.has("#disclosure-thresholds"), false);
    },
  },
  {
    name: "checks on: one disclosure assessment with the thresholds and the flagged categories",
    input: provenance(),
    check(graph) {
      const [check] = disclosureChecks(graph);
      assert.equal(check!.name, "Disclosure pre-checks: 3 small categories flagged");
      assert.equal(check!.actionStatus, COMPLETED);
      assert.deepEqual(check!.agent, { "@id": "#service/cr8tor-publish" });
      const thresholds = graph.get((check!.instrument as { "@id": string })["@id"])!;
      const values = Object.fromEntries(
        idsOf(thresholds.additionalProperty).map((
          id,
        ) => [graph.get(id)!.name, graph.get(id)!.value]),
      );
      assert.deepEqual(values, {
        category_cap: 50,
        category_label_max_chars: 200,
        distinct_exact_cap: 10_000,
        small_cell_threshold: 10,
      });
      const [result] = idsOf(check!.result).map((id) => graph.get(id)!);
      assert.equal(result!.value, 3);
    },
  },
  ...([
    ["approve", "approved", COMPLETED],
    ["reject", "rejected", FAILED],
    ["request_changes", "changes requested", FAILED],
  ] as const).map(([kind, outcome, status]) => ({
    name: `a decision to ${kind}: a sign-off by the person, ${outcome}`,
    input: provenance({ decisions: [decision(kind)] }),
    check(graph: Map<string, Entity>) {
      const [signOff] = signOffs(graph);
      assert.equal(signOff!["@id"], `#decision/d-${kind}`);
      assert.equal(signOff!.name, `data_steward sign-off at gate release: ${outcome}`);
      assert.equal(signOff!.actionStatus, status);
      assert.equal(signOff!.endTime, "2026-12-06T09:30:00.000Z");
      const person = graph.get((signOff!.agent as { "@id": string })["@id"])!;
      assert.equal(person["@type"], "Person");
      assert.equal(person.name, "Ada Steward");
      const type = graph.get((signOff!.instrument as { "@id": string })["@id"])!;
      assert.equal(type.termCode, "data_steward");
      assert.equal(graph.get((signOff!.result as { "@id": string })["@id"])!.termCode, kind);
    },
  })),
];

for (const c of cases) {
  Deno.test(`releaseCrate: ${c.name}`, () => {
    const graph = graphOf(c.input);
    c.check(graph, c.input);
    // Every crate: the descriptor, the root and its links, both run actions.
    const descriptor = graph.get("ro-crate-metadata.json")!;
    assert.deepEqual(descriptor.conformsTo, { "@id": RO_CRATE_SPEC });
    assert.deepEqual(descriptor.about, { "@id": "./" });
    const root = graph.get("./")!;
    assert.deepEqual(root.conformsTo, { "@id": FIVE_SAFES_PROFILE });
    assert.deepEqual(root.license, { "@id": "https://spdx.org/licenses/CC-BY-4.0" });
    assert.equal(root.datePublished, c.input.publish.ended_at);
    assert.ok(typeof root.name === "string" && typeof root.description === "string");
    for (const id of idsOf(root.mentions)) assert.ok(graph.has(id), `${id} is described`);
    const publish = graph.get("#publish/run-publish-1")!;
    assert.equal(publish["@type"], "CreateAction");
    assert.equal(publish.actionStatus, COMPLETED);
    assert.deepEqual(publish.instrument, { "@id": "#service/cr8tor-publish" });
    assert.equal(graph.get("#service/cr8tor-publish")!.softwareVersion, "1.4.0");
    assert.equal(publish.startTime, c.input.publish.started_at);
    assert.equal(graph.get("#package/run-package-1")!.endTime, "2026-12-06T09:05:00.000Z");
  });
}

Deno.test("releaseCrate: the crate uses the RO-Crate 1.1 context and defines sha512 and datatype", () => {
  const crate = releaseCrate(provenance());
  const [context, local] = crate["@context"] as [string, Record<string, string>];
  assert.equal(context, RO_CRATE_CONTEXT);
  assert.deepEqual(Object.keys(local).sort(), ["datatype", "sha512"]);
});

Deno.test("releaseCrate: the source lists engine, host, port, database, tables and typed columns", () => {
  const graph = graphOf(provenance());
  const catalog = graph.get("#source")!;
  const properties = Object.fromEntries(
    idsOf(catalog.additionalProperty).map((id) => [graph.get(id)!.name, graph.get(id)!.value]),
  );
  assert.deepEqual(properties, {
    engine: "postgresql",
    host: "db.internal",
    port: 5432,
    database: "warehouse",
  });
  assert.deepEqual(idsOf(graph.get("#source/cohort")!.hasPart), [
    "#source/cohort/people",
    "#source/cohort/visits",
  ]);
  const columns = idsOf(graph.get("#source/cohort/visits")!.variableMeasured).map((id) =>
    graph.get(id)!
  );
  assert.deepEqual(columns.map((c) => [c.name, c.datatype]), [
    ["id", "integer"],
    ["person_id", "integer"],
    ["day", "date"],
  ]);
});

Deno.test("releaseCrate: the same provenance gives the same bytes, whatever the order of its files", () => {
  const p = provenance();
  const reordered = provenance({ files: [...p.files].reverse() });
  assert.equal(releaseCrateText(p), releaseCrateText(provenance()));
  assert.equal(releaseCrateText(reordered), releaseCrateText(p));
  assert.ok(releaseCrateText(p).endsWith("}\n"));
});

Deno.test("releaseCrate: a source host never carries credentials into the crate", () => {
  const text = releaseCrateText(provenance({
    source: {
      engine: "databricks",
      host: "https://token:s3cr3t@adb-1.azuredatabricks.net/?o=99&access_token=t0k",
      port: 443,
      database: "main",
    },
  }));
  assert.ok(!text.includes("s3cr3t") && !text.includes("t0k") && !text.includes("token:"));
  assert.ok(text.includes("https://adb-1.azuredatabricks.net"));
  assert.equal(hostWithoutCredentials("admin@db.internal"), "db.internal");
  assert.equal(hostWithoutCredentials("db.internal"), "db.internal");
});

Deno.test("releaseCrate: a person who asked for a run and decided is one Person, by name", () => {
  const approver = decision("approve").person;
  const graph = graphOf(provenance({
    publish: {
      ...provenance().publish,
      agent: { kind: "person", id: approver.id, issuer: approver.issuer },
    },
  }));
  const people = ofType(graph, "Person");
  assert.equal(people.length, 1);
  assert.equal(people[0]!.name, "Ada Steward");
  assert.deepEqual(graph.get("#publish/run-publish-1")!.agent, { "@id": people[0]!["@id"] });
});

Deno.test("releaseCrate: file ids percent-encode each path segment and decode back", () => {
  for (const path of ["data/outputs/a b/c%d.csv", "data/outputs/é/#x.csv"]) {
    const id = fileEntityId(path);
    assert.ok(!id.includes(" ") && !id.includes("#"));
    assert.equal(filePathOfEntityId(id), path);
  }
});
