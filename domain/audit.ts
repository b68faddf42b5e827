/**
 * The audit trail's record format and chain rules (`docs/audit.md`). Three kinds of record:
 *
 * - an **operation** record (`kind: "operation"`) for every authenticated `POST` a service answers: who
 *   called (a key id, never the key), what the request named (project, source host, tables, destination), how
 *   it ended (status and error code, never the error's text) and what it wrote (files with their SHA-512,
 *   tables, OPAL resources). Never row data or secrets.
 * - a **data reads** record (`kind: "data_reads"`): the data API reads (`docs/data-api.md`) one service
 *   answered during one period, batched so that paging costs one write per period.
 * - a **refusal summary** (`kind: "refusals"`): how many requests a service refused for a missing or wrong
 *   key during one period. Refusals are counted, not recorded one by one, so that an unauthenticated flood
 *   costs no disk write per request.
 *
 * Records form a hash chain, one JSON line each:
 *
 * - `sha256` is the SHA-256 (lower-case hex) of the record's canonical JSON without the `sha256` key;
 * - `prev_sha256` is the previous record's `sha256`, or {@link GENESIS_SHA256} for the first record;
 * - `seq` counts records from 1;
 * - the line is exactly the canonical JSON of the whole record (sorted keys, no whitespace, no key the
 *   record's kind does not define, no byte-order mark), ended by `\n`.
 *
 * So an edited byte breaks the record's own `sha256` (or its canonical form), and a deleted, inserted or
 * reordered record breaks the `seq` and `prev_sha256` of the record after it.
 *
 * @module
 */
import { z } from "zod";
import {
  DatabricksSource,
  Destination,
  Identifier,
  ProjectName,
  ProjectStartTime,
  PublishPayload,
} from "./contract.ts";
import { HOST_PATTERN } from "./names.ts";

/** What the first record's `prev_sha256` holds: 64 zeros. */
export const GENESIS_SHA256 = "0".repeat(64);

/** How many hex characters of the key's SHA-256 make a caller key id. */
export const KEY_ID_LENGTH = 16;

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, { error: "must be 64 lower-case hex digits" });

/** A caller key id: the first {@link KEY_ID_LENGTH} hex digits of the SHA-256 of an API key. */
const CallerKeyId = z.string().regex(/^[0-9a-f]{16}$/);

/** A destination as recorded: its type, name and format. */
export const AuditDestination = z.object({
  type: z.string(),
  name: z.string(),
  format: z.string(),
});

/** A file an operation wrote, with its SHA-512. */
export const AuditFile = z.object({
  path: z.string(),
  sha512: z.string(),
  bytes: z.number().int().nonnegative(),
});

/** What only the operation itself knows: what it wrote. Every key is optional. */
export const AuditOutput = z.object({
  /** Staged (package) or published (publish) files, with their SHA-512. */
  files: z.array(AuditFile).optional(),
  /** PostgreSQL destination tables, `schema.table`. */
  destination_tables: z.array(z.string()).optional(),
  /** OPAL resources created or updated by a PostgreSQL publish. */
  opal_resources: z.array(z.string()).optional(),
  /** The deletion certificate of a revocation (`docs/revocation.md`). */
  certificate: z.record(z.string(), z.unknown()).optional(),
});

/**
 * The characters and length of a request id a service accepts from its caller (`x-request-id`); any other
 * value is replaced by one the service generates.
 */
export const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A request id as recorded: {@link SAFE_REQUEST_ID}. */
const RequestId = z.string().regex(SAFE_REQUEST_ID, {
  error: "must be 1 to 128 letters, digits, '.', '_', ':' or '-'",
});

/** A signed-in person as recorded: their id at their issuer (never their token or display name). */
export const AuditPerson = z.strictObject({ id: z.string(), issuer: z.string() });

/**
 * An approval decision as recorded: the release, gate, approval type and decision, the staging digest the
 * person approved (gates before `publish`; else `null`) and the SHA-256 of the comment (never the comment;
 * `null` without one). Whether it was recorded or refused is the record's `outcome` and `error_code`.
 */
