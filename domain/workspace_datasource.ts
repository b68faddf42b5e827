/**
 * The `AnalyticsWorkspaceDataSource` resource (`xlscsde.nhs.uk/v1`) of the LSC SDE airlock, as the
 * operator (`apps/operator/`) reads it: its shape (mirroring the CRD in `k8s/crds/`), the checks an
 * `Import` resource must pass before any data moves (approvals, allow-listed sources with secrets in
 * their roles), the package request it becomes, and the deterministic names of everything made for one
 * generation of it. Pure: no IO.
 *
 * @module
 */
import { z } from "zod";
import { type AllowedSources, SourceNotAllowedError } from "./allowed_sources.ts";
import { PublishServicePackageRequest, type Source } from "./contract.ts";
import {
  IDENTIFIER_PATTERN,
  PROJECT_START_TIME_PATTERN,
  projectNameProblem,
  SECRET_NAME_PATTERN,
} from "./names.ts";

/** The resource's API group, version and names, as the CRD declares them. */
export const DATASOURCE_API = {
  group: "xlscsde.nhs.uk",
  version: "v1",
  plural: "analyticsworkspacedatasources",
  kind: "AnalyticsWorkspaceDataSource",
} as const;

/** The finalizer the operator puts on every resource it acts on, so deletion cleans up first. */
export const DATASOURCE_FINALIZER = "xlscsde.nhs.uk/cr8tor-operator";

/** The approval types an `Import` needs by default (`REQUIRED_APPROVAL_TYPES`). */
export const DEFAULT_REQUIRED_APPROVAL_TYPES = ["INFORMATION_GOVERNANCE", "DATA_ENGINEER"] as const;

/** The filestore destination name the extraction Job writes to (its volume is mounted there). */
export const DATASOURCE_FILESTORE = "WORKSPACE";

const Text = z.string().max(10_000);
const Name = z.string().min(1).max(253);

/** One approval written into the resource (the real models' `AnalyticsApproval`). */
export const Approval = z.object({
  type: z.string().max(128).optional(),
  name: z.string().max(256).optional(),
  email: z.string().max(320).optional(),
  jobTitle: z.string().max(256).optional(),
  approvalGiven: z.string().max(64).optional(),
});

/** How to reach one source, and the secrets that sign in to it (names only, in their roles). */
export const Connection = z.object({
  type: z.string().min(1).max(64),
  name: z.string().min(1).max(128),
  url: z.string().max(2048).optional(),
  /** Databricks: the catalog to read. */
  catalog: z.string().max(128).optional(),
  credentials: z.object({
    userKey: z.string().max(128).optional(),
    passwordKey: z.string().max(128).optional(),
  }).optional(),
});

/** One table to import, from a named connection. */
export const DataObject = z.object({
  table: z.object({
    name: z.string().min(1).max(128),
    /** The schema the table is in (PostgreSQL's `public` is not assumed). */
    schema: z.string().max(128).optional(),
    connection: z.string().min(1).max(128),
  }),
});

/**
 * What an `Uploaded` resource asks for (`docs/operator.md`, "Uploaded resources"): the filestore
 * destination its files are published into (one of the approval policy's), and the person who uploads
 * them (their OpenID Connect subject and issuer, as the dashboard signs them in: the only person who may
 * add files, mark them ready, stage and publish).
 */
export const UploadSpec = z.object({
  destination: z.string().min(1).max(64),
  uploader: z.object({
    id: z.string().min(1).max(256),
    issuer: z.string().min(1).max(2048),
    name: z.string().max(256).optional(),
  }),
});

/** The resource's `spec`. */
export const DataSourceSpec = z.object({
  type: z.enum(["Import", "Uploaded"]),
  publisher: z.object({
    organisation: z.string().max(256).optional(),
    contact: z.object({
      name: z.string().max(256).optional(),
      role: z.string().max(256).optional(),
    })
      .optional(),
  }).optional(),
  project: z.object({ id: z.string().max(128).optional() }).optional(),
  displayName: z.string().max(512).optional(),
  description: Text.optional(),
  license: Text.optional(),
  connections: z.array(Connection).max(64).optional(),
  objects: z.array(DataObject).max(10_000).optional(),
  approvals: z.array(Approval).max(64).optional(),
  /** `Uploaded` only: where the files go and who uploads them. */
  upload: UploadSpec.optional(),
});

/** A status condition, as Kubernetes conventions have them. */
export const Condition = z.object({
  type: z.string(),
  status: z.enum(["True", "False", "Unknown"]),
  reason: z.string(),
  message: z.string(),
  lastTransitionTime: z.string(),
  observedGeneration: z.number().int(),
});

