/**
 * A limit on how deeply a JSON request body nests arrays and objects. The contract's own shape is six
 * levels deep at most; only the free-form `staging_path` and `publish_path` (and unknown keys, which are
 * ignored) can nest further. A body nested deeper than the limit is refused before it is parsed, so no
 * recursive reader (a validator, a serialiser, the CLI's parser reading a reply that echoes it) sees it.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";

/** How many levels of arrays and objects a request body may nest. */
export const MAX_JSON_DEPTH = 32;

/**
 * Returns true when the JSON text nests arrays and objects deeper than `maxDepth`. The scan is lexical and
 * linear (brackets inside strings do not count); it does not check that the text is valid JSON.
 */
export function jsonNestsDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 0x5c) i++; // a backslash escapes the next character
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) inString = true;
    else if (char === 0x7b || char === 0x5b) {
      if (++depth > maxDepth) return true;
    } else if (char === 0x7d || char === 0x5d) depth--;
  }
  return false;
}

/**
 * Refuses a JSON body that nests deeper than `maxDepth` with the reply `onError` builds. Bodies not sent as
 * JSON pass through (the route's validator answers them). Hono caches the text, so later readers reuse it.
 */
export function jsonDepthLimit(
  options: { maxDepth: number; onError: (c: Context) => Response },
): MiddlewareHandler {
  return async function jsonDepthLimit(c, next) {
    if (c.req.raw.body === null || !/json/i.test(c.req.header("content-type") ?? "")) {
      return await next();
    }
    if (jsonNestsDeeperThan(await c.req.text(), options.maxDepth)) return options.onError(c);
    return await next();
  };
}