export const AuditDecision = z.strictObject({
  release_id: z.string(),
  gate: z.string(),
  approval_type: z.string(),
  decision: z.string(),
  manifest_digest: z.string().nullable(),
  comment_sha256: Sha256Hex.nullable(),
});

/**
 * One operation as a service records it, before it is chained. Every key is always present; `null` means
 * "not named by the request" or "not applicable".
 */
export const AuditEntry = z.strictObject({
  kind: z.literal("operation"),
  /** When the record was made (the operation's end), ISO 8601 UTC. */
  time: z.iso.datetime(),
  /**
   * The request id shared by every service an operation passes through: the caller's `x-request-id` when it
   * is safe ({@link SAFE_REQUEST_ID}), else one the first service generated. Not unique: a caller may repeat
   * it.
   */
  request_id: RequestId,
  /** The id this service generated for this request alone; unique, whatever the caller sent. */
  service_request_id: z.uuid(),
  /** `approval`, `metadata` or `publish`. */
  service: z.string(),
  /**
   * The first {@link KEY_ID_LENGTH} hex digits of the SHA-256 of the API key that authenticated the
   * request; `null` when the request was not authenticated.
   */
  caller_key_id: CallerKeyId.nullable(),
  /** The route called, e.g. `/project/publish`. */
  action: z.string(),
  project_name: z.string().nullable(),
  project_start_time: z.string().nullable(),
  /** `source.host_url` (for Databricks, the URL's host). */
  source_host: z.string().nullable(),
  /** `dataset.schema_name`. */
  schema_name: z.string().nullable(),
  /** The table names `dataset.tables` lists; `null` when it lists none (every table). */
  tables: z.array(z.string()).nullable(),
  destination: AuditDestination.nullable(),
  /** `success` for a 2xx reply, `error` for anything else. */
  outcome: z.enum(["success", "error"]),
  /** The HTTP status of the reply. */
  status: z.number().int().min(100).max(599),
  /** `payload.code` of an error reply. */
  error_code: z.string().nullable(),
  files: z.array(AuditFile).nullable(),
  destination_tables: z.array(z.string()).nullable(),
  opal_resources: z.array(z.string()).nullable(),
  /**
   * The signed-in person who sent the request (a person's token; `caller_key_id` is then `null`). Absent
   * from requests sent with a key, and from records written before people could sign in.
   */
  person: AuditPerson.optional(),
  /** An approval decision asked for (`POST /releases/{id}/decisions`), recorded whether or not refused. */
  decision: AuditDecision.optional(),
  /** The deletion certificate of a revocation (`docs/revocation.md`); absent from other records. */
  certificate: z.record(z.string(), z.unknown()).optional(),
});

/** Why a request was refused before anything else looked at it. */
export const REFUSAL_REASONS = ["missing_key", "wrong_key"] as const;

/** One of {@link REFUSAL_REASONS}. */
export type RefusalReason = typeof REFUSAL_REASONS[number];

const Count = z.number().int().nonnegative();

/**
 * How many requests one service refused (403 `forbidden`) for a missing or wrong key during one period.
 * Written at most once per period (and at shutdown), only when something was refused.
 */
export const RefusalSummaryEntry = z.strictObject({
  kind: z.literal("refusals"),
  /** When the record was made, ISO 8601 UTC. */
  time: z.iso.datetime(),
  /** `approval`, `metadata` or `publish`. */
  service: z.string(),
  /** When the first refusal counted here happened. */
  period_start: z.iso.datetime(),
  /** When the last refusal counted here happened. */
  period_end: z.iso.datetime(),
  /** Requests without an `x-api-key` (or with an empty one). */
  missing_key: Count,
  /** Requests with an `x-api-key` that is not the service's key. */
  wrong_key: Count,
});

