/**
 * The CR8TOR wire contract as zod schemas: the request bodies the CLI sends and the payloads the services
 * return (`cr8tor-contract.md` §2-§3). Field names, discriminators and defaults follow the Python reference;
 * names that reach SQL, file paths or the secrets directory are checked more strictly (see `names.ts`).
 *
 * Unknown keys are ignored (zod strips them), as in the reference.
 *
 * @module
 */
import { z } from "zod";
import {
  DESTINATION_NAME_PATTERN,
  HOST_PATTERN,
  HTTP_PATH_PATTERN,
  IDENTIFIER_PATTERN,
  PROJECT_START_TIME_PATTERN,
  projectNameProblem,
  SECRET_NAME_PATTERN,
  unicodeNameProblem,
} from "./names.ts";
import { decisionSchema, requesterSchema } from "./release.ts";

const isoTime = z.iso.datetime({ precision: 3 });

const IDENTIFIER_RULE =
  "must be 1-128 letters, digits, '_', '$' or '-', not starting with '$' or '-'";

/** A schema, table, column, database or catalog name. */
export const Identifier = z.string().regex(IDENTIFIER_PATTERN, { error: IDENTIFIER_RULE });

/** The name of a secret: one file in the secrets directory, or one Key Vault secret. */
export const SecretName = z.string().regex(SECRET_NAME_PATTERN, {
  error:
    "must be 1-127 letters, digits, '_', '-' or '.', starting with a letter, digit or '_', without '..'",
});

/**
 * `project_name`: the project's folder name as it is, and (through `projectIdentifier`) the PostgreSQL
 * destination's schema prefix and the OPAL project name.
 */
export const ProjectName = z.string().check((ctx) => {
  const problem = projectNameProblem(ctx.value);
  if (problem !== undefined) {
    ctx.issues.push({ code: "custom", message: problem, input: ctx.value });
  }
});

/** A free-form name (the dataset's `name`): any text that obeys the Unicode rules of every name. */
const FreeName = z.string().max(256).check((ctx) => {
  const problem = unicodeNameProblem(ctx.value);
  if (problem !== undefined) {
    ctx.issues.push({ code: "custom", message: problem, input: ctx.value });
  }
});

/** `project_start_time`: `YYYYMMDD_HHMMSS`. */
export const ProjectStartTime = z.string().regex(PROJECT_START_TIME_PATTERN, {
  error: "must match YYYYMMDD_HHMMSS",
});

const Description = z.string().max(10_000).nullish();

// ---------------------------------------------------------------------------------------------------------
// Destination (§3.3)

/** A filestore destination: CSV files or one DuckDB file on a mounted storage account. */
export const FilestoreDestination = z.object({
  type: z.literal("filestore"),
  name: z.string().regex(DESTINATION_NAME_PATTERN, {
    error: "must be 1-64 letters, digits or '_'",
  }),
  format: z.enum(["csv", "duckdb"]),
});

/** A PostgreSQL destination (read through OPAL/DataSHIELD). `name` is unused; `format` is always `sql`. */
export const PostgresqlDestination = z.object({
  type: z.literal("postgresql"),
  name: z.string().regex(/^[A-Za-z0-9_]{0,64}$/, { error: "must be 0-64 letters, digits or '_'" })
    .default(""),
  format: z.literal("sql").default("sql"),
});

/** Where the data goes, chosen by `type`. */
export const Destination = z.discriminatedUnion("type", [
  FilestoreDestination,
  PostgresqlDestination,
]);

// ---------------------------------------------------------------------------------------------------------
// Source (§3.4)

const Provider = z.string().max(128).nullish();

/** Secret names for a SQL source's user name and password. */
export const SqlCredentials = z.object({
  provider: Provider,
  username_key: SecretName,
  password_key: SecretName,
});

/** Secret names for a Databricks service principal's client id and secret. */
export const DatabricksCredentials = z.object({
  provider: Provider,
  spn_clientid: SecretName,
  spn_secret: SecretName,
  username_key: z.union([SecretName, z.literal("")]).default(""),
  password_key: z.union([SecretName, z.literal("")]).default(""),
});