/** A file the extraction published, relative to the volume's root. */
export const PublishedFile = z.object({
  path: z.string(),
  bytes: z.number().int().nullable(),
  sha512: z.string(),
});

/** Where an `Import` is: `Pending` (waiting for approvals), `Running`, and how it ended. */
export const DATA_STATES = ["Pending", "Running", "Completed", "Failed", "NotSupported"] as const;

/** The resource's `status`, written by the operator only. */
export const DataSourceStatus = z.object({
  /** The real models' field: the last reason code or state. */
  statusText: z.string().optional(),
  dataState: z.enum(DATA_STATES).optional(),
  stage: z.string().optional(),
  reason: z.string().optional(),
  message: z.string().optional(),
  observedGeneration: z.number().int().optional(),
  runId: z.string().optional(),
  jobName: z.string().optional(),
  files: z.array(PublishedFile).optional(),
  crate: z.string().optional(),
  /** `Uploaded`: the id of its data source in the upload quarantine area (the dashboard's page). */
  uploadId: z.string().optional(),
  /** `Uploaded`: the release made when its files were marked ready. */
  releaseId: z.string().optional(),
  conditions: z.array(Condition).optional(),
  lastActiveCheck: z.string().optional(),
});

/** A whole resource as the API server returns it. */
export const DataSourceResource = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: z.object({
    name: Name,
    namespace: Name,
    uid: z.string().min(1),
    generation: z.number().int().min(1),
    creationTimestamp: z.string(),
    resourceVersion: z.string().optional(),
    deletionTimestamp: z.string().optional(),
    finalizers: z.array(z.string()).optional(),
  }),
  spec: DataSourceSpec,
  status: DataSourceStatus.optional(),
});

/** The resource as the operator reads it. */
export type DataSourceResource = z.infer<typeof DataSourceResource>;
/** The resource's spec. */
export type DataSourceSpec = z.infer<typeof DataSourceSpec>;
/** The resource's status. */
export type DataSourceStatus = z.infer<typeof DataSourceStatus>;
/** A status condition. */
export type Condition = z.infer<typeof Condition>;
/** A published file in the status. */
export type PublishedFile = z.infer<typeof PublishedFile>;

/** Why an `Import` does not run (its status `reason`). */
export const REASON_CODES = [
  "INVALID_RESOURCE",
  "UPLOADED_NOT_SUPPORTED",
  "AWAITING_APPROVAL",
  "INVALID_APPROVAL",
  "MISSING_APPROVALS",
  "DUPLICATE_APPROVER",
  "INVALID_PROJECT",
  "NO_CONNECTIONS",
  "NO_OBJECTS",
  "UNKNOWN_CONNECTION",
  "UNRECOGNISED_CONNECTION_TYPE",
  "INVALID_CONNECTION",
  "INVALID_OBJECT",
  "MULTIPLE_SOURCES",
  "SOURCE_NOT_ALLOWED",
] as const;

/** A reason code. */
export type ReasonCode = (typeof REASON_CODES)[number];

/** A refused resource: the code and a message for people (names what is wrong, never a secret). */
export interface Refusal {
  readonly reason: ReasonCode;
  readonly message: string;
}

/** What an `Import` needs to be checked. */
export interface ImportPolicy {
  /** Approval types that must each be given (compared without case). */
  readonly requiredApprovalTypes: readonly string[];
  /** The deployment's allow-list (the services' file). */
  readonly allowedSources: AllowedSources;
}

/** A checked `Import`: the package request its run executes. */
export interface ImportPlan {
  readonly request: z.infer<typeof PublishServicePackageRequest>;
}

/**
 * The names of everything made for one generation of a resource: the run, the Job, the Secret, the
 * PersistentVolumeClaim (one per resource, kept across generations). Derived from the uid (unique for
 * ever in a cluster) and the generation, so a repeated event, a restarted operator or a second replica
 * computes the same names and finds what was already made instead of making it twice.
 */
export function dataSourceNames(uid: string, generation: number): {
  readonly run: string;
  readonly job: string;
  readonly secret: string;
  readonly volumeClaim: string;
} {
  const id = uid.toLowerCase().replace(/[^0-9a-f]/g, "").slice(0, 32);
  const run = `awds-${id}-g${generation}`;
  return { run, job: run, secret: `${run}-credentials`, volumeClaim: `awds-${id}-data` };
}

