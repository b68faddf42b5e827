/**
 * The RO-Crate of a release (`docs/provenance.md`): RO-Crate 1.1 JSON-LD that says what was released,
 * where it came from, who approved it, which checks ran and what this service did, following the Five
 * Safes RO-Crate profile (0.4) where it applies. A filestore release keeps it as the tag file
 * `ro-crate-metadata.json` at the bag root (so the crate root `./` is the bag root and its File
 * entities are `data/outputs/...`); the tag manifest covers it, so editing it breaks the bag.
 *
 * Built from {@link ReleaseProvenance} alone, deterministically: the same provenance gives the same
 * bytes ({@link releaseCrateText}). It never holds credentials: the provenance has none, and a source
 * host given as a URL loses any user, password, query or fragment.
 *
 * @module
 */
import type {
  ProvenanceAgent,
  ProvenanceDataset,
  ProvenanceRun,
  ProvenanceTable,
  ReleaseProvenance,
} from "./provenance.ts";
import { fileEntityId } from "./crate_file_ids.ts";
import type { Decision, DecisionKind } from "./release.ts";
import { DUCKDB_PAYLOAD_PATH, PAYLOAD_DIR } from "./staging_layout.ts";

/** The RO-Crate 1.1 JSON-LD context, by reference (never fetched by this service). */
export const RO_CRATE_CONTEXT = "https://w3id.org/ro/crate/1.1/context";

/** The RO-Crate version the metadata descriptor declares. */
export const RO_CRATE_SPEC = "https://w3id.org/ro/crate/1.1";

/** The Five Safes RO-Crate profile the root dataset declares (followed where it applies). */
export const FIVE_SAFES_PROFILE = "https://w3id.org/5s-crate/0.4";

/**
 * Terms the RO-Crate 1.1 context lacks, defined in the crate's local context: a file's SHA-512 (the
 * RO-Crate terms project's Workflow Run term) and a column's type as the source names it (CSV on the
 * Web's `datatype`).
 */
export const LOCAL_CONTEXT = {
  sha512: "https://w3id.org/ro/terms/workflow-run#sha512",
  datatype: "http://www.w3.org/ns/csvw#datatype",
} as const;

/**
 * The media type of a DuckDB database file. DuckDB registers none with IANA; this vendor-tree name is
 * the one this service uses (`docs/provenance.md`).
 */
export const DUCKDB_MEDIA_TYPE = "application/vnd.duckdb";

/** Safe Haven Provenance terms the Five Safes profile uses as an assessment's `additionalType`. */
export const SHP = {
  signOff: "https://w3id.org/shp#SignOff",
  disclosureCheck: "https://w3id.org/shp#DisclosureCheck",
} as const;

const COMPLETED = "http://schema.org/CompletedActionStatus";
const FAILED = "http://schema.org/FailedActionStatus";

type Entity = Record<string, unknown>;
type Ref = { "@id": string };

const ref = (id: string): Ref => ({ "@id": id });

/** An `@id` fragment from names: each part percent-encoded, so any name gives a valid IRI. */
function fragment(...parts: readonly string[]): string {
  return `#${parts.map(encodeURIComponent).join("/")}`;
}

/**
 * A host as the crate shows it: a URL loses its user, password, query and fragment (a Databricks
 * workspace URL is named, never a token); a plain host name is kept.
 */
export function hostWithoutCredentials(host: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(host)) return host.replace(/^.*@/, "");
  try {
    const url = new URL(host);
    url.username = "";
    url.password = "";
    url.search = "";
    url.hash = "";
    return url.href.replace(/\/$/, "");
  } catch {
    return host.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1").replace(/[?#].*$/, "");
  }
}

/** The licence's `@id`: an SPDX id as its SPDX URL, a URL as it is. */
function licenseId(id: string): string {
  return /^https?:\/\//.test(id) ? id : `https://spdx.org/licenses/${encodeURIComponent(id)}`;
}

