/**
 * The `@databricks/sql` driver, loaded without Node's deprecated `punycode` module: import it from
 * here, never from the package, or its warning is printed when the driver loads.
 *
 * The driver's node-fetch 2 loads whatwg-url 5 and its tr46, which require Node's `punycode`; Node
 * prints a deprecation warning when that module loads. They get the same code from the userland
 * package instead (see `../shared/npm_requires.ts`).
 *
 * @module
 */
// Userland punycode, not Node's module.
import punycode from "punycode";
import { replaceRequires } from "../shared/npm_requires.ts";

replaceRequires(
  { requiredBy: "whatwg-url", specifier: "punycode", answer: () => punycode },
  { requiredBy: "tr46", specifier: "punycode", answer: () => punycode },
);

/** The driver's exports. */
export const databricks: typeof import("@databricks/sql") = await import("@databricks/sql");
