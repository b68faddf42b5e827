/**
 * The in-memory file registry: for tests and single-process deployments without a state directory.
 *
 * @module
 */
import { type FileRecord, fileRecordSchema } from "../../domain/http_file_sources.ts";
import type { FileRegistry } from "../../ports/file_registry.ts";

/** A {@link FileRegistry} in a map; nothing survives the process. */
export class MemoryFileRegistry implements FileRegistry {
  readonly #records = new Map<string, FileRecord>();

  /** {@inheritDoc FileRegistry.records} */
  records(source: string): Promise<FileRecord[]> {
    return Promise.resolve(
      [...this.#records.values()].filter((r) => r.source === source)
        .sort((a, b) => a.url < b.url ? -1 : a.url > b.url ? 1 : 0)
        .map((r) => ({ ...r })),
    );
  }

  /** {@inheritDoc FileRegistry.put} */
  put(records: readonly FileRecord[]): Promise<void> {
    try {
      const valid = records.map((r) => fileRecordSchema.parse(r));
      for (const r of valid) this.#records.set(JSON.stringify([r.source, r.url]), r);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** {@inheritDoc FileRegistry.close} */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
