/**
 * A wire-level fake of the Kubernetes API server, for driving the real `@kubernetes/client-node` in
 * tests (the operator, the Kubernetes run executor) without a cluster.
 *
 * It serves plain HTTP/1.1 on 127.0.0.1 (the client's `KubeConfig` takes an `http://` server) and keeps
 * namespaced objects of any group, version and plural in memory:
 *
 * - `GET` list (with `labelSelector` equality terms) and `watch=true` from a `resourceVersion`: the
 *   events after it, then live events, one JSON line each. A `resourceVersion` older than the kept
 *   history gets an `ERROR` event with a 410 `Expired` status (so the informer lists again). A watch is
 *   closed after `timeoutSeconds` or the fake's `maxWatchSeconds` (default 5), whichever is shorter, and
 *   {@link FakeKubernetes.cutWatches} breaks every open watch off at once.
 * - `POST` create (409 `AlreadyExists`), `GET` one (404 `NotFound`), `PUT` replace, `PATCH` with
 *   `application/merge-patch+json` (and the strategic merge and apply content types, treated as a merge
 *   patch) or `application/json-patch+json`, on the object and on its `/status` subresource. A
 *   `metadata.resourceVersion` in a replace or patch body must be the current one (409 `Conflict`).
 *   Writes to the object keep its status; writes to `/status` change only the status. A changed `spec`
 *   increments `metadata.generation`.
 * - `DELETE`: with finalizers left, the object only gets a `deletionTimestamp`; it is removed (a
 *   `DELETED` event) once an update leaves no finalizer.
 *
 * Tests can read and write objects directly ({@link FakeKubernetes.get}, {@link FakeKubernetes.put}),
 * count requests ({@link FakeKubernetes.requests}), drop the event history
 * ({@link FakeKubernetes.compact}) and intercept requests ({@link FakeKubernetes.intercept}).
 *
 * @module
 */

/** A Kubernetes object as JSON. */
// deno-lint-ignore no-explicit-any
export type KubeObject = Record<string, any>;

/** Where an object lives: API group (`""` for the core group), version, plural, namespace and name. */
export interface ObjectKey {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly namespace: string;
  readonly name: string;
}

interface WatchEvent {
  readonly rv: number;
  readonly type: "ADDED" | "MODIFIED" | "DELETED";
  readonly resource: string;
  readonly namespace: string;
  readonly object: KubeObject;
}

interface OpenWatch {
  readonly resource: string;
  readonly namespace: string | undefined;
  readonly selector: ReadonlyMap<string, string>;
  readonly send: (event: WatchEvent) => void;
  readonly close: () => void;
}

/** One request the fake answered. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** A `watch=true` request. */
  readonly watch: boolean;
}

/** What the fake does with a request before it handles it; return a Response to answer instead. */
export type Interceptor = (
  request: { readonly method: string; readonly path: string; readonly body: KubeObject | null },
) => Response | undefined | Promise<Response | undefined>;

/** Options of {@link startFakeKubernetes}. */
export interface FakeKubernetesOptions {
  /** The longest a watch stays open, in seconds (default 5). */
  readonly maxWatchSeconds?: number;
}

/** The fake API server. */
export interface FakeKubernetes extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** A kubeconfig (YAML) for this server, with a token user, namespace `namespace`. */
  kubeconfig(namespace: string): string;
  /** The object at `key`, or `undefined`. */
  get(key: ObjectKey): KubeObject | undefined;
  /** The objects of a resource in a namespace, by name order. */
  list(resource: Omit<ObjectKey, "name">): KubeObject[];
  /** Creates or replaces an object as the server would (new resource version, an event). */
  put(key: ObjectKey, object: KubeObject): KubeObject;
  /** Every request answered so far. */
  readonly requests: readonly RecordedRequest[];
  /** Forgets the event history, so any watch from an older resource version gets 410 Gone. */
  compact(): void;
  /** Breaks every open watch off (the connection ends without a final event). */
  cutWatches(): void;
  /** How many watches are open now. */
  readonly openWatches: number;
  /** Installs (or with `undefined` removes) a request interceptor. */
  intercept(interceptor: Interceptor | undefined): void;
  close(): Promise<void>;
}

const JSON_HEADERS = { "content-type": "application/json" };

function status(code: number, reason: string, message: string): Response {
  return new Response(
    JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, reason, code }),
    { status: code, headers: JSON_HEADERS },
  );
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

