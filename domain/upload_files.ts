/**
 * The rules every uploaded file obeys (`docs/uploads.md`): its name, its type (by extension and by its
 * first bytes) and the limits of one data source's quarantine area. Pure: the tus endpoint
 * (`apps/approval/ui/uploads.tsx`) and the quarantine adapter call these before keeping a byte.
 *
 * @module
 */
import { z } from "zod";
import { FilestoreDestination, ProjectName, ProjectStartTime } from "./contract.ts";
import { AppError } from "./errors.ts";
import { projectNameProblem } from "./names.ts";

/** The file types an upload may have, by extension. */
export const UPLOAD_TYPES = {
  csv: "text",
  tsv: "text",
  txt: "text",
  parquet: "parquet",
} as const;

/** An extension {@link UPLOAD_TYPES} knows. */
export type UploadType = keyof typeof UPLOAD_TYPES;

/** The types allowed when `UPLOAD_ALLOWED_TYPES` is unset: all of {@link UPLOAD_TYPES}. */
export const DEFAULT_UPLOAD_TYPES: readonly UploadType[] = ["csv", "tsv", "txt", "parquet"];

/** The limits of one data source's uploads. */
export interface UploadLimits {
  /** The largest file, in bytes. */
  readonly maxFileBytes: number;
  /** The most bytes all of a data source's files may hold together. */
  readonly maxTotalBytes: number;
  /** The most files a data source may hold. */
  readonly maxFiles: number;
  /** The extensions allowed. */
  readonly types: readonly UploadType[];
}

/** Defaults: 1 GiB a file, 10 GiB a data source, 100 files, every known type. */
export const DEFAULT_UPLOAD_LIMITS: UploadLimits = {
  maxFileBytes: 1 << 30,
  maxTotalBytes: 10 * (1 << 30),
  maxFiles: 100,
  types: DEFAULT_UPLOAD_TYPES,
};

/** An upload refused for its name, type, content or size; nothing of it is kept. */
export abstract class UploadRefusedError extends AppError {}

/** The file's name is unsafe (a path separator, a dot-file, not printable, ...). */
export class UploadNameUnsafeError extends UploadRefusedError {
  readonly code = "upload_name_unsafe";
}

/** The file's extension or first bytes are not of an allowed type, or it is executable. */
export class UploadTypeRefusedError extends UploadRefusedError {
  readonly code = "upload_type_refused";
}

/** The file, or all of the data source's files, would be larger than the limits allow. */
export class UploadTooLargeError extends UploadRefusedError {
  readonly code = "upload_too_large";
}

/** The data source holds as many files as it may. */
export class UploadLimitReachedError extends UploadRefusedError {
  readonly code = "upload_limit_reached";
}

/** Parses `UPLOAD_ALLOWED_TYPES` (comma-separated extensions), refusing an unknown one. */
export function parseUploadTypes(text: string): UploadType[] {
  const types = text.split(",").map((t) => t.trim().toLowerCase()).filter((t) => t !== "");
  for (const type of types) {
    if (!(type in UPLOAD_TYPES)) {
      throw new UploadTypeRefusedError(
        `Unknown upload type "${type}"; known: ${Object.keys(UPLOAD_TYPES).join(", ")}`,
      );
    }
  }
  return types as UploadType[];
}

/**
 * The checked name of an uploaded file: the name the browser sent, in NFC, obeying the project-name
 * rules (no `/` or `\`, no leading `.` or `-`, printable, at most 64 characters; `domain/names.ts`) and
 * ending in an allowed extension; returns it with its type.
 *
 * @throws {UploadNameUnsafeError} or {UploadTypeRefusedError}.
 */
export function checkedUploadName(
  raw: string,
  types: readonly UploadType[],
): { name: string; type: UploadType } {
  const name = raw.isWellFormed() ? raw.normalize("NFC") : raw;
  const problem = projectNameProblem(name);
  if (problem !== undefined) {
    throw new UploadNameUnsafeError(`The file name ${problem}`);
  }
  const dot = name.lastIndexOf(".");
  const extension = dot <= 0 ? "" : name.slice(dot + 1).toLowerCase();
  if (!(types as readonly string[]).includes(extension)) {
    throw new UploadTypeRefusedError(
      `Only ${types.map((t) => `.${t}`).join(", ")} files may be uploaded`,
    );
  }
  return { name, type: extension as UploadType };
}

