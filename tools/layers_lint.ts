/**
 * A `deno lint` plugin that enforces the layer allow-list (style guide §2.1-2.2) while you edit:
 *
 * | file in     | may import                                                       |
 * | ----------- | ---------------------------------------------------------------- |
 * | `domain/`   | `domain/` files, `zod` (bare, as mapped in deno.json), `node:path/posix`, `node:crypto` |
 * | `ports/`    | `domain/` files                                                  |
 * | `application/` | `domain/`, `ports/` and `application/` files, and what `domain/` may import |
 * | `adapters/` | anything except `apps/` and `application/`                       |
 *
 * Nothing in `domain/`, `ports/`, `application/` or `adapters/` may import from `apps/`, and nothing in
 * `domain/`, `ports/` or `adapters/` from `application/`. Test files beside the code (`*_test.ts`) are not
 * part of the layer, so they may also use test helpers such as `node:assert` and (in `application/`)
 * adapters and test support, but they too must not import from `apps/` (nor, outside `application/`,
 * from `application/`). Relative and `file:` specifiers are resolved against the importing
 * file to find the layer they land in.
 *
 * `tests/architecture_test.ts` checks the same rules on the resolved module graph, which also catches a
 * `// deno-lint-ignore` that silences this rule.
 *
 * @module
 */

/** The layers this rule knows about; `other` is anything else in the repository or outside it. */
export type Layer = "domain" | "ports" | "application" | "adapters" | "apps" | "other";

const ROOT = toPath(new URL("../", import.meta.url));
const LAYERS: readonly Layer[] = ["domain", "ports", "application", "adapters", "apps"];

/** The layers whose imports this rule checks. */
const CHECKED: ReadonlySet<Layer> = new Set(["domain", "ports", "application", "adapters"]);

/** Packages (bare specifiers from the deno.json import map) and built-ins `domain/` may use. */
const DOMAIN_PACKAGES: ReadonlySet<string> = new Set(["zod", "node:path/posix", "node:crypto"]);

const TEST_FILE = /(?:_test|\.test)\.[cm]?[jt]sx?$/;

/** What an import specifier points at: a file in this repository, or a package or built-in. */
export type Target =
  | { readonly kind: "file"; readonly layer: Layer; readonly path: string }
  | { readonly kind: "package"; readonly specifier: string };

function toPath(url: URL): string {
  return decodeURIComponent(url.pathname);
}

function toFileUrl(path: string): URL {
  const url = new URL("file:///");
  url.pathname = path.replaceAll("\\", "/");
  return url;
}

/** Returns the layer of an absolute path, from its first folder below the repository root. */
export function layerOf(path: string, root: string = ROOT): Layer {
  const normalized = path.replaceAll("\\", "/");
  if (!normalized.startsWith(root)) return "other";
  const first = normalized.slice(root.length).split("/")[0] ?? "";
  return (LAYERS as readonly string[]).includes(first) ? first as Layer : "other";
}

/** Resolves `specifier` as written in the file at absolute path `importer`. */
export function resolveTarget(specifier: string, importer: string, root: string = ROOT): Target {
  const isPath = specifier.startsWith("./") || specifier.startsWith("../") ||
    specifier.startsWith("/") || specifier.startsWith("file:");
  if (!isPath) return { kind: "package", specifier };
  const path = toPath(new URL(specifier, toFileUrl(importer)));
  return { kind: "file", layer: layerOf(path, root), path };
}

/**
 * Explains why the file at absolute path `importer` may not import `specifier`, or returns `undefined`
 * when the import is allowed.
 */
export function importProblem(
  importer: string,
  specifier: string,
  root: string = ROOT,
): string | undefined {
  const from = layerOf(importer, root);
  if (!CHECKED.has(from)) return undefined;
  const target = resolveTarget(specifier, importer, root);
  const where = target.kind === "file"
    ? `"${specifier}" is in ${target.layer === "other" ? "no layer" : `${target.layer}/`}`
    : `"${specifier}" is a package`;

  if (target.kind === "file" && target.layer === "apps") {
    return `${from}/ must not import from apps/: ${where}`;
  }
  if (target.kind === "file" && target.layer === "application" && from !== "application") {
    return `${from}/ must not import from application/: ${where}`;
  }
  if (from === "adapters" || TEST_FILE.test(importer)) return undefined;

  if (from === "application") {
    if (
      target.kind === "file"
        ? ["domain", "ports", "application"].includes(target.layer)
        : DOMAIN_PACKAGES.has(specifier)
    ) {
      return undefined;
    }
    return `application/ may import only domain/, ports/ and application/ files and what domain/ may: ${where}`;
  }

  if (from === "domain") {
    if (target.kind === "file" ? target.layer === "domain" : DOMAIN_PACKAGES.has(specifier)) {
      return undefined;
    }
    return `domain/ may import only domain/ files, "zod", "node:path/posix" and "node:crypto": ${where}`;
  }
  // from === "ports"
  if (target.kind === "file" && target.layer === "domain") return undefined;
  return `ports/ may import only domain/ files: ${where}`;
}

function stringValue(node: Deno.lint.Node | null | undefined): string | undefined {
  if (node === null || node === undefined) return undefined;
  if (node.type === "Literal" && typeof node.value === "string") return node.value;
  if (node.type === "TemplateLiteral" && node.expressions.length === 0) {
    return node.quasis[0]?.cooked ?? undefined;
  }
  if (node.type === "TSLiteralType") return stringValue(node.literal);
  return undefined;
}

/**
 * The `layers` lint plugin; its one rule is `layers/imports`. (Plugin names may hold only `a-z` and `-`, so
 * not `cr8tor-layers`.)
 */
const plugin = {
  name: "layers",
  rules: {
    imports: {
      create(context) {
        const importer = context.filename;
        const layer = layerOf(importer);
        if (!CHECKED.has(layer)) return {};

        function check(node: Deno.lint.Node, source: Deno.lint.Node | null | undefined): void {
          if (source === null || source === undefined) return;
          const specifier = stringValue(source);
          if (specifier === undefined) {
            if (layer !== "adapters") {
              context.report({
                node,
                message:
                  `${layer}/ must import modules by a string literal, so that the layer rule can check it`,
              });
            }
            return;
          }
          const message = importProblem(importer, specifier);
          if (message !== undefined) context.report({ node, message });
        }

        return {
          ImportDeclaration(node) {
            check(node, node.source);
          },
          ExportNamedDeclaration(node) {
            check(node, node.source);
          },
          ExportAllDeclaration(node) {
            check(node, node.source);
          },
          ImportExpression(node) {
            check(node, node.source);
          },
          TSImportType(node) {
            check(node, node.argument);
          },
          TSExternalModuleReference(node) {
            check(node, node.expression);
          },
        };
      },
    },
  },
} satisfies Deno.lint.Plugin;

export default plugin;