/** What a data API read did (`docs/data-api.md`). */
export const DATA_READ_ACTIONS = ["list_releases", "list_tables", "read_rows"] as const;

/**
 * One authenticated data API read: who (the client id), what (release, dataset, table), how it ended
 * (status, error code), how many rows it returned, and the SHA-256 of the cursor it was given and of the
 * one it handed out (never the cursors themselves, which carry key values). Never row data.
 *
 * The gateway records its reads by client (`client_id`) and release id; the publish service records the
 * reads the gateway forwards to it (`/data-publish/read/*`) by the caller's key id (`caller_key_id`) and
 * the project run and destination the request named (`release_id` is then `null`). A read names exactly
 * one of `client_id` and `caller_key_id`; the publish service's keys are absent from the gateway's reads.
 */
export const DataRead = z.strictObject({
  time: z.iso.datetime(),
  request_id: RequestId,
  /** The data API client (`DATA_API_CLIENTS_FILE`) the request authenticated as (the gateway's reads). */
  client_id: z.string().optional(),
  /**
   * The first {@link KEY_ID_LENGTH} hex digits of the SHA-256 of the API key that authenticated the
   * request (the publish service's reads, whose caller is the gateway).
   */
  caller_key_id: CallerKeyId.optional(),
  action: z.enum(DATA_READ_ACTIONS),
  release_id: z.string().nullable(),
  /** The publish service's reads: `project_name` of the request (`null` when not well-formed). */
  project_name: z.string().nullable().optional(),
  /** The publish service's reads: `project_start_time` of the request (`null` when not well-formed). */
  project_start_time: z.string().nullable().optional(),
  /** The publish service's reads: the destination the request named (`null` when not well-formed). */
  destination: z.strictObject({ type: z.string(), name: z.string() }).nullable().optional(),
  dataset: z.string().nullable(),
  table: z.string().nullable(),
  status: z.number().int().min(100).max(599),
  error_code: z.string().nullable(),
  /** Rows in the page (`read_rows` with status 200); else `null`. */
  rows_returned: z.number().int().nonnegative().nullable(),
  cursor_in_sha256: Sha256Hex.nullable(),
  cursor_out_sha256: Sha256Hex.nullable(),
}).refine((read) => (read.client_id === undefined) !== (read.caller_key_id === undefined), {
  error: "a read names exactly one of client_id and caller_key_id",
});

/**
 * The data API reads one service answered during one period, recorded together: reads are batched
 * (`DATA_API_AUDIT_FLUSH_SECONDS`, and at shutdown) so that a client paging through a large table costs
 * one record and one disk sync per period, not one per page.
 */
export const DataReadsEntry = z.strictObject({
  kind: z.literal("data_reads"),
  /** When the record was made, ISO 8601 UTC. */
  time: z.iso.datetime(),
  service: z.string(),
  /** When the first read recorded here was answered. */
  period_start: z.iso.datetime(),
  /** When the last read recorded here was answered. */
  period_end: z.iso.datetime(),
  reads: z.array(DataRead).min(1),
});

const ChainFields = {
  seq: z.number().int().positive(),
  prev_sha256: Sha256Hex,
  sha256: Sha256Hex,
};

/** An operation record as it stands in the trail: an entry plus its place in the chain. */
export const AuditRecord = AuditEntry.extend(ChainFields);

/** A refusal summary as it stands in the trail. */
export const RefusalSummaryRecord = RefusalSummaryEntry.extend(ChainFields);

/** A data reads record as it stands in the trail. */
export const DataReadsRecord = DataReadsEntry.extend(ChainFields);

/** Any record a trail may hold, told apart by `kind`. */
export const AnyAuditRecord = z.discriminatedUnion("kind", [
  AuditRecord,
  RefusalSummaryRecord,
  DataReadsRecord,
]);

