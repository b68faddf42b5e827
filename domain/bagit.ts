/**
 * BagIt (RFC 8493, version 1.0) tag files for a published run: `bagit.txt`, `bag-info.txt` and SHA-512
 * manifests. The bag root is the production run folder; the payload is under `data/`.
 *
 * @module
 */

/** A file listed in a manifest: its path relative to the bag root and its SHA-512. */
export interface ManifestEntry {
  readonly path: string;
  readonly sha512: string;
}

/** The content of `bagit.txt`. */
export const BAGIT_TXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n";

/** What `bag-info.txt` records. */
export interface BagInfo {
  /** `YYYY-MM-DD`. */
  readonly baggingDate: string;
  readonly payloadBytes: number;
  readonly payloadFiles: number;
  /** Identifies the run, e.g. `Pr042/20250611_093000`. */
  readonly externalIdentifier: string;
  readonly softwareAgent: string;
  /** Set when CSV files were written with the opt-in formula escape (see {@link csvFormulaEscape}). */
  readonly csvFormulaEscape?: CsvFormulaEscape | undefined;
}

/** Which CSV payload files had the formula escape applied, and its prefix. */
export interface CsvFormulaEscape {
  readonly prefix: string;
  /** The escaped files, when some CSV files of the bag are not escaped; absent when all are. */
  readonly files?: readonly string[];
}

/**
 * Whether the formula escape was applied to a bag's CSV files, from the staging manifest's entries:
 * `undefined` when no file was escaped; the prefix alone when every `.csv` file was; else the prefix
 * and the escaped files.
 */
export function csvFormulaEscape(
  files: readonly { readonly path: string; readonly csvFormulaPrefix?: string | undefined }[],
): CsvFormulaEscape | undefined {
  const escaped = files.filter((f) => f.csvFormulaPrefix !== undefined);
  const prefix = escaped[0]?.csvFormulaPrefix;
  if (prefix === undefined) return undefined;
  const csv = files.filter((f) => f.path.endsWith(".csv"));
  return escaped.length === csv.length
    ? { prefix }
    : { prefix, files: escaped.map((f) => f.path).sort() };
}

/**
 * The content of `bag-info.txt`. When CSV files were formula-escaped it also records
 * `CSV-Formula-Prefix: <prefix>`, and, when only some files were, one `CSV-Formula-Prefixed-File: <path>`
 * per escaped file, so a reader knows that text values starting with the prefix were altered.
 */
export function bagInfoText(info: BagInfo): string {
  const escape = info.csvFormulaEscape;
  return [
    `Bagging-Date: ${info.baggingDate}`,
    `Payload-Oxum: ${info.payloadBytes}.${info.payloadFiles}`,
    `External-Identifier: ${info.externalIdentifier}`,
    `Bag-Software-Agent: ${info.softwareAgent}`,
    ...(escape === undefined ? [] : [
      `CSV-Formula-Prefix: ${escape.prefix}`,
      ...(escape.files ?? []).map((path) => `CSV-Formula-Prefixed-File: ${encodePath(path)}`),
    ]),
    "",
  ].join("\n");
}

/** Percent-encodes what RFC 8493 §2.1.3 requires in manifest paths: `%`, CR and LF. */
function encodePath(path: string): string {
  return path.replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}

function decodePath(path: string): string {
  return path.replaceAll("%0A", "\n").replaceAll("%0a", "\n").replaceAll("%0D", "\r").replaceAll(
    "%0d",
    "\r",
  )
    .replaceAll("%25", "%");
}

/** The content of a `manifest-sha512.txt` or `tagmanifest-sha512.txt`, sorted by path. */
export function manifestText(entries: readonly ManifestEntry[]): string {
  return [...entries]
    .sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0)
    .map((e) => `${e.sha512}  ${encodePath(e.path)}\n`)
    .join("");
}

/**
 * Parses a manifest.
 *
 * @throws {SyntaxError} on a line that is not `<128 hex digits> <path>`.
 */
export function parseManifest(text: string): ManifestEntry[] {
  return text.split("\n").filter((line) => line !== "").map((line) => {
    const match = /^([0-9a-fA-F]{128})[ \t]+(.+)$/.exec(line);
    if (match === null) {
      throw new SyntaxError("Cannot parse manifest line: expected a SHA-512 and a path");
    }
    return { sha512: match[1]!.toLowerCase(), path: decodePath(match[2]!) };
  });
}
