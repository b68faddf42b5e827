/**
 * Where the dashboard is served: its own module, so that the page modules (`dashboard.tsx`,
 * `uploads.tsx`) can share it without a cycle at load time.
 *
 * @module
 */

/** Where the dashboard is served. */
export const UI_PREFIX = "/ui";