/** Signatures of executables and scripts: never kept, whatever the extension says. */
const EXECUTABLE_PREFIXES: readonly (readonly number[])[] = [
  [0x23, 0x21], // "#!" shebang
  [0x7f, 0x45, 0x4c, 0x46], // ELF
  [0x4d, 0x5a], // "MZ": PE / DOS
  [0xca, 0xfe, 0xba, 0xbe], // Mach-O universal, Java class
  [0xcf, 0xfa, 0xed, 0xfe], // Mach-O 64-bit
  [0xce, 0xfa, 0xed, 0xfe], // Mach-O 32-bit
  [0x50, 0x4b, 0x03, 0x04], // ZIP (jar, docm, ...)
];

/** Script markers refused near the start of a text file. */
const SCRIPT_MARKERS = /<\s*script|<\?php|<%|<html/i;

/** How many first bytes {@link contentProblem} looks at. */
export const SNIFF_BYTES = 512;

/**
 * Why the first bytes of a file do not fit its type, or `undefined`: an executable or script is refused
 * for every type; a text file has no NUL byte; a Parquet file starts with `PAR1`. An empty file is fine.
 */
export function contentProblem(first: Uint8Array, type: UploadType): string | undefined {
  if (first.length === 0) return undefined;
  for (const prefix of EXECUTABLE_PREFIXES) {
    if (prefix.every((byte, i) => first[i] === byte)) {
      return "The file is an executable, a script or an archive, which may not be uploaded";
    }
  }
  if (UPLOAD_TYPES[type] === "parquet") {
    const magic = [0x50, 0x41, 0x52, 0x31];
    const prefix = first.subarray(0, 4);
    if (prefix.length === 4 && !magic.every((byte, i) => prefix[i] === byte)) {
      return "The file does not start as a Parquet file does (PAR1)";
    }
    return undefined;
  }
  if (first.includes(0)) return "The file holds NUL bytes, so it is not a text file";
  const text = new TextDecoder("utf-8", { fatal: false }).decode(first);
  if (SCRIPT_MARKERS.test(text)) return "The file holds markup or script, not data";
  return undefined;
}

/**
 * Checks that one more file of `bytes` fits the limits, given what the data source holds already.
 *
 * @throws {UploadTooLargeError} or {UploadLimitReachedError}.
 */
export function checkUploadFits(
  limits: UploadLimits,
  held: { readonly files: number; readonly bytes: number },
  bytes: number,
): void {
  if (bytes > limits.maxFileBytes) {
    throw new UploadTooLargeError(
      `The file is larger than the ${limits.maxFileBytes} bytes a file may have`,
    );
  }
  if (held.files + 1 > limits.maxFiles) {
    throw new UploadLimitReachedError(
      `A data source holds at most ${limits.maxFiles} files`,
    );
  }
  if (held.bytes + bytes > limits.maxTotalBytes) {
    throw new UploadTooLargeError(
      `A data source holds at most ${limits.maxTotalBytes} bytes in all`,
    );
  }
}

/**
 * The states of an uploaded data source: files may be added while `open`; `ready` has a release
 * awaiting its gates; `staged` once its approved files were copied into staging; `published` once
 * published.
 */
export type UploadedDataSourceState = "open" | "ready" | "staged" | "published";

/**
 * An "Uploaded" data source: a project run whose files a person uploads (instead of a database
 * extract), kept in the quarantine area until a release of them is approved.
 */
