/**
 * The keyset cursor of the stores' lists (runs, releases): newest first by creation time, then id. The
 * cursor is the position of a page's last item, as base64url of JSON, the same for every adapter.
 *
 * @module
 */

/** The position a list page ends at: the creation time and id of its last item. */
export interface KeysetPosition {
  readonly created_at: string;
  readonly id: string;
}

/** The opaque cursor after `item` (base64url of JSON). */
export function encodeKeysetCursor(item: KeysetPosition): string {
  const json = JSON.stringify([item.created_at, item.id]);
  return btoa(String.fromCharCode(...new TextEncoder().encode(json)))
    .replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** Reads a cursor made by {@link encodeKeysetCursor}; `undefined` for anything else. */
export function decodeKeysetCursor(cursor: string): KeysetPosition | undefined {
  try {
    const binary = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    const json = new TextDecoder("utf-8", { fatal: true })
      .decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
    const value: unknown = JSON.parse(json);
    if (
      Array.isArray(value) && value.length === 2 && typeof value[0] === "string" &&
      typeof value[1] === "string" && !Number.isNaN(Date.parse(value[0]))
    ) {
      return { created_at: value[0], id: value[1] };
    }
  } catch {
    // Not a cursor.
  }
  return undefined;
}

/** Whether `a` comes before `b` in a list: newer creation time first, then larger id. */
export function compareNewestFirst(a: KeysetPosition, b: KeysetPosition): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id === b.id ? 0 : a.id < b.id ? 1 : -1;
}