const DECISION_OUTCOME: Readonly<Record<DecisionKind, string>> = {
  approve: "approved",
  reject: "rejected",
  request_changes: "changes requested",
};

/** Collects contextual entities by `@id`, first one wins, in the order they were first added. */
class Graph {
  readonly #entities = new Map<string, Entity>();

  add(entity: Entity & { "@id": string }): Ref {
    if (!this.#entities.has(entity["@id"])) this.#entities.set(entity["@id"], entity);
    return ref(entity["@id"]);
  }

  entities(): Entity[] {
    return [...this.#entities.values()];
  }
}

/**
 * The release's RO-Crate as a JSON-LD object (flattened and compacted, as RO-Crate requires). Entities
 * come in a fixed order: descriptor, root, profile, licence, project, files, destination tables,
 * source, actions, then the service, the people and keys who acted, and the terms the actions name.
 */
export function releaseCrate(p: ReleaseProvenance): Record<string, unknown> {
  const graph = new Graph();
  const service = graph.add({
    "@id": fragment("service", p.service.name),
    "@type": "SoftwareApplication",
    name: p.service.name,
    softwareVersion: p.service.version,
  });
  const agentRef = (agent: ProvenanceAgent, name?: string): Ref => {
    if (agent.kind === "system") return service;
    if (agent.kind === "key") {
      return graph.add({
        "@id": fragment("key", agent.id),
        "@type": "SoftwareApplication",
        name: `Service key ${agent.id}`,
        identifier: agent.id,
      });
    }
    const issuer = agent.issuer ?? "";
    const identity = graph.add({
      "@id": fragment("identity", issuer, agent.id),
      "@type": "PropertyValue",
      name: issuer,
      value: agent.id,
    });
    return graph.add({
      "@id": fragment("person", issuer, agent.id),
      "@type": "Person",
      name: name ?? agent.id,
      identifier: identity,
    });
  };

  // People who decided are named first, so a person who also asked for a run keeps their name.
  for (const d of p.decisions) {
    agentRef({ kind: "person", id: d.person.id, issuer: d.person.issuer }, d.person.name);
  }

  const project = ref(fragment("project", p.project_name));
  const externalIdentifier = `${p.project_name}/${p.project_start_time}`;

  const files = [...p.files].sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  const datasets = [...p.datasets].sort((a, b) =>
    a.schema_name < b.schema_name ? -1 : a.schema_name > b.schema_name ? 1 : 0
  );
  const datasetRef = (d: ProvenanceDataset) => ref(fragment("source", d.schema_name));
  const tableRef = (d: ProvenanceDataset, t: ProvenanceTable) =>
    ref(fragment("source", d.schema_name, t.name));

  const fileEntities: Entity[] = files.map((file) => {
    const duckdb = file.path === DUCKDB_PAYLOAD_PATH;
    const basedOn = duckdb
      ? datasets.map(datasetRef)
      : datasets.flatMap((d) =>
        d.tables.filter((t) => file.path === `${PAYLOAD_DIR}/${d.schema_name}/${t.name}.csv`)
          .map((t) => tableRef(d, t))
      );
    return {
      "@id": fileEntityId(file.path),
      "@type": "File",
      name: file.path.slice(file.path.lastIndexOf("/") + 1),
      contentSize: String(file.bytes),
      encodingFormat: duckdb || file.path.endsWith(".duckdb") ? DUCKDB_MEDIA_TYPE : "text/csv",
      sha512: file.sha512,
      ...(basedOn.length === 0 ? {} : { isBasedOn: basedOn }),
    };
  });

  const destination = ref(fragment("destination", p.destination.name));
  const destinationTables: Entity[] = p.destination_tables.map((t) => ({
    "@id": fragment("destination", p.destination.name, t.schema, t.table),
    "@type": "Dataset",
    name: `${t.schema}.${t.table}`,
    includedInDataCatalog: destination,
    ...(t.opal_resource === null ? {} : { identifier: t.opal_resource }),
  }));

  const sourceEntities = sourceGraph(p, datasets, datasetRef, tableRef);

  const packageActions: Entity[] = p.packages.map((run) =>
    runAction(run, "package", `Package run ${run.run_id}: extract and stage the approved columns`, {
      agent: agentRef(run.agent),
      instrument: service,
      object: datasets.map(datasetRef),
    })
  );
  const results = p.destination.type === "filestore"
    ? files.map((f) => ref(fileEntityId(f.path)))
    : destinationTables.map((t) => ref(t["@id"] as string));
  const publishAction = runAction(
    p.publish,
    "publish",
    `Publish run ${p.publish.run_id}: release to ${p.destination.type} destination ${p.destination.name}`,
    {
      agent: agentRef(p.publish.agent),
      instrument: service,
      object: [
        ...packageActions.map((a) => ref(a["@id"] as string)),
        ...datasets.map(datasetRef),
      ],
      result: results,
    },
  );

  const decisionActions = p.decisions.map((d) => decisionAction(d, graph, agentRef, project));
  const disclosureAction = disclosureAssessment(p, datasets, datasetRef, service, graph);
  const actions = [
    ...packageActions,
    publishAction,
    ...decisionActions,
    ...(disclosureAction === undefined ? [] : [disclosureAction]),
  ];

  const license = licenseId(p.license.id);
  const root: Entity = {
    "@id": "./",
    "@type": "Dataset",
    name: `Release of project ${p.project_name} (${p.project_start_time}) to ${p.destination.name}`,
    description: releaseDescription(p, files.length),
    identifier: p.release_id === null ? [externalIdentifier] : [externalIdentifier, p.release_id],
    datePublished: p.publish.ended_at,
    license: ref(license),
    conformsTo: ref(FIVE_SAFES_PROFILE),
    sourceOrganization: project,
    hasPart: fileEntities.map((f) => ref(f["@id"] as string)),
    isBasedOn: datasets.map(datasetRef),
    mentions: actions.map((a) => ref(a["@id"] as string)),
  };

  return {
    "@context": [RO_CRATE_CONTEXT, { ...LOCAL_CONTEXT }],
    "@graph": [
      {
        "@id": "ro-crate-metadata.json",
        "@type": "CreativeWork",
        about: ref("./"),
        conformsTo: ref(RO_CRATE_SPEC),
      },
      root,
      {
        "@id": FIVE_SAFES_PROFILE,
        "@type": "CreativeWork",
        name: "Five Safes RO-Crate profile",
        version: "0.4",
      },
      {
        "@id": license,
        "@type": "CreativeWork",
        name: p.license.name,
        identifier: p.license.id,
      },
      {
        "@id": project["@id"],
        "@type": "Project",
        name: p.project_name,
        identifier: externalIdentifier,
      },
      ...fileEntities,
      ...(p.destination.type === "postgresql"
        ? [
          {
            "@id": destination["@id"],
            "@type": "DataCatalog",
            name: p.destination.name,
            description: `PostgreSQL destination ${p.destination.name}`,
            dataset: destinationTables.map((t) => ref(t["@id"] as string)),
          },
          ...destinationTables,
        ]
        : []),
      ...sourceEntities,
      ...actions,
      ...graph.entities(),
    ],
  };
}

/**
 * The crate as the bytes a release stores: two-space indented JSON with a final newline. Key order is
 * the construction order, so the same provenance always gives the same text.
 */
export function releaseCrateText(p: ReleaseProvenance): string {
  return crateText(releaseCrate(p));
}

/** The bytes a release stores for a crate built by {@link releaseCrate}: see {@link releaseCrateText}. */
export function crateText(crate: Record<string, unknown>): string {
  return `${JSON.stringify(crate, null, 2)}\n`;
}

function releaseDescription(p: ReleaseProvenance, fileCount: number): string {
  const what = p.destination.type === "filestore"
    ? `${fileCount} ${p.destination.format === "duckdb" ? "DuckDB" : "CSV"} file(s)`
    : `${p.destination_tables.length} PostgreSQL table(s)`;
  const from = p.source === null
    ? ""
    : ` from the ${p.source.engine} database ${p.source.database} at ${
      hostWithoutCredentials(p.source.host)
    }`;
  return `Data released by ${p.service.name} ${p.service.version}: ${what}${from}, ` +
    `${p.decisions.length} recorded decision(s).`;
}

/** The source database, its datasets (schemas), tables and columns with their source types. */
function sourceGraph(
  p: ReleaseProvenance,
  datasets: readonly ProvenanceDataset[],
  datasetRef: (d: ProvenanceDataset) => Ref,
  tableRef: (d: ProvenanceDataset, t: ProvenanceTable) => Ref,
): Entity[] {
  const entities: Entity[] = [];
  const catalog = ref(fragment("source"));
  if (p.source !== null) {
    const host = hostWithoutCredentials(p.source.host);
    const properties: [string, string | number][] = [
      ["engine", p.source.engine],
      ["host", host],
      ["port", p.source.port],
      ["database", p.source.database],
    ];
    entities.push({
      "@id": catalog["@id"],
      "@type": "DataCatalog",
      name: p.source.database,
      description: `${p.source.engine} database ${p.source.database} at ${host}:${p.source.port}`,
      additionalProperty: properties.map(([name]) => ref(fragment("source-property", name))),
      dataset: datasets.map(datasetRef),
    });
    for (const [name, value] of properties) {
      entities.push({
        "@id": fragment("source-property", name),
        "@type": "PropertyValue",
        name,
        value,
      });
    }
  }
  for (const d of datasets) {
    entities.push({
      "@id": datasetRef(d)["@id"],
      "@type": "Dataset",
      name: d.name ?? d.schema_name,
      alternateName: d.schema_name,
      ...(d.description === null ? {} : { description: d.description }),
      ...(p.source === null ? {} : { includedInDataCatalog: catalog }),
      hasPart: d.tables.map((t) => tableRef(d, t)),
    });
    for (const t of d.tables) {
      const table = tableRef(d, t)["@id"];
      entities.push({
        "@id": table,
        "@type": "Dataset",
        name: t.name,
        ...(t.description === null ? {} : { description: t.description }),
        variableMeasured: t.columns.map((c) =>
          ref(fragment("source", d.schema_name, t.name, c.name))
        ),
      });
      for (const c of t.columns) {
        entities.push({
          "@id": fragment("source", d.schema_name, t.name, c.name),
          "@type": "PropertyValue",
          name: c.name,
          ...(c.description === null ? {} : { description: c.description }),
          datatype: c.datatype,
        });
      }
    }
  }
  return entities;
}

/** A run of this service as a `CreateAction`. */
function runAction(
  run: ProvenanceRun,
  kind: "package" | "publish",
  name: string,
  links: { agent: Ref; instrument: Ref; object: Ref[]; result?: Ref[] },
): Entity {
  return {
    "@id": fragment(kind, run.run_id),
    "@type": "CreateAction",
    name,
    agent: links.agent,
    instrument: links.instrument,
    startTime: run.started_at,
    endTime: run.ended_at,
    actionStatus: run.status === "completed" ? COMPLETED : FAILED,
    object: links.object,
    ...(links.result === undefined ? {} : { result: links.result }),
  };
}

/**
 * One decision as a sign-off `AssessAction`: the approval type (and its gate) is the instrument, the
 * person the agent, the outcome in `result`, `name` and `actionStatus` (an approval completes; a
 * rejection or a request for changes fails the sign-off).
 */
function decisionAction(
  d: Decision,
  graph: Graph,
  agentRef: (agent: ProvenanceAgent, name?: string) => Ref,
  project: Ref,
): Entity {
  const outcome = DECISION_OUTCOME[d.decision];
  const instrument = graph.add({
    "@id": fragment("approval-type", d.gate, d.approval_type),
    "@type": "DefinedTerm",
    name: `${d.approval_type} approval at gate ${d.gate}`,
    termCode: d.approval_type,
  });
  const result = graph.add({
    "@id": fragment("decision-outcome", d.decision),
    "@type": "DefinedTerm",
    name: outcome,
    termCode: d.decision,
  });
  const agent = agentRef(
    { kind: "person", id: d.person.id, issuer: d.person.issuer },
    d.person.name,
  );
  return {
    "@id": fragment("decision", d.id),
    "@type": "AssessAction",
    additionalType: ref(SHP.signOff),
    name: `${d.approval_type} sign-off at gate ${d.gate}: ${outcome}`,
    agent,
    instrument,
    endTime: d.at,
    actionStatus: d.decision === "approve" ? COMPLETED : FAILED,
    object: [ref("./"), project],
    result,
    ...(d.manifest_digest === null
      ? {}
      : { description: `Staging digest seen: ${d.manifest_digest}` }),
  };
}

/**
 * The disclosure pre-checks as one `AssessAction` by this service: the thresholds are its instrument,
 * the checked datasets its object, and per dataset the rows checked and the categories flagged small
 * its result. `undefined` when no dataset was checked.
 */
function disclosureAssessment(
  p: ReleaseProvenance,
  datasets: readonly ProvenanceDataset[],
  datasetRef: (d: ProvenanceDataset) => Ref,
  service: Ref,
  graph: Graph,
): Entity | undefined {
  const thresholds = p.disclosure_thresholds;
  const checked = datasets.filter((d) => d.disclosure !== null);
  if (thresholds === null || checked.length === 0) return undefined;
  const instrument = graph.add({
    "@id": fragment("disclosure-thresholds"),
    "@type": "CreativeWork",
    name: "Disclosure pre-check thresholds",
    additionalProperty: Object.keys(thresholds).sort().map((name) =>
      ref(fragment("disclosure-thresholds", name))
    ),
  });
  for (const [name, value] of Object.entries(thresholds).sort(([a], [b]) => a < b ? -1 : 1)) {
    graph.add({
      "@id": fragment("disclosure-thresholds", name),
      "@type": "PropertyValue",
      name,
      value,
    });
  }
  let flagged = 0;
  const results = checked.map((d) => {
    const tables = d.disclosure!.tables;
    const small = tables.reduce(
      (sum, t) => sum + t.columns.reduce((s, c) => s + c.small_categories, 0),
      0,
    );
    const rows = tables.reduce((sum, t) => sum + t.rows, 0);
    flagged += small;
    return graph.add({
      "@id": fragment("disclosure", d.schema_name),
      "@type": "PropertyValue",
      name: `small categories in ${d.schema_name}`,
      value: small,
      description: `${tables.length} table(s), ${rows} row(s) checked; ${small} categor${
        small === 1 ? "y" : "ies"
      } seen fewer than ${thresholds.small_cell_threshold} times`,
    });
  });
  const lastPackage = p.packages.at(-1);
  return {
    "@id": fragment("disclosure-checks"),
    "@type": "AssessAction",
    additionalType: ref(SHP.disclosureCheck),
    name: `Disclosure pre-checks: ${
      flagged === 0
        ? "no small categories"
        : `${flagged} small categor${flagged === 1 ? "y" : "ies"}`
    } flagged`,
    agent: service,
    instrument,
    ...(lastPackage === undefined ? {} : { endTime: lastPackage.ended_at }),
    actionStatus: COMPLETED,
    object: [ref("./"), ...checked.map(datasetRef)],
    result: results,
  };
}
