/**
 * What an npm driver's own files get from `require`, where what they would get costs the service
 * memory it never uses, or prints a warning.
 *
 * A driver written for Node may require at load time a package it uses only on paths this service
 * never takes (tedious' `@azure/identity`, for Azure AD logins). Such a package can be
 * {@link deferred}: the driver gets a stand-in that requires the real package at the first read of one
 * of its exports, so the driver works as before on every path. A package can also be answered with
 * another one (the userland `punycode` for Node's deprecated module).
 *
 * Each rule names the package whose files require and the specifier they require; every other
 * `require` is Node's own. An adapter installs its driver's rules with {@link replaceRequires} and then
 * imports the driver with `import()`, as a static import would load it first.
 *
 * @module
 */
import Module from "node:module";

/** One `require` to answer differently. */
export interface RequireRule {
  /** The npm package whose own files make the `require`, e.g. `tedious`. */
  readonly requiredBy: string;
  /** The specifier they require, e.g. `@azure/identity`. */
  readonly specifier: string;
  /** What they get, given Node's own `require` of the specifier. */
  readonly answer: (nodeRequire: () => unknown) => unknown;
}

type Load = (request: string, parent: unknown, isMain: boolean) => unknown;

const rules: RequireRule[] = [];
let installed = false;

/** Answers the `require`s the rules name from now on; a rule given twice is kept once. */
export function replaceRequires(...added: readonly RequireRule[]): void {
  if (!installed) installLoader();
  installed = true;
  for (const rule of added) {
    if (!rules.some((r) => r.requiredBy === rule.requiredBy && r.specifier === rule.specifier)) {
      rules.push(rule);
    }
  }
}

/** The answer that defers a package until its exports are read; see {@link deferredExports}. */
export const deferred = (nodeRequire: () => unknown): unknown =>
  deferredExports(() => nodeRequire() as object);

/**
 * A stand-in for a CommonJS module's exports object that calls `load` at the first read of any
 * property (or `in`), and then answers from what it returned; `load` runs once. Only for packages whose
 * exports are a plain object of named exports: the stand-in cannot be called.
 */
export function deferredExports(load: () => object): object {
  let loaded: object | undefined;
  const exports = () => loaded ??= load();
  return new Proxy({}, {
    get: (_, property) => Reflect.get(exports(), property),
    has: (_, property) => Reflect.has(exports(), property),
  });
}

function installLoader(): void {
  const loader = Module as unknown as { _load: Load };
  const nodeLoad = loader._load;
  loader._load = function (this: unknown, request, parent, isMain) {
    const nodeRequire = () => nodeLoad.call(this, request, parent, isMain);
    const rule = rules.find((r) => r.specifier === request && isFileOf(r.requiredBy, parent));
    return rule === undefined ? nodeRequire() : rule.answer(nodeRequire);
  };
}

/** Whether `parent`, the module that called `require`, is one of the files of npm package `name`. */
function isFileOf(name: string, parent: unknown): boolean {
  const filename = (parent as { filename?: unknown } | null)?.filename;
  return typeof filename === "string" &&
    filename.replaceAll("\\", "/").includes(`/${name}/`);
}
