/**
 * An in-memory source database for tests and demos. Do not use it in production.
 *
 * @module
 */
import type { SchemaCatalog } from "../../domain/catalog.ts";
import {
  SchemaNotFoundError,
  type SourceDatabase,
  SourceUnavailableError,
} from "../../ports/source_database.ts";

/** A source database whose catalogue is given up front. */
export class MemorySourceDatabase implements SourceDatabase {
  readonly #schemas: Map<string, SchemaCatalog>;
  #closed = false;
  #unavailable = false;

  constructor(schemas: readonly SchemaCatalog[]) {
    this.#schemas = new Map(schemas.map((s) => [s.name, sortTables(s)]));
  }

  /** Makes every later call fail as if the server went away. */
  breakConnection(): void {
    this.#unavailable = true;
  }

  /** True once {@link close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  async ping(): Promise<void> {
    await Promise.resolve();
    this.#assertOpen();
  }

  async describeSchema(
    schema: string,
    options: { tables?: readonly string[] } = {},
  ): Promise<SchemaCatalog> {
    await this.ping();
    const found = this.#schemas.get(schema);
    if (found === undefined) throw new SchemaNotFoundError(schema);
    const only = options.tables === undefined ? undefined : new Set(options.tables);
    return only === undefined
      ? found
      : { ...found, tables: found.tables.filter((t) => only.has(t.name)) };
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new SourceUnavailableError("Cannot use a closed source connection");
    if (this.#unavailable) throw new SourceUnavailableError("Cannot reach the source database");
  }
}

function sortTables(schema: SchemaCatalog): SchemaCatalog {
  return {
    ...schema,
    tables: [...schema.tables].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  };
}