/** The project start time of a resource's runs: its creation time as `YYYYMMDD_HHMMSS` (UTC). */
export function projectStartTimeOf(creationTimestamp: string): string {
  const digits = creationTimestamp.replace(/[^0-9]/g, "");
  const start = `${digits.slice(0, 8)}_${digits.slice(8, 14)}`;
  return PROJECT_START_TIME_PATTERN.test(start) ? start : "19700101_000000";
}

/**
 * The approvals' problem, if any: none given (`AWAITING_APPROVAL`), one without a type or email
 * (`INVALID_APPROVAL`), a required type missing (`MISSING_APPROVALS`), or one person (by email, without
 * case) giving two of the required types (`DUPLICATE_APPROVER`).
 */
export function approvalProblem(
  approvals: DataSourceSpec["approvals"],
  required: readonly string[],
): Refusal | undefined {
  if (approvals === undefined || approvals.length === 0) {
    return { reason: "AWAITING_APPROVAL", message: "No approvals have been given yet" };
  }
  const byType = new Map<string, Set<string>>();
  for (const [i, approval] of approvals.entries()) {
    const type = approval.type?.trim() ?? "";
    const email = approval.email?.trim() ?? "";
    if (type === "") {
      return { reason: "INVALID_APPROVAL", message: `Approval ${i + 1} has no type` };
    }
    if (email === "") {
      return { reason: "INVALID_APPROVAL", message: `Approval ${i + 1} (${type}) has no email` };
    }
    const key = type.toLowerCase();
    byType.set(key, (byType.get(key) ?? new Set()).add(email.toLowerCase()));
  }
  const missing = required.filter((type) => !byType.has(type.toLowerCase()));
  if (missing.length > 0) {
    return { reason: "MISSING_APPROVALS", message: `Awaiting approval from ${missing.join(", ")}` };
  }
  for (const [i, first] of required.entries()) {
    for (const second of required.slice(i + 1)) {
      if (first.toLowerCase() === second.toLowerCase()) continue;
      for (const email of byType.get(first.toLowerCase())!) {
        if (byType.get(second.toLowerCase())!.has(email)) {
          return {
            reason: "DUPLICATE_APPROVER",
            message:
              `${email} is listed as both ${first} and ${second}: one person may not fill two ` +
              "required approvals",
          };
        }
      }
    }
  }
  return undefined;
}

const SQL_SCHEMES: Record<string, "postgresql" | "mysql" | "mssql"> = {
  postgresql: "postgresql",
  postgres: "postgresql",
  mysql: "mysql",
  mariadb: "mysql",
  mssql: "mssql",
  sqlserver: "mssql",
};

const DEFAULT_PORTS = { postgresql: 5432, mysql: 3306, mssql: 1433 } as const;