/** A TCP port; a string of decimal digits is accepted too (`"1433"`), as the reference coerced it. */
const Port = z.preprocess(
  (value) => typeof value === "string" && /^[0-9]{1,5}$/.test(value) ? Number(value) : value,
  z.number().int().min(1).max(65535),
);

/** A Databricks SQL warehouse in a Unity Catalog workspace. */
export const DatabricksSource = z.object({
  type: z.literal("databrickssql"),
  host_url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
  http_path: z.string().regex(HTTP_PATH_PATTERN, {
    error: "must be a path such as /sql/1.0/warehouses/abc",
  }),
  port: Port.default(443),
  catalog: Identifier,
  credentials: DatabricksCredentials,
});

/** A relational database reached with a user name and password. `sqlserver` means `mssql`. */
export const SqlSource = z.object({
  type: z.enum(["mysql", "postgresql", "sqlserver", "mssql"]),
  host_url: z.string().regex(HOST_PATTERN, {
    error: "must be a host name or IP address, without scheme or port",
  }),
  port: Port,
  database: Identifier,
  credentials: SqlCredentials,
});

/** Where the data comes from, chosen by `type`. */
export const Source = z.discriminatedUnion("type", [DatabricksSource, SqlSource]);

/** `extract_config`; `backend_engine` is accepted for compatibility and does not change our behaviour. */
export const ExtractConfig = z.object({
  backend_engine: z.string().max(64).default("pyarrow"),
});

// ---------------------------------------------------------------------------------------------------------
// Dataset (§3.6)

/** One requested (or described) column. */
export const ColumnMetadata = z.object({
  name: Identifier,
  datatype: z.string().max(512).nullish(),
  description: Description,
});

/** One requested (or described) table; `columns` null or empty means every column. */
export const TableMetadata = z.object({
  name: Identifier,
  columns: z.array(ColumnMetadata).max(10_000).nullish(),
  description: Description,
}).check((ctx) => {
  duplicates((ctx.value.columns ?? []).map((c) => c.name)).forEach((name) =>
    ctx.issues.push({
      code: "custom",
      message: `column "${name}" is listed more than once`,
      input: ctx.value,
      path: ["columns"],
      // Non-fatal, so that the dataset's own duplicate-table check still runs and reports too.
      continue: true,
    })
  );
});

/** The dataset of one request: a schema and, optionally, the tables and columns wanted from it. */
export const DatasetMetadata = z.object({
  name: FreeName.nullish(),
  schema_name: Identifier,
  description: Description,
  tables: z.array(TableMetadata).max(10_000).nullish(),
  staging_path: z.record(z.string(), z.unknown()).nullish(),
  publish_path: z.record(z.string(), z.unknown()).nullish(),
}).check((ctx) => {
  duplicates((ctx.value.tables ?? []).map((t) => t.name)).forEach((name) =>
    ctx.issues.push({
      code: "custom",
      message: `table "${name}" is listed more than once`,
      input: ctx.value,
      path: ["tables"],
      continue: true,
    })
  );
});

function duplicates(names: readonly string[]): string[] {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const name of names) (seen.has(name) ? repeated : seen).add(name);
  return [...repeated];
}

// ---------------------------------------------------------------------------------------------------------
// Requests (§3.1)

/** Body of `POST /data-publish/publish` and `POST /project/publish`. */
export const DataContractPublishRequest = z.object({
  project_name: ProjectName,
  project_start_time: ProjectStartTime,
  destination: Destination,
});

/**
 * Body of the publish service's own `POST /data-publish/publish`: the CLI's request, plus the staging
 * digest the approvers saw, which only the gateway sends (`docs/disclosure.md`). Without it, publish is
 * exactly the CLI's.
 */
export const PublishServicePublishRequest = DataContractPublishRequest.extend({
  expected_staging_digest: z.string().regex(/^[0-9a-f]{64}$/, {
    error: "must be 64 lower-case hex digits (a SHA-256)",
  }).optional(),
  /**
   * The release the gateway publishes (`docs/provenance.md`): its id, who asked and every decision, for
   * the release's RO-Crate and receipt. Absent when the publish service is called without the gateway.
   */
  release: z.object({
    id: z.string().min(1),
    requested_by: requesterSchema,
    decisions: z.array(decisionSchema),
    expires_at: isoTime.nullable(),
  }).optional(),
});