/** Reads one HTTP/1.1 request (headers, then a `content-length` body) from a connection. */
async function readRequest(conn: Deno.Conn): Promise<Request | undefined> {
  let buffer = new Uint8Array(0);
  const chunk = new Uint8Array(65536);
  const append = (bytes: Uint8Array) => {
    const next = new Uint8Array(buffer.length + bytes.length);
    next.set(buffer);
    next.set(bytes, buffer.length);
    buffer = next;
  };
  let headerEnd = -1;
  while (headerEnd < 0) {
    const n = await conn.read(chunk);
    if (n === null) return undefined;
    append(chunk.subarray(0, n));
    headerEnd = new TextDecoder().decode(buffer).indexOf("\r\n\r\n");
  }
  const headText = new TextDecoder().decode(buffer).slice(0, headerEnd);
  const [requestLine, ...headerLines] = headText.split("\r\n");
  const [method, target] = requestLine!.split(" ");
  const headers = new Headers();
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const bodyStart = new TextEncoder().encode(
    new TextDecoder().decode(buffer).slice(0, headerEnd + 4),
  ).length;
  const length = Number(headers.get("content-length") ?? "0");
  while (buffer.length - bodyStart < length) {
    const n = await conn.read(chunk);
    if (n === null) return undefined;
    append(chunk.subarray(0, n));
  }
  const body = buffer.slice(bodyStart, bodyStart + length);
  return new Request(`http://127.0.0.1${target}`, {
    method: method!,
    headers,
    ...(length > 0 ? { body } : {}),
  });
}

/** Applies an RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const base: KubeObject = target !== null && typeof target === "object" && !Array.isArray(target)
    ? { ...target as KubeObject }
    : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete base[key];
    else base[key] = mergePatch(base[key], value);
  }
  return base;
}

/** Applies an RFC 6902 JSON patch (add, remove, replace, test). */
function jsonPatch(target: KubeObject, operations: KubeObject[]): KubeObject {
  const doc = structuredClone(target);
  for (const op of operations) {
    const parts = String(op.path).split("/").slice(1).map((p) =>
      p.replaceAll("~1", "/").replaceAll("~0", "~")
    );
    const last = parts.pop()!;
    // deno-lint-ignore no-explicit-any
    let parent: any = doc;
    for (const part of parts) parent = parent[part];
    if (op.op === "test") {
      if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) throw new Error("test failed");
    } else if (op.op === "remove") {
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    } else if (Array.isArray(parent) && op.op === "add") {
      parent.splice(last === "-" ? parent.length : Number(last), 0, op.value);
    } else parent[last] = op.value;
  }
  return doc;
}

function parsePath(pathname: string):
  | {
    resource: string;
    group: string;
    version: string;
    plural: string;
    namespace?: string;
    name?: string;
    sub?: string;
  }
  | undefined {
  const core = /^\/api\/(v1)(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/(status))?$/
    .exec(pathname);
  const named =
    /^\/apis\/([^/]+)\/([^/]+)(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/(status))?$/
      .exec(pathname);
  if (core !== null) {
    const [, version, namespace, plural, name, sub] = core;
    return {
      resource: `/${version}/${plural}`,
      group: "",
      version: version!,
      plural: plural!,
      ...(namespace === undefined ? {} : { namespace }),
      ...(name === undefined ? {} : { name }),
      ...(sub === undefined ? {} : { sub }),
    };
  }
  if (named !== null) {
    const [, group, version, namespace, plural, name, sub] = named;
    return {
      resource: `${group}/${version}/${plural}`,
      group: group!,
      version: version!,
      plural: plural!,
      ...(namespace === undefined ? {} : { namespace }),
      ...(name === undefined ? {} : { name }),
      ...(sub === undefined ? {} : { sub }),
    };
  }
  return undefined;
}

function selectorOf(text: string | null): Map<string, string> {
  const selector = new Map<string, string>();
  for (const term of (text ?? "").split(",").filter((t) => t !== "")) {
    const [key, value] = term.split(/==?/);
    selector.set(key!.trim(), (value ?? "").trim());
  }
  return selector;
}

function matches(object: KubeObject, selector: ReadonlyMap<string, string>): boolean {
  const labels = object.metadata?.labels ?? {};
  for (const [key, value] of selector) if (labels[key] !== value) return false;
  return true;
}