/** The contract's source for a connection, or the refusal saying what is wrong with it. */
function sourceOf(connection: z.infer<typeof Connection>): Source | Refusal {
  const type = connection.type.toLowerCase();
  const what = `connection "${connection.name}"`;
  const secret = (value: string | undefined, field: string): string | Refusal =>
    value !== undefined && SECRET_NAME_PATTERN.test(value) ? value : {
      reason: "INVALID_CONNECTION",
      message: `${what} needs credentials.${field}, the name of a secret`,
    };
  const user = secret(connection.credentials?.userKey, "userKey");
  if (typeof user !== "string") return user;
  const password = secret(connection.credentials?.passwordKey, "passwordKey");
  if (typeof password !== "string") return password;
  let url: URL;
  try {
    url = new URL(connection.url ?? "");
  } catch {
    return { reason: "INVALID_CONNECTION", message: `${what} has no valid url` };
  }
  if (url.username !== "" || url.password !== "") {
    return {
      reason: "INVALID_CONNECTION",
      message: `${what}: the url must not hold credentials; name secrets in credentials instead`,
    };
  }
  if (type === "databricks") {
    if (url.protocol !== "https:") {
      return { reason: "INVALID_CONNECTION", message: `${what}: a Databricks url must be https` };
    }
    const catalog = connection.catalog ?? "";
    if (!IDENTIFIER_PATTERN.test(catalog)) {
      return {
        reason: "INVALID_CONNECTION",
        message: `${what}: a Databricks connection needs a catalog`,
      };
    }
    return {
      type: "databrickssql",
      host_url: `https://${url.host}`,
      http_path: url.pathname,
      port: url.port === "" ? 443 : Number(url.port),
      catalog,
      credentials: { spn_clientid: user, spn_secret: password, username_key: "", password_key: "" },
    };
  }
  const engine = SQL_SCHEMES[type];
  if (engine === undefined) {
    return {
      reason: "UNRECOGNISED_CONNECTION_TYPE",
      message:
        `${what} has type "${connection.type}": expected databricks, postgresql, mysql or mssql`,
    };
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (
    SQL_SCHEMES[url.protocol.replace(/:$/, "")] !== engine || !IDENTIFIER_PATTERN.test(database)
  ) {
    return {
      reason: "INVALID_CONNECTION",
      message: `${what}: the url must be ${engine}://host:port/database`,
    };
  }
  return {
    type: engine,
    host_url: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port === "" ? DEFAULT_PORTS[engine] : Number(url.port),
    database,
    credentials: { username_key: user, password_key: password },
  };
}

/**
 * Checks an `Import` resource and builds its package request, or says precisely why it cannot run.
 * The checks, in order: the type (`UPLOADED_NOT_SUPPORTED`), the approvals ({@link approvalProblem}),
 * the project id (`INVALID_PROJECT`), connections and objects (`NO_CONNECTIONS`, `NO_OBJECTS`,
 * `UNKNOWN_CONNECTION`, `UNRECOGNISED_CONNECTION_TYPE`, `INVALID_CONNECTION`, `INVALID_OBJECT`), one
 * source and schema per resource (`MULTIPLE_SOURCES`: one run, one Job), and the allow-list with its
 * secret roles (`SOURCE_NOT_ALLOWED`). Reads no secret.
 */
export function planImport(
  resource: DataSourceResource,
  policy: ImportPolicy,
): ImportPlan | Refusal {
  const { spec } = resource;
  if (spec.type === "Uploaded") {
    return {
      reason: "UPLOADED_NOT_SUPPORTED",
      message:
        "Uploaded data sources are off on this operator (it has no UPLOAD_QUARANTINE_PATH); " +
        "only Import resources are acted on",
    };
  }
  const approvals = approvalProblem(spec.approvals, policy.requiredApprovalTypes);
  if (approvals !== undefined) return approvals;
  const project = spec.project?.id ?? "";
  const projectProblem = projectNameProblem(project);
  if (projectProblem !== undefined) {
    return { reason: "INVALID_PROJECT", message: `project.id ${projectProblem}` };
  }
  const connections = spec.connections ?? [];
  if (connections.length === 0) {
    return { reason: "NO_CONNECTIONS", message: "The resource has no connections" };
  }
  const objects = spec.objects ?? [];
  if (objects.length === 0) {
    return { reason: "NO_OBJECTS", message: "The resource lists no tables" };
  }
  const used = new Map<string, { schema: string; tables: string[] }>();
  for (const { table } of objects) {
    if (!connections.some((c) => c.name === table.connection)) {
      return {
        reason: "UNKNOWN_CONNECTION",
        message:
          `Table "${table.name}" names connection "${table.connection}", which is not listed`,
      };
    }
    const schema = table.schema ?? "";
    if (!IDENTIFIER_PATTERN.test(table.name) || !IDENTIFIER_PATTERN.test(schema)) {
      return {
        reason: "INVALID_OBJECT",
        message:
          `Table "${table.name}" needs a schema and a name of letters, digits, '_', '$' or '-'`,
      };
    }
    const key = `${table.connection}\u0000${schema}`;
    const entry = used.get(key) ?? { schema, tables: [] };
    if (!entry.tables.includes(table.name)) entry.tables.push(table.name);
    used.set(key, entry);
  }
  if (used.size > 1) {
    return {
      reason: "MULTIPLE_SOURCES",
      message:
        "All tables of one resource must come from one connection and schema (one run, one " +
        "Job); split the resource",
    };
  }
  const [key, { schema, tables }] = [...used][0]!;
  const connection = connections.find((c) => c.name === key.split("\u0000")[0])!;
  const source = sourceOf(connection);
  if ("reason" in source) return source;
  try {
    policy.allowedSources.authorize(source, schema);
  } catch (e) {
    if (e instanceof SourceNotAllowedError) {
      return { reason: "SOURCE_NOT_ALLOWED", message: e.message };
    }
    throw e;
  }
  const request = PublishServicePackageRequest.parse({
    project_name: project,
    project_start_time: projectStartTimeOf(resource.metadata.creationTimestamp),
    destination: { type: "filestore", name: DATASOURCE_FILESTORE, format: "csv" },
    source,
    dataset: {
      name: spec.displayName ?? resource.metadata.name,
      schema_name: schema,
      description: spec.description ?? null,
      tables: tables.map((name) => ({ name })),
    },
  });
  return { request };
}