export type AuditDestination = z.infer<typeof AuditDestination>;
export type AuditFile = z.infer<typeof AuditFile>;
export type AuditOutput = z.infer<typeof AuditOutput>;
export type AuditDecision = z.infer<typeof AuditDecision>;
export type AuditEntry = z.infer<typeof AuditEntry>;
export type AuditRecord = z.infer<typeof AuditRecord>;
export type RefusalSummaryEntry = z.infer<typeof RefusalSummaryEntry>;
export type RefusalSummaryRecord = z.infer<typeof RefusalSummaryRecord>;
export type DataRead = z.infer<typeof DataRead>;
export type DataReadsEntry = z.infer<typeof DataReadsEntry>;
export type DataReadsRecord = z.infer<typeof DataReadsRecord>;
export type AnyAuditRecord = z.infer<typeof AnyAuditRecord>;

/** Any entry a service appends. */
export type AnyAuditEntry = AuditEntry | RefusalSummaryEntry | DataReadsEntry;

/** The record an entry becomes once chained: the entry plus `seq`, `prev_sha256` and `sha256`. */
export type ChainedRecordOf<E extends AnyAuditEntry> = E & {
  seq: number;
  prev_sha256: string;
  sha256: string;
};

/** The end of a chain: what the next record links to. */
export interface AuditLink {
  readonly seq: number;
  readonly sha256: string;
}

/** A chained record and the line that stores it (without the `\n`). */
export interface ChainedAuditRecord<R = AnyAuditRecord> {
  readonly record: R;
  readonly line: string;
}

/**
 * Serialises a JSON value canonically: object keys sorted by UTF-16 code unit (as RFC 8785 does), no
 * whitespace, strings escaped as `JSON.stringify` escapes them.
 *
 * @throws {TypeError} for a value JSON cannot hold exactly (`undefined`, a function, a non-finite number).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`Cannot serialise ${value} as JSON`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const object = value as Record<string, unknown>;
    const keys = Object.keys(object).filter((key) => object[key] !== undefined).sort();
    return `{${
      keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(object[key])}`).join(",")
    }}`;
  }
  throw new TypeError(`Cannot serialise a value of type ${typeof value} as JSON`);
}

const encoder = new TextEncoder();

/** The SHA-256 of a string's UTF-8 bytes, lower-case hex. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The id an API key is recorded by: the first {@link KEY_ID_LENGTH} hex digits of its SHA-256. */
export async function auditKeyId(apiKey: string): Promise<string> {
  return (await sha256Hex(apiKey)).slice(0, KEY_ID_LENGTH);
}

/** U+FEFF, which some editors put at the start of a file. */
const BYTE_ORDER_MARK = "\uFEFF";

/** The SHA-256 a record must carry: over its canonical JSON without the `sha256` key. */
function recordHash(record: Record<string, unknown>): Promise<string> {
  const { sha256: _own, ...content } = record;
  return sha256Hex(canonicalJson(content));
}

/**
 * Chains an entry after `previous` (or after the genesis when the trail is empty).
 *
 * @returns the record, with `seq`, `prev_sha256` and `sha256`, and its canonical line.
 * @throws {TypeError} when the entry is not a valid {@link AuditEntry}.
 */
export async function chainAuditRecord<E extends AnyAuditEntry>(
  entry: E,
  previous: AuditLink | undefined,
): Promise<ChainedAuditRecord<ChainedRecordOf<E>>> {
  const schema = entry.kind === "refusals"
    ? RefusalSummaryEntry
    : entry.kind === "data_reads"
    ? DataReadsEntry
    : AuditEntry;
  const parsed = schema.safeParse(entry);
  if (!parsed.success) {
    throw new TypeError(`Cannot record an invalid audit entry: ${issueList(parsed.error)}`);
  }
  const checked = parsed.data as E;
  const content = {
    ...checked,
    seq: (previous?.seq ?? 0) + 1,
    prev_sha256: previous?.sha256 ?? GENESIS_SHA256,
  };
  const record = { ...content, sha256: await recordHash(content) } as ChainedRecordOf<E>;
  return { record, line: canonicalJson(record) };
}