export interface UploadedDataSource {
  /** 32 lower-case hex digits. */
  readonly id: string;
  readonly project_name: string;
  /** `YYYYMMDD_HHMMSS`, as for every project run. */
  readonly project_start_time: string;
  /** The filestore destination the files are published into. */
  readonly destination: string;
  /** Who created it: the only person who may upload to it. */
  readonly owner: { readonly id: string; readonly issuer: string; readonly name: string };
  readonly created_at: string;
  readonly state: UploadedDataSourceState;
  /** The release made when the owner marked it ready. */
  readonly release_id: string | null;
  /** The owner's column type overrides: file name → column → type. */
  readonly column_types: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

/** The shape of an {@link UploadedDataSource}'s id. */
export const DATA_SOURCE_ID_PATTERN = /^[0-9a-f]{32}$/;

/** No data source with this id that the person may see (404: the same whether absent or hidden). */
export class DataSourceNotFoundError extends AppError {
  readonly code = "data_source_not_found";
  constructor() {
    super("No such uploaded data source");
  }
}

/** Only the person who created a data source may upload to it, change it or mark it ready (403). */
export class NotUploaderError extends AppError {
  readonly code = "not_uploader";
  constructor() {
    super("Only the person who created this data source may change it");
  }
}

/** The data source was marked ready: its files can no longer change (409). */
export class DataSourceClosedError extends AppError {
  readonly code = "data_source_closed";
  constructor(detail = "The data source was marked ready; its files can no longer change") {
    super(detail);
  }
}

/** The staging dataset (schema name) uploaded files are staged under: `data/outputs/uploads/<name>`. */
export const UPLOAD_DATASET = "uploads";

/**
 * One approved file the gateway asks the publish service to stage: its upload id in the quarantine
 * area, its checked name, and the SHA-512 and size recorded as it arrived.
 */
export const uploadedFileSchema = z.object({
  id: z.string().regex(DATA_SOURCE_ID_PATTERN),
  name: z.string().refine((name) => projectNameProblem(name) === undefined, {
    error: "must be a safe file name",
  }),
  sha512: z.string().regex(/^[0-9a-f]{128}$/),
  bytes: z.number().int().min(0),
}).strict();

/** See {@link uploadedFileSchema}. */
export type UploadedFile = z.infer<typeof uploadedFileSchema>;

/** The files of a `POST /data-publish/package-upload` request (names unique). */
export const uploadedFilesSchema = z.array(uploadedFileSchema).min(1).refine(
  (files) => new Set(files.map((f) => f.name)).size === files.length,
  { error: "must not name a file twice" },
);

/** A quarantined file's bytes are not those recorded when it was uploaded: nothing is staged (409). */
export class UploadIntegrityError extends AppError {
  readonly code = "upload_integrity";
  constructor(readonly fileName: string) {
    super(`The uploaded file ${fileName} no longer has the SHA-512 and size recorded at upload`);
  }
}

/** Body of the publish service's `POST /data-publish/package-upload` (sent by the gateway only). */
export const PackageUploadRequest = z.object({
  project_name: ProjectName,
  project_start_time: ProjectStartTime,
  destination: FilestoreDestination,
  files: uploadedFilesSchema,
}).strict();

/** See {@link PackageUploadRequest}. */
export type PackageUploadRequest = z.infer<typeof PackageUploadRequest>;

/** The service has no quarantine area (`UPLOAD_QUARANTINE_PATH` unset): uploads are off (501). */
export class UploadsOffError extends AppError {
  readonly code = "uploads_off";
  constructor() {
    super("Uploads are off on this service: UPLOAD_QUARANTINE_PATH is not set");
  }
}

/** The publish service refused to stage or publish an uploaded data source; `detail` says why (409). */
export class UploadStepRefusedError extends AppError {
  readonly code = "upload_step_refused";
  constructor(readonly step: "stage" | "publish", detail: string) {
    super(`The publish service did not ${step} the files: ${detail}`);
  }
}

/** An upload request that misses what it must say (its length, a known destination) (400). */
export class UploadRequestInvalidError extends UploadRefusedError {
  readonly code = "upload_request_invalid";
}

/** What a new {@link UploadedDataSource} is made of. */
export interface NewUploadedDataSource {
  /** 32 lower-case hex digits: random from the dashboard, the resource's uid from the operator. */
  readonly id: string;
  readonly projectName: string;
  readonly destination: string;
  /** The destinations a data source may be published into (the approval policy's filestores). */
  readonly destinations: readonly string[];
  readonly owner: UploadedDataSource["owner"];
  /** Its creation time, also its project start time (UTC, `YYYYMMDD_HHMMSS`). */
  readonly at: Date;
}

/**
 * A new, open data source: the one rule for the dashboard's form, a script's `POST /uploads/sources`
 * and the operator's `Uploaded` resources.
 *
 * @throws {UploadNameUnsafeError} when the project name is not a safe project name.
 * @throws {UploadRequestInvalidError} when the destination is not one of `destinations`, or the id is
 *   not 32 hex digits.
 */
export function newUploadedDataSource(input: NewUploadedDataSource): UploadedDataSource {
  const projectName = input.projectName.trim();
  const problem = projectNameProblem(projectName);
  if (problem !== undefined) {
    throw new UploadNameUnsafeError(`The project name ${problem}`);
  }
  if (!input.destinations.includes(input.destination)) {
    throw new UploadRequestInvalidError(`Unknown destination ${JSON.stringify(input.destination)}`);
  }
  if (!DATA_SOURCE_ID_PATTERN.test(input.id)) {
    throw new UploadRequestInvalidError("A data source id is 32 lower-case hex digits");
  }
  const at = input.at.toISOString();
  return {
    id: input.id,
    project_name: projectName,
    project_start_time: at.replace(/[-:]/g, "").replace("T", "_").slice(0, 15),
    destination: input.destination,
    owner: input.owner,
    created_at: at,
    state: "open",
    release_id: null,
    column_types: {},
  };
}
