/**
 * Small collection helpers the adapters share when they assemble catalogues from query rows.
 *
 * @module
 */

/**
 * Groups rows by a key, keeping their order within each group.
 *
 * @param rows the rows, e.g. the columns of several tables.
 * @param key the group a row belongs to, e.g. its table.
 * @returns each key's rows, keys in order of first appearance.
 */
export function groupBy<T>(rows: Iterable<T>, key: (row: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const k = key(row);
    const group = groups.get(k);
    if (group === undefined) groups.set(k, [row]);
    else group.push(row);
  }
  return groups;
}

/**
 * Orders names by UTF-16 code units, as a binary collation does; the order catalogues list tables in.
 *
 * @returns a negative number, zero or a positive number, for `Array.prototype.sort`.
 */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