const resourceOf = (key: Omit<ObjectKey, "name" | "namespace">) =>
  key.group === "" ? `/${key.version}/${key.plural}` : `${key.group}/${key.version}/${key.plural}`;

/** Starts the fake API server on a free port of 127.0.0.1. */
export function startFakeKubernetes(
  options: FakeKubernetesOptions = {},
): Promise<FakeKubernetes> {
  const maxWatchSeconds = options.maxWatchSeconds ?? 5;
  /** resource → namespace → name → object */
  const objects = new Map<string, Map<string, Map<string, KubeObject>>>();
  let history: WatchEvent[] = [];
  /** Events at or before this resource version are no longer kept. */
  let compactedAt = 0;
  let revision = 0;
  const watches = new Set<OpenWatch>();
  const requests: RecordedRequest[] = [];
  let interceptor: Interceptor | undefined;

  function bucket(resource: string, namespace: string): Map<string, KubeObject> {
    let byNamespace = objects.get(resource);
    if (byNamespace === undefined) objects.set(resource, byNamespace = new Map());
    let byName = byNamespace.get(namespace);
    if (byName === undefined) byNamespace.set(namespace, byName = new Map());
    return byName;
  }

  function emit(type: WatchEvent["type"], resource: string, namespace: string, object: KubeObject) {
    const event = {
      rv: Number(object.metadata.resourceVersion),
      type,
      resource,
      namespace,
      object,
    };
    history.push(event);
    for (const watch of watches) {
      if (
        watch.resource === resource &&
        (watch.namespace === undefined || watch.namespace === namespace) &&
        matches(object, watch.selector)
      ) watch.send(event);
    }
  }

  /** Stores an object (new resource version), or removes it when it is being deleted without finalizers. */
  function store(resource: string, namespace: string, object: KubeObject, created: boolean) {
    const byName = bucket(resource, namespace);
    object.metadata.resourceVersion = String(++revision);
    const finalizers: unknown[] = object.metadata.finalizers ?? [];
    if (object.metadata.deletionTimestamp !== undefined && finalizers.length === 0) {
      byName.delete(object.metadata.name);
      emit("DELETED", resource, namespace, object);
      return object;
    }
    byName.set(object.metadata.name, object);
    emit(created ? "ADDED" : "MODIFIED", resource, namespace, object);
    return object;
  }

  function create(
    resource: string,
    namespace: string,
    body: KubeObject,
    apiVersion: string,
    kind?: string,
  ) {
    const name = body.metadata?.name;
    if (typeof name !== "string" || name === "") {
      return status(422, "Invalid", "metadata.name: Required");
    }
    if (bucket(resource, namespace).has(name)) {
      return status(409, "AlreadyExists", `${resource} "${name}" already exists`);
    }
    const object: KubeObject = structuredClone(body);
    object.apiVersion ??= apiVersion;
    if (kind !== undefined) object.kind ??= kind;
    object.metadata = {
      ...object.metadata,
      namespace,
      uid: crypto.randomUUID(),
      generation: 1,
      creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    };
    delete object.metadata.deletionTimestamp;
    return json(store(resource, namespace, object, true), 201);
  }

  /** The update rules: status or main resource, generation, optimistic concurrency, deletion. */
  function update(
    resource: string,
    namespace: string,
    current: KubeObject,
    next: KubeObject,
    subresource: string | undefined,
    expectedVersion: string | undefined,
  ) {
    if (expectedVersion !== undefined && expectedVersion !== current.metadata.resourceVersion) {
      return status(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${resource} "${current.metadata.name}": the object has been ` +
          "modified; please apply your changes to the latest version and try again",
      );
    }
    let object: KubeObject;
    if (subresource === "status") {
      object = { ...structuredClone(current), status: next.status };
    } else {
      object = structuredClone(next);
      object.metadata = {
        ...next.metadata,
        name: current.metadata.name,
        namespace,
        uid: current.metadata.uid,
        creationTimestamp: current.metadata.creationTimestamp,
        generation: current.metadata.generation,
      };
      if (current.metadata.deletionTimestamp !== undefined) {
        object.metadata.deletionTimestamp = current.metadata.deletionTimestamp;
      } else delete object.metadata.deletionTimestamp;
      if ("status" in current) object.status = current.status;
      else delete object.status;
      if (JSON.stringify(current.spec) !== JSON.stringify(object.spec)) {
        object.metadata.generation = current.metadata.generation + 1;
      }
    }
    return json(store(resource, namespace, object, false), 200);
  }

  function json(body: unknown, code = 200): Response {
    return new Response(JSON.stringify(body), { status: code, headers: JSON_HEADERS });
  }

  function watch(
    resource: string,
    namespace: string | undefined,
    url: URL,
    selector: Map<string, string>,
  ): Response {
    const from = Number(url.searchParams.get("resourceVersion") ?? "0") || 0;
    const timeout = Math.min(
      Number(url.searchParams.get("timeoutSeconds") ?? maxWatchSeconds),
      maxWatchSeconds,
    );
    const encoder = new TextEncoder();
    let entry: OpenWatch | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        const line = (value: unknown) => {
          try {
            controller.enqueue(encoder.encode(`${JSON.stringify(value)}\n`));
          } catch { /* closed */ }
        };
        const finish = (cut: boolean) => {
          clearTimeout(timer);
          if (entry !== undefined) watches.delete(entry);
          try {
            if (cut) controller.error(new Error("watch cut off"));
            else controller.close();
          } catch { /* closed */ }
        };
        if (from !== 0 && from < compactedAt) {
          line({
            type: "ERROR",
            object: {
              kind: "Status",
              apiVersion: "v1",
              status: "Failure",
              message: `too old resource version: ${from} (${compactedAt})`,
              reason: "Expired",
              code: 410,
            },
          });
          finish(false);
          return;
        }
        const wanted = (event: WatchEvent) =>
          event.resource === resource &&
          (namespace === undefined || event.namespace === namespace) &&
          matches(event.object, selector);
        for (const event of history) {
          if (event.rv > from && wanted(event)) line({ type: event.type, object: event.object });
        }
        entry = {
          resource,
          namespace,
          selector,
          send: (event) => line({ type: event.type, object: event.object }),
          close: () => finish(true),
        };
        watches.add(entry);
        timer = setTimeout(() => finish(false), timeout * 1000);
      },
      cancel() {
        clearTimeout(timer);
        if (entry !== undefined) watches.delete(entry);
      },
    });
    return new Response(stream, { status: 200, headers: JSON_HEADERS });
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const route = parsePath(url.pathname);
    if (route === undefined) return status(404, "NotFound", `no route ${url.pathname}`);
    const { resource, namespace, name, sub } = route;
    const apiVersion = route.group === "" ? route.version : `${route.group}/${route.version}`;
    const method = request.method;
    const text = method === "GET" || method === "DELETE" ? "" : await request.text();
    let body: KubeObject | null = null;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        return status(400, "BadRequest", "the body is not JSON");
      }
    }
    const intercepted = await interceptor?.({ method, path: url.pathname, body });
    if (intercepted !== undefined) return intercepted;
    if (name === undefined) {
      if (method === "GET") {
        const selector = selectorOf(url.searchParams.get("labelSelector"));
        if (url.searchParams.get("watch") === "true") {
          return watch(resource, namespace, url, selector);
        }
        const items: KubeObject[] = [];
        for (const [ns, byName] of objects.get(resource) ?? []) {
          if (namespace !== undefined && ns !== namespace) continue;
          items.push(...[...byName.values()].filter((o) => matches(o, selector)));
        }
        items.sort((a, b) => String(a.metadata.name).localeCompare(String(b.metadata.name)));
        return json({
          kind: "List",
          apiVersion,
          metadata: { resourceVersion: String(revision) },
          items,
        });
      }
      if (method === "POST" && namespace !== undefined && body !== null) {
        return create(resource, namespace, body, apiVersion);
      }
      return status(405, "MethodNotAllowed", `${method} ${url.pathname}`);
    }
    if (namespace === undefined) {
      return status(404, "NotFound", "cluster-scoped objects are not served");
    }
    const current = bucket(resource, namespace).get(name);
    if (current === undefined) return status(404, "NotFound", `${resource} "${name}" not found`);
    switch (method) {
      case "GET":
        return json(current);
      case "PUT":
        if (body === null) return status(400, "BadRequest", "no body");
        return update(resource, namespace, current, body, sub, body.metadata?.resourceVersion);
      case "PATCH": {
        if (body === null) return status(400, "BadRequest", "no body");
        const type = request.headers.get("content-type") ?? "";
        let next: KubeObject;
        try {
          next = type.startsWith("application/json-patch+json")
            ? jsonPatch(current, body as unknown as KubeObject[])
            : mergePatch(structuredClone(current), body) as KubeObject;
        } catch (e) {
          return status(422, "Invalid", (e as Error).message);
        }
        const expected = Array.isArray(body) ? undefined : body.metadata?.resourceVersion;
        return update(resource, namespace, current, next, sub, expected);
      }
      case "DELETE": {
        if ((current.metadata.finalizers ?? []).length > 0) {
          if (current.metadata.deletionTimestamp !== undefined) return json(current);
          const next = structuredClone(current);
          next.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, "Z");
          return json(store(resource, namespace, next, false));
        }
        const next = structuredClone(current);
        next.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, "Z");
        store(resource, namespace, next, false);
        return json({ kind: "Status", apiVersion: "v1", status: "Success", code: 200 });
      }
    }
    return status(405, "MethodNotAllowed", `${method} ${url.pathname}`);
  }

  // A small HTTP/1.1 server over TCP rather than Deno.serve or node:http: cutting a watch must break its
  // connection off in the middle of the chunked body, which neither lets a handler do. One request per
  // connection (`connection: close`).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections = new Set<Deno.Conn>();
  const encoder = new TextEncoder();
  async function serveConnection(conn: Deno.Conn): Promise<void> {
    connections.add(conn);
    try {
      const request = await readRequest(conn);
      if (request === undefined) return;
      const response = await handle(request);
      requests.push({
        method: request.method,
        path: new URL(request.url).pathname,
        status: response.status,
        watch: new URL(request.url).searchParams.get("watch") === "true",
      });
      const head = `HTTP/1.1 ${response.status} X\r\ncontent-type: application/json\r\n` +
        "transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
      await writeAll(conn, encoder.encode(head));
      if (response.body !== null) {
        const reader = response.body.getReader();
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            await writeAll(conn, encoder.encode(`${value.length.toString(16)}\r\n`));
            await writeAll(conn, value);
            await writeAll(conn, encoder.encode("\r\n"));
          }
        } catch {
          return; // cut off: the connection closes without the last chunk
        }
      }
      await writeAll(conn, encoder.encode("0\r\n\r\n"));
    } catch {
      // the client went away
    } finally {
      connections.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }
  const accepting = (async () => {
    for await (const conn of listener) void serveConnection(conn);
  })().catch(() => {});
  const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;

  const fake: FakeKubernetes = {
    url,
    kubeconfig: (namespace) =>
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        `- name: fake\n  cluster:\n    server: ${url}\n    insecure-skip-tls-verify: true`,
        "users:",
        "- name: tester\n  user:\n    token: fake-token",
        "contexts:",
        `- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: ${namespace}`,
        "current-context: fake",
        "",
      ].join("\n"),
    get: (key) => {
      const found = bucket(resourceOf(key), key.namespace).get(key.name);
      return found === undefined ? undefined : structuredClone(found);
    },
    list: (key) =>
      [...bucket(resourceOf(key), key.namespace).values()].map((o) => structuredClone(o)).sort((
        a,
        b,
      ) => String(a.metadata.name).localeCompare(String(b.metadata.name))),
    put: (key, object) => {
      const resource = resourceOf(key);
      const current = bucket(resource, key.namespace).get(key.name);
      const next = structuredClone(object);
      next.metadata = {
        ...next.metadata,
        name: key.name,
        namespace: key.namespace,
        uid: current?.metadata.uid ?? next.metadata?.uid ?? crypto.randomUUID(),
        generation: next.metadata?.generation ?? current?.metadata.generation ?? 1,
        creationTimestamp: current?.metadata.creationTimestamp ??
          new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      };
      return structuredClone(store(resource, key.namespace, next, current === undefined));
    },
    get requests() {
      return requests;
    },
    compact: () => {
      history = [];
      compactedAt = revision;
    },
    cutWatches: () => {
      for (const w of [...watches]) w.close();
    },
    get openWatches() {
      return watches.size;
    },
    intercept: (next) => {
      interceptor = next;
    },
    close: async () => {
      for (const w of [...watches]) w.close();
      listener.close();
      for (const conn of [...connections]) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      await accepting;
    },
    async [Symbol.asyncDispose]() {
      await fake.close();
    },
  };
  return Promise.resolve(fake);
}