/**
 * Reads the record a stored line holds, checking its own integrity but not its place in the chain.
 *
 * @returns the record, or the reason the line is not an intact record.
 */
export async function readAuditLine(
  line: string,
): Promise<{ record: AnyAuditRecord } | { problem: string }> {
  if (line === "") return { problem: "is empty" };
  if (line.startsWith(BYTE_ORDER_MARK)) {
    return {
      problem: "starts with a byte-order mark: it is not a record as the services write it",
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { problem: "is not valid JSON (a truncated or damaged record)" };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { problem: "is not a JSON object" };
  }
  const parsed = AnyAuditRecord.safeParse(value);
  if (!parsed.success) return { problem: `is not an audit record: ${issueList(parsed.error)}` };
  if (await recordHash(parsed.data) !== parsed.data.sha256) {
    return { problem: "was edited: its content does not match its sha256" };
  }
  if (canonicalJson(parsed.data) !== line) {
    return { problem: "was edited: it is not in canonical form (reformatted or re-keyed)" };
  }
  return { record: parsed.data };
}

function issueList(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "record"}: ${i.message}`).join("; ");
}

/** Where and why a trail stops being an intact chain. */
export interface AuditChainBreak {
  /** 1-based line number of the first broken record. */
  readonly line: number;
  readonly reason: string;
}

/** The result of checking a whole trail. */
export type AuditVerification =
  | {
    readonly intact: true;
    /** How many records the trail holds. */
    readonly records: number;
    /** The last record's link, to be kept elsewhere as an anchor; absent for an empty trail. */
    readonly last?: AuditLink;
  }
  | (
    & { readonly intact: false; /** Intact records before the break. */ readonly records: number }
    & AuditChainBreak
  );

/**
 * Checks a trail one line at a time, so that a trail of any size can be streamed through it. Feed every line
 * in order with {@link check}, saying whether it ended with `\n`; the first break is final.
 */
export class AuditChainVerifier {
  #lineNumber = 0;
  #last: AuditLink | undefined;
  #records = 0;
  #broken: AuditChainBreak | undefined;

  /** The first break found so far. */
  get broken(): AuditChainBreak | undefined {
    return this.#broken;
  }

  /** The result for the lines checked so far. */
  result(): AuditVerification {
    if (this.#broken !== undefined) {
      return { intact: false, records: this.#records, ...this.#broken };
    }
    return {
      intact: true,
      records: this.#records,
      ...(this.#last === undefined ? {} : { last: this.#last }),
    };
  }

  /**
   * Checks the next line.
   *
   * @param line the line without its `\n`.
   * @param terminated whether it ended with `\n` (only the file's last line may not).
   * @returns the break this line causes (or an earlier one), or `undefined` while the chain holds.
   */
  async check(line: string, terminated: boolean): Promise<AuditChainBreak | undefined> {
    if (this.#broken !== undefined) return this.#broken;
    const number = ++this.#lineNumber;
    const fail = (reason: string) =>
      this.#broken = { line: number, reason: `line ${number} ${reason}` };
    if (!terminated) {
      return fail("is not ended by a newline: a partly written (truncated) record");
    }
    const read = await readAuditLine(line);
    if ("problem" in read) return fail(read.problem);
    const { record } = read;
    const expectedSeq = (this.#last?.seq ?? 0) + 1;
    if (record.seq !== expectedSeq) {
      return fail(
        `has seq ${record.seq} where ${expectedSeq} was expected: a record was deleted, inserted or moved`,
      );
    }
    if (record.prev_sha256 !== (this.#last?.sha256 ?? GENESIS_SHA256)) {
      return fail(
        this.#last === undefined
          ? "does not start the chain: its prev_sha256 is not the genesis value"
          : "does not chain to the record before it: prev_sha256 differs from that record's sha256 (it was edited or replaced)",
      );
    }
    this.#last = { seq: record.seq, sha256: record.sha256 };
    this.#records++;
    return undefined;
  }
}

/** Checks a whole trail held in memory (the file's text). An empty text is an intact, empty trail. */
export async function verifyAuditChain(text: string): Promise<AuditVerification> {
  const verifier = new AuditChainVerifier();
  if (text === "") return verifier.result();
  const lines = text.split("\n");
  const endsWithNewline = lines.at(-1) === "";
  if (endsWithNewline) lines.pop();
  for (const [index, line] of lines.entries()) {
    const terminated = endsWithNewline || index < lines.length - 1;
    if (await verifier.check(line, terminated) !== undefined) break;
  }
  return verifier.result();
}

/** What a request body names, as recorded. Each field is kept only if it passes the request's own rule. */
export interface AuditRequestFields {
  readonly project_name: string | null;
  readonly project_start_time: string | null;
  readonly source_host: string | null;
  readonly schema_name: string | null;
  readonly tables: string[] | null;
  readonly destination: AuditDestination | null;
}

/** The fields of a request that are recorded when nothing of its body can be read. */
export const NO_REQUEST_FIELDS: AuditRequestFields = {
  project_name: null,
  project_start_time: null,
  source_host: null,
  schema_name: null,
  tables: null,
  destination: null,
};

function field(value: unknown, key: string): unknown {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)[key]
    : undefined;
}

function valid<T>(schema: z.ZodType<T>, value: unknown): T | null {
  const parsed = schema.safeParse(value);
  return parsed.success ? parsed.data : null;
}

/**
 * Picks what a request body names: project, start time, source host, schema, table names and destination.
 * Each value is checked with the same rule the request schema applies and dropped (`null`) when it fails, so
 * a rejected body contributes only well-formed names. Credentials, columns, descriptions and any other
 * field are never read.
 */
export function auditRequestFields(body: unknown): AuditRequestFields {
  const source = field(body, "source");
  const dataset = field(body, "dataset");
  const tables = field(dataset, "tables");
  const tableNames = Array.isArray(tables)
    ? tables.map((t) => valid(Identifier, field(t, "name"))).filter((n): n is string => n !== null)
    : [];
  const destination = valid(Destination, field(body, "destination"));
  return {
    project_name: valid(ProjectName, field(body, "project_name")),
    project_start_time: valid(ProjectStartTime, field(body, "project_start_time")),
    source_host: sourceHost(field(source, "host_url")),
    schema_name: valid(Identifier, field(dataset, "schema_name")),
    tables: tableNames.length === 0 ? null : tableNames,
    destination: destination === null
      ? null
      : { type: destination.type, name: destination.name, format: destination.format },
  };
}

/** A SQL source's `host_url` as it is, or a Databricks URL's host (never its path or user info). */
function sourceHost(hostUrl: unknown): string | null {
  if (typeof hostUrl !== "string") return null;
  if (HOST_PATTERN.test(hostUrl)) return hostUrl;
  if (!DatabricksSource.shape.host_url.safeParse(hostUrl).success) return null;
  const host = new URL(hostUrl).host;
  return host === "" ? null : host;
}

/**
 * What a publish reply's payload says was published (the gateway records it from the publish service's
 * reply): files with their SHA-512, or PostgreSQL tables and OPAL resources.
 *
 * @returns the output, or `undefined` when the payload is not a publish payload.
 */
export function publishedOutput(payload: unknown): AuditOutput | undefined {
  const parsed = PublishPayload.safeParse(payload);
  if (!parsed.success) return undefined;
  const files: AuditFile[] = [];
  const tables: string[] = [];
  const resources: string[] = [];
  for (const item of parsed.data.data_published) {
    if ("file_path" in item) {
      files.push({ path: item.file_path, sha512: item.hash_value, bytes: item.total_bytes });
    } else {
      tables.push(item.postgresql_table_name);
      resources.push(item.opal_resource_name);
    }
  }
  return {
    ...(files.length > 0 ? { files } : {}),
    ...(tables.length > 0 ? { destination_tables: tables, opal_resources: resources } : {}),
  };
}
