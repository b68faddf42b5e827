/**
 * The `Link` header of a paged reply (RFC 8288): `<path>; rel="next"`, written and read in one place.
 *
 * @module
 */

/** The `Link` header naming `next` (a path and query) as the next page. */
export function nextLinkHeader(next: string): string {
  return `<${next}>; rel="next"`;
}

/**
 * The next page from a `Link` header written by {@link nextLinkHeader}: `null` when there is none (the
 * last page), `undefined` when the header is not that form.
 */
export function nextOfLinkHeader(header: string | null): string | null | undefined {
  if (header === null) return null;
  return /^<([^<>]*)>; rel="next"$/.exec(header)?.[1];
}