/** Body of `POST /data-publish/validate`. */
export const DataContractSourceAccessRequest = DataContractPublishRequest.extend({
  extract_config: ExtractConfig.nullish().default({ backend_engine: "pyarrow" }),
  source: Source,
});

/** Body of `POST /metadata/project`, `POST /data-publish/package` and the gateway's validate and package. */
export const DataContractTransferRequest = DataContractSourceAccessRequest.extend({
  dataset: DatasetMetadata,
});

/**
 * Body of the publish service's own `POST /data-publish/package`: the CLI's request, plus whether the
 * package needs its disclosure pre-checks, which only the gateway sends (when a gate before `publish`
 * covers the destination, `docs/disclosure.md`). Without it, package is exactly the CLI's.
 */
export const PublishServicePackageRequest = DataContractTransferRequest.extend({
  disclosure_checks: z.boolean().optional(),
});

// ---------------------------------------------------------------------------------------------------------
// Payloads (§2)

/** A column as the metadata service describes it. */
export const ColumnDescription = z.object({
  name: z.string(),
  datatype: z.string(),
  description: z.string().nullable(),
  nullable: z.boolean(),
});

/** A table as the metadata service describes it. */
export const TableDescription = z.object({
  name: z.string(),
  columns: z.array(ColumnDescription),
  description: z.string().nullable(),
  primary_key: z.array(z.string()),
});

/** Payload of `POST /metadata/project` (and of the gateway's validate). */
export const DatasetMetadataPayload = z.object({
  name: z.string(),
  schema_name: z.string(),
  description: z.string().nullable(),
  tables: z.array(TableDescription),
  staging_path: z.record(z.string(), z.unknown()).nullable(),
  publish_path: z.record(z.string(), z.unknown()).nullable(),
});

/** Payload of `POST /data-publish/validate`. */
export const ValidationPayload = z.object({ validation_status: z.literal("success") });

/** Payload of `POST /data-publish/package`. */
export const StageTransferPayload = z.object({
  data_retrieved: z.array(z.union([
    z.object({ file_path: z.string() }),
    z.object({ table_name: z.string() }),
  ])),
});

/** Payload of `POST /data-publish/publish`. */
export const PublishPayload = z.object({
  data_published: z.array(z.union([
    z.object({ file_path: z.string(), hash_value: z.string(), total_bytes: z.number().int() }),
    z.object({
      postgresql_table_name: z.string(),
      opal_resource_name: z.string(),
      opal_project_name: z.string(),
      opal_group_name: z.string(),
    }),
  ])),
  /** The signed release receipt (`docs/provenance.md`); absent only from a service without a signer. */
  receipt: z.object({
    jws: z.string(),
    claims: z.record(z.string(), z.unknown()),
  }).optional(),
  /** The release's RO-Crate (JSON-LD); the gateway keeps it with the release. */
  crate: z.record(z.string(), z.unknown()).optional(),
});

export type Destination = z.infer<typeof Destination>;
export type StageTransferPayload = z.infer<typeof StageTransferPayload>;
export type PublishPayload = z.infer<typeof PublishPayload>;
export type FilestoreDestination = z.infer<typeof FilestoreDestination>;
export type Source = z.infer<typeof Source>;
export type SqlSource = z.infer<typeof SqlSource>;
export type DatabricksSource = z.infer<typeof DatabricksSource>;
export type DatasetMetadata = z.infer<typeof DatasetMetadata>;
export type DataContractPublishRequest = z.infer<typeof DataContractPublishRequest>;
export type PublishServicePublishRequest = z.infer<typeof PublishServicePublishRequest>;
export type DataContractSourceAccessRequest = z.infer<typeof DataContractSourceAccessRequest>;
export type DataContractTransferRequest = z.infer<typeof DataContractTransferRequest>;
export type PublishServicePackageRequest = z.infer<typeof PublishServicePackageRequest>;
export type DatasetMetadataPayload = z.infer<typeof DatasetMetadataPayload>;
export type TableDescription = z.infer<typeof TableDescription>;
export type ColumnDescription = z.infer<typeof ColumnDescription>;
