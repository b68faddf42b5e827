/**
 * An in-memory `ReleaseReader` (`ports/release_reader.ts`) for tests and demos, passing the same contract
 * suite as the filestore and PostgreSQL readers (`tests/contracts/release_reader_contract.ts`). Do not use
 * it in production.
 *
 * A table with key columns pages by key (integers compare as numbers, other text by code units); a table
 * without pages by row number, bound to the version the table had (a republish gives it a new one).
 *
 * @module
 */
import type { CanonicalRow } from "../../domain/logical_type.ts";
import {
  InvalidCursorError,
  MAX_PAGE_CHARS,
  pageIsFull,
  type ReadPosition,
  type ReleaseTable,
  rowChars,
} from "../../domain/release_read.ts";
import type { RunRef } from "../../domain/staging_layout.ts";
import {
  type ReadPage,
  type ReadPageRequest,
  ReleaseChangedError,
  ReleaseNotReadableError,
  type ReleaseReader,
  ReleaseTableNotFoundError,
} from "../../ports/release_reader.ts";

/** A table as the fake holds it: its description and its rows, in key order or insertion order. */
interface HeldTable {
  readonly table: ReleaseTable;
  readonly rows: readonly CanonicalRow[];
  readonly version: string;
}

/** Published releases held in memory. */
export class MemoryReleaseReader implements ReleaseReader {
  readonly #runs = new Map<string, HeldTable[]>();
  #versions = 0;

  /** Publishes (or republishes) a run's tables, replacing what it published before. */
  publish(run: RunRef, tables: readonly { table: ReleaseTable; rows: readonly CanonicalRow[] }[]) {
    this.#runs.set(
      runKey(run),
      tables.map(({ table, rows }) => {
        const keyIndexes = table.key.map((k) => table.columns.findIndex((c) => c.name === k));
        const sorted = keyIndexes.length === 0
          ? [...rows]
          : [...rows].sort((a, b) =>
            compareKeys(keyIndexes.map((i) => a[i]!), keyIndexes.map((i) => b[i]!))
          );
        return { table, rows: sorted, version: String(++this.#versions) };
      }).sort((a, b) => byName(a.table, b.table)),
    );
  }

  /** Revokes a run: nothing of it is readable any more. */
  revoke(run: RunRef): void {
    this.#runs.delete(runKey(run));
  }

  // deno-lint-ignore require-await
  async listTables(run: RunRef): Promise<ReleaseTable[]> {
    return this.#published(run).map((t) => t.table);
  }

  // deno-lint-ignore require-await
  async readPage(run: RunRef, request: ReadPageRequest): Promise<ReadPage> {
    return this.#readPage(run, request);
  }

  #readPage(run: RunRef, request: ReadPageRequest): ReadPage {
    const held = this.#published(run).find((t) =>
      t.table.dataset === request.dataset && t.table.name === request.table
    );
    if (held === undefined) throw new ReleaseTableNotFoundError(request.dataset, request.table);
    const { table, rows } = held;
    const keyIndexes = table.key.map((k) => table.columns.findIndex((c) => c.name === k));
    let start = 0;
    const after = request.after;
    if (after !== null) {
      if (keyIndexes.length > 0) {
        if (after.kind !== "key" || after.values.length !== keyIndexes.length) {
          throw new InvalidCursorError("does not fit this table's key");
        }
        start = rows.findIndex((r) => compareKeys(keyIndexes.map((i) => r[i]!), after.values) > 0);
        if (start < 0) start = rows.length;
      } else {
        if (after.kind !== "row" || !/^[0-9]{1,15}$/.test(after.after)) {
          throw new InvalidCursorError("is not a row position of this table");
        }
        if (after.version !== held.version) {
          throw new ReleaseChangedError(request.dataset, request.table);
        }
        start = Number(after.after);
      }
    }
    const page: CanonicalRow[] = [];
    let chars = 0;
    const maxChars = request.maxChars ?? MAX_PAGE_CHARS;
    let i = start;
    for (; i < rows.length && !pageIsFull(page.length, chars, request.limit, maxChars); i++) {
      page.push([...rows[i]!]);
      chars += rowChars(rows[i]!);
    }
    const last = page.at(-1);
    let next: ReadPosition | null = null;
    if (i < rows.length && last !== undefined) {
      next = keyIndexes.length > 0
        ? { kind: "key", values: keyIndexes.map((k) => last[k]!) }
        : { kind: "row", version: held.version, after: String(i) };
    }
    return {
      columns: table.columns.map((c) => ({ name: c.name, type: c.type })),
      rows: page,
      next,
    };
  }

  #published(run: RunRef): HeldTable[] {
    const tables = this.#runs.get(runKey(run));
    if (tables === undefined || tables.length === 0) throw new ReleaseNotReadableError(run);
    return tables;
  }
}

function runKey(run: RunRef): string {
  return `${run.project}\0${run.startTime}`;
}

function byName(a: ReleaseTable, b: ReleaseTable): number {
  return a.dataset < b.dataset
    ? -1
    : a.dataset > b.dataset
    ? 1
    : a.name < b.name
    ? -1
    : a.name > b.name
    ? 1
    : 0;
}

/** Key values in order: integers as numbers, anything else by code units. */
function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (/^-?[0-9]+$/.test(x) && /^-?[0-9]+$/.test(y)) return BigInt(x) < BigInt(y) ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return 0;
}
