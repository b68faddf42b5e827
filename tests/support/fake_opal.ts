/**
 * A fake OPAL server for tests: the slice of OPAL's REST API the publish flow uses, served over real HTTP
 * (or HTTPS) on 127.0.0.1 and an ephemeral port, behaving as `shared/reference/opal-api.md` §8 describes:
 * Basic / X-Opal-Auth login with 401 (and a ban after repeated failures), 403 for non-admin users, OPAL's
 * 400 / 404 / 409 cases, bare-array replies with empty fields left out, case-sensitive enum query
 * parameters (404 otherwise) and unknown query parameters ignored.
 *
 * Test hooks, in process: {@link FakeOpal.state}, {@link FakeOpal.requests}, {@link FakeOpal.seed},
 * {@link FakeOpal.reset}, {@link FakeOpal.failNext}, {@link FakeOpal.goDown} / {@link FakeOpal.comeUp};
 * and over HTTP, outside `/ws` and without auth: `GET /__fake__/state`, `GET /__fake__/requests`,
 * `POST /__fake__/reset`, `POST /__fake__/seed`, `POST /__fake__/fail` (`path` as a regex source).
 *
 * Its behaviour is written from the reference note, independently of the adapter under test.
 *
 * @module
 */

/** The version the fake claims in `X-Opal-Version`. */
export const FAKE_OPAL_VERSION = "5.7.4";

/** A user of OPAL's own realm ("subject credentials"). The fake keeps its password in clear. */
export interface FakeOpalUser {
  readonly authenticationType: "PASSWORD" | "CERTIFICATE";
  readonly password?: string;
  readonly groups: readonly string[];
  readonly enabled: boolean;
}

/** A project. Timestamps come from a logical clock that ticks on every change. */
export interface FakeOpalProject {
  readonly title: string;
  readonly description?: string;
  readonly created: string;
  readonly updated: string;
}

/** A resource reference, as stored. */
export interface FakeOpalResource {
  readonly description?: string;
  readonly provider: string;
  readonly factory: string;
  readonly parameters: string;
  readonly credentials?: string;
  readonly created: string;
  readonly updated: string;
}

/** One ACL row. */
export interface FakeOpalAcl {
  readonly node: string;
  readonly principal: string;
  readonly type: "USER" | "GROUP";
  readonly permission: string;
}

/** A snapshot of everything the fake holds, with sorted keys and lists so it compares by value. */
export interface FakeOpalState {
  readonly users: Readonly<Record<string, FakeOpalUser>>;
  /** Every group, with its members (derived from the users' groups), sorted. */
  readonly groups: Readonly<Record<string, readonly string[]>>;
  readonly projects: Readonly<Record<string, FakeOpalProject>>;
  /** project → resource name → resource. */
  readonly resources: Readonly<Record<string, Readonly<Record<string, FakeOpalResource>>>>;
  /** Sorted by node, type, principal, permission. */
  readonly acls: readonly FakeOpalAcl[];
}

/** One request the fake received, after it answered. */
export interface FakeOpalRequest {
  readonly method: string;
  /** The raw (still encoded) path, e.g. `/ws/project/my%20project`. */
  readonly path: string;
  /** The raw query string, without `?`. */
  readonly query: string;
  /** The parsed JSON body, the raw text when it is not JSON, or `undefined` when empty. */
  readonly body: unknown;
  /** The `Authorization` header as sent, or `undefined`. */
  readonly authorization: string | undefined;
  /** Who the request authenticated as, or `undefined`. */
  readonly authUser: string | undefined;
  readonly status: number;
}

/** Things to put into the fake directly, bypassing the API (and its password policy). */
export interface FakeOpalSeed {
  readonly users?: Readonly<
    Record<string, {
      readonly password?: string;
      readonly groups?: readonly string[];
      readonly enabled?: boolean;
      readonly authenticationType?: "PASSWORD" | "CERTIFICATE";
    }>
  >;
  /** Groups to create (empty unless users name them). */
  readonly groups?: readonly string[];
  readonly projects?: Readonly<
    Record<string, { readonly title?: string; readonly description?: string }>
  >;
  readonly resources?: Readonly<
    Record<
      string,
      Readonly<
        Record<string, {
          readonly provider: string;
          readonly factory: string;
          readonly parameters: string;
          readonly credentials?: string;
          readonly description?: string;
        }>
      >
    >
  >;
  readonly acls?: readonly FakeOpalAcl[];
}

/** A fault: the next matching requests get this answer (or a delay) instead of the real one. */
export interface FakeOpalFault {
  /** Upper-case method to match; any when omitted. */
  readonly method?: string;
  /** Matched against the decoded path (e.g. `/ws/project/a b/resources`); any when omitted. */
  readonly path?: RegExp | string;
  /** The status to answer; 500 by default. Ignored when `delayMs` is set without a status. */
  readonly status?: number;
  /** The body to answer; an OPAL error DTO for the status by default. */
  readonly body?: string;
  /** How many matching requests fail; 1 by default (`Infinity` until {@link FakeOpal.clearFaults}). */
  readonly times?: number;
  /** How many matching requests pass untouched before the fault starts (0 by default). */
  readonly after?: number;
  /**
   * Wait this long (or until the client gives up or the fake is disposed) before answering. Without a
   * `status`, the request is then handled normally.
   */
  readonly delayMs?: number;
}

/** How to start a fake. */
export interface FakeOpalOptions {
  /** The administrator (OPAL's ini realm); `administrator` / `password` by default. */
  readonly admin?: { readonly username: string; readonly password: string };
  /** Serve HTTPS with this PEM certificate and key. */
  readonly tls?: { readonly cert: string; readonly key: string } | undefined;
  /** Failed logins (per user name) that trigger a ban; 3 as in OPAL. 0 disables the ban. */
  readonly banAfterFailures?: number;
  /** How long failures are counted and a ban lasts; 300 000 ms as in OPAL. */
  readonly banMs?: number;
}

interface StoredUser {
  authenticationType: "PASSWORD" | "CERTIFICATE";
  password?: string;
  groups: Set<string>;
  enabled: boolean;
}

interface StoredProject {
  title: string;
  description?: string;
  created: string;
  updated: string;
}

interface StoredResource {
  description?: string;
  provider: string;
  factory: string;
  parameters: string;
  credentials?: string;
  created: string;
  updated: string;
}

interface ActiveFault {
  readonly fault: FakeOpalFault;
  skip: number;
  remaining: number;
}

interface Answer {
  readonly status: number;
  readonly body?: unknown;
  /** `error` answers use OPAL's error content type. */
  readonly kind?: "json" | "error" | "empty";
  readonly headers?: Record<string, string>;
}

interface Caller {
  readonly name: string;
  readonly admin: boolean;
}

type Params = Readonly<Record<string, string>>;
type Route = (ctx: RouteContext) => Answer | Promise<Answer>;

interface RouteContext {
  readonly request: Request;
  readonly url: URL;
  readonly params: Params;
  readonly body: unknown;
  readonly caller: Caller;
}

const ERROR_CONTENT_TYPE = "application/x-protobuf+json";
const PASSWORD_SPECIALS = "@#$%^&+=!";
const USER_TYPES = ["USER", "GROUP"];
const DATASHIELD_PERMISSIONS = ["DATASHIELD_USE", "DATASHIELD_ALL"];
const RESOURCES_PERMISSIONS = ["RESOURCES_VIEW", "RESOURCES_ALL"];
const EPOCH = Date.UTC(2025, 0, 1);

/** A fake OPAL server. Start with {@link FakeOpal.start}; dispose with `await using`. */
export class FakeOpal implements AsyncDisposable {
  readonly #admin: { readonly username: string; readonly password: string };
  readonly #tls: { readonly cert: string; readonly key: string } | undefined;
  readonly #banAfterFailures: number;
  readonly #banMs: number;
  readonly #routes: [method: string, pattern: string[], route: Route][] = [];
  readonly #disposed = new AbortController();
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #port = 0;

  #users = new Map<string, StoredUser>();
  #groups = new Set<string>();
  #projects = new Map<string, StoredProject>();
  #resources = new Map<string, Map<string, StoredResource>>();
  #acls: FakeOpalAcl[] = [];
  #log: FakeOpalRequest[] = [];
  #faults: ActiveFault[] = [];
  #failures = new Map<string, number[]>();
  #clock = 0;

  private constructor(options: FakeOpalOptions) {
    this.#admin = options.admin ?? { username: "administrator", password: "password" };
    this.#tls = options.tls;
    this.#banAfterFailures = options.banAfterFailures ?? 3;
    this.#banMs = options.banMs ?? 300_000;
    this.#defineRoutes();
  }

  /** Starts a fake on 127.0.0.1 and a free port. */
  static start(options: FakeOpalOptions = {}): Promise<FakeOpal> {
    const fake = new FakeOpal(options);
    fake.#listen(0);
    return Promise.resolve(fake);
  }

  /** The server address, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  get url(): string {
    return `${this.#tls === undefined ? "http" : "https"}://127.0.0.1:${this.#port}`;
  }

  /** The administrator's credentials. */
  get admin(): { readonly username: string; readonly password: string } {
    return this.#admin;
  }

  /** True while the server accepts connections. */
  get isUp(): boolean {
    return this.#server !== undefined;
  }

  /** A deep copy of the current state. */
  get state(): FakeOpalState {
    const users: Record<string, FakeOpalUser> = {};
    for (const [name, u] of sortedEntries(this.#users)) {
      users[name] = {
        authenticationType: u.authenticationType,
        ...(u.password === undefined ? {} : { password: u.password }),
        groups: [...u.groups].sort(),
        enabled: u.enabled,
      };
    }
    const groups: Record<string, string[]> = {};
    for (const group of [...this.#groups].sort()) groups[group] = this.#members(group);
    const projects: Record<string, FakeOpalProject> = {};
    for (const [name, p] of sortedEntries(this.#projects)) projects[name] = structuredClone(p);
    const resources: Record<string, Record<string, FakeOpalResource>> = {};
    for (const [project, byName] of sortedEntries(this.#resources)) {
      const copy: Record<string, FakeOpalResource> = {};
      for (const [name, r] of sortedEntries(byName)) copy[name] = structuredClone(r);
      resources[project] = copy;
    }
    return { users, groups, projects, resources, acls: sortAcls(this.#acls) };
  }

  /**
   * The URL OPAL would compute for a stored resource (resourcer `sql` factory), or `undefined` when the
   * resource or its parameters do not allow one.
   */
  computedResourceUrl(project: string, name: string): string | undefined {
    const resource = this.#resources.get(project)?.get(name);
    if (resource === undefined) return undefined;
    const computed = computedResource(name, resource);
    return typeof computed?.url === "string" ? computed.url : undefined;
  }

  /** Every request received so far, oldest first. */
  get requests(): readonly FakeOpalRequest[] {
    return this.#log.map((r) => structuredClone(r));
  }

  /** Forgets all requests received so far (state is kept). */
  clearRequests(): void {
    this.#log = [];
  }

  /** Empties the state, the request log, the faults and the login failures. */
  reset(): void {
    this.#users = new Map();
    this.#groups = new Set();
    this.#projects = new Map();
    this.#resources = new Map();
    this.#acls = [];
    this.#log = [];
    this.#faults = [];
    this.#failures = new Map();
  }

  /** Adds users, groups, projects, resources and ACLs directly (no password policy). */
  seed(seed: FakeOpalSeed): void {
    for (const group of seed.groups ?? []) this.#groups.add(group);
    for (const [name, u] of Object.entries(seed.users ?? {})) {
      const user: StoredUser = {
        authenticationType: u.authenticationType ?? "PASSWORD",
        groups: new Set(u.groups ?? []),
        enabled: u.enabled ?? true,
      };
      if (u.password !== undefined) user.password = u.password;
      this.#users.set(name, user);
      for (const g of user.groups) this.#groups.add(g);
    }
    for (const [name, p] of Object.entries(seed.projects ?? {})) {
      const now = this.#tick();
      const project: StoredProject = { title: p.title ?? name, created: now, updated: now };
      if (p.description !== undefined) project.description = p.description;
      this.#projects.set(name, project);
    }
    for (const [project, byName] of Object.entries(seed.resources ?? {})) {
      for (const [name, r] of Object.entries(byName)) {
        const now = this.#tick();
        this.#resourcesOf(project).set(
          name,
          withoutUndefined({ ...r, created: now, updated: now }),
        );
      }
    }
    for (const acl of seed.acls ?? []) {
      this.#setAcl(acl.node, acl.principal, acl.type, acl.permission);
    }
  }

  /** Makes the next matching requests fail (or stall); see {@link FakeOpalFault}. */
  failNext(fault: FakeOpalFault): void {
    this.#faults.push({ fault, skip: fault.after ?? 0, remaining: fault.times ?? 1 });
  }

  /** Removes every pending fault. */
  clearFaults(): void {
    this.#faults = [];
  }

  /** Stops listening: connections are refused until {@link comeUp}. State is kept. */
  async goDown(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    await server.shutdown();
  }

  /** Listens again on the same port. */
  comeUp(): Promise<void> {
    if (this.#server === undefined) this.#listen(this.#port);
    return Promise.resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#disposed.abort();
    await this.goDown();
  }

  /** Binds synchronously (`Deno.serve` listens before it returns). */
  #listen(port: number): void {
    const options = {
      hostname: "127.0.0.1",
      port,
      onListen: () => {},
      ...(this.#tls === undefined ? {} : { cert: this.#tls.cert, key: this.#tls.key }),
    };
    const server = Deno.serve(options, (request) => this.#handle(request));
    this.#server = server;
    this.#port = server.addr.port;
  }

  #tick(): string {
    this.#clock += 1;
    return new Date(EPOCH + this.#clock).toISOString();
  }

  // -------------------------------------------------------------------------------------------------------
  // Request handling

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const text = await request.text();
    if (url.pathname.startsWith("/__fake__/")) return this.#hook(request.method, url, text);

    let body: unknown = undefined;
    let bodyIsJson = true;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
        bodyIsJson = false;
      }
    }
    const authorization = request.headers.get("authorization") ?? undefined;
    let authUser: string | undefined;
    const answer = await (async (): Promise<Answer> => {
      const fault = this.#takeFault(request.method, decodePath(url.pathname));
      if (fault !== undefined) {
        if (fault.delayMs !== undefined) await this.#stall(fault.delayMs, request.signal);
        if (fault.delayMs === undefined || fault.status !== undefined) {
          const status = fault.status ?? 500;
          return fault.body !== undefined ? { status, body: fault.body, kind: "error" } : {
            status,
            body: errorDto(status, status >= 500 ? "InternalError" : "Error", []),
            kind: "error",
          };
        }
      }
      const login = this.#authenticate(request);
      if ("answer" in login) return login.answer;
      authUser = login.caller.name;
      if (!bodyIsJson) return errorAnswer(400, "BadRequest", ["The body is not JSON"]);
      return await this.#route(request, url, body, login.caller);
    })();
    this.#log.push({
      method: request.method,
      path: url.pathname,
      query: url.search.replace(/^\?/, ""),
      body,
      authorization,
      authUser,
      status: answer.status,
    });
    return toResponse(answer);
  }

  #takeFault(method: string, path: string): FakeOpalFault | undefined {
    for (const active of this.#faults) {
      const { fault } = active;
      if (active.remaining <= 0) continue;
      if (fault.method !== undefined && fault.method !== method) continue;
      if (fault.path !== undefined) {
        const matches = typeof fault.path === "string"
          ? path === fault.path
          : fault.path.test(path);
        if (!matches) continue;
      }
      if (active.skip > 0) {
        active.skip -= 1;
        continue;
      }
      active.remaining -= 1;
      return fault;
    }
    return undefined;
  }

  #stall(ms: number, clientGone: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const signals = [clientGone, this.#disposed.signal];
      const done = () => {
        clearTimeout(timer);
        for (const s of signals) s.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      for (const s of signals) s.addEventListener("abort", done);
      if (signals.some((s) => s.aborted)) done();
    });
  }

  /** Checks the credentials (OPAL §2.2-2.3): a caller, or the 400 / 401 answer. */
  #authenticate(request: Request): { caller: Caller } | { answer: Answer } {
    const header = request.headers.get("authorization");
    const unauthorized = { answer: errorAnswer(401, "Unauthorized", []) };
    if (header === null) return unauthorized;
    const match = /^(Basic|X-Opal-Auth)\s+(\S+)$/i.exec(header);
    if (match === null) return unauthorized;
    let decoded: string;
    try {
      decoded = new TextDecoder("utf-8", { fatal: true }).decode(
        Uint8Array.from(atob(match[2] as string), (c) => c.charCodeAt(0)),
      );
    } catch {
      return { answer: { status: 400, kind: "empty" } };
    }
    const colon = decoded.indexOf(":");
    if (colon < 0) return { answer: { status: 400, kind: "empty" } };
    const username = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    if (this.#isBanned(username)) return unauthorized;

    if (username === this.#admin.username && password === this.#admin.password) {
      return { caller: { name: username, admin: true } };
    }
    const user = this.#users.get(username);
    if (
      user !== undefined && user.enabled && user.authenticationType === "PASSWORD" &&
      user.password === password
    ) {
      return { caller: { name: username, admin: false } };
    }
    this.#recordFailure(username);
    return unauthorized;
  }

  #isBanned(username: string): boolean {
    if (this.#banAfterFailures <= 0) return false;
    const since = Date.now() - this.#banMs;
    const recent = (this.#failures.get(username) ?? []).filter((t) => t > since);
    this.#failures.set(username, recent);
    return recent.length >= this.#banAfterFailures;
  }

  #recordFailure(username: string): void {
    this.#failures.set(username, [...(this.#failures.get(username) ?? []), Date.now()]);
  }

  async #route(request: Request, url: URL, body: unknown, caller: Caller): Promise<Answer> {
    const segments = url.pathname.split("/").slice(1).map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
    if (segments[0] !== "ws") return { status: 404, kind: "empty" };
    const rest = segments.slice(1);
    for (const [method, pattern, route] of this.#routes) {
      if (method !== request.method || pattern.length !== rest.length) continue;
      const params: Record<string, string> = {};
      const matches = pattern.every((part, i) => {
        const value = rest[i] as string;
        if (part.startsWith(":")) {
          params[part.slice(1)] = value;
          return true;
        }
        return part === value;
      });
      if (!matches) continue;
      // `@NoAuthorization` endpoints answer any authenticated user; the rest need the administrator.
      const open = pattern.join("/") === "system/subject-profile/_current" ||
        (method === "GET" && pattern.join("/") === "projects");
      if (!caller.admin && !open) return errorAnswer(403, "Forbidden", []);
      return await route({ request, url, params, body, caller });
    }
    return { status: 404, kind: "empty" };
  }

  #hook(method: string, url: URL, text: string): Response {
    const json = (value: unknown) => toResponse({ status: 200, body: value });
    try {
      if (method === "GET" && url.pathname === "/__fake__/state") return json(this.state);
      if (method === "GET" && url.pathname === "/__fake__/requests") return json(this.requests);
      if (method === "POST" && url.pathname === "/__fake__/reset") {
        this.reset();
        return json({});
      }
      if (method === "POST" && url.pathname === "/__fake__/seed") {
        this.seed(JSON.parse(text) as FakeOpalSeed);
        return json({});
      }
      if (method === "POST" && url.pathname === "/__fake__/fail") {
        const fault = JSON.parse(text) as FakeOpalFault & { path?: string };
        this.failNext({
          ...fault,
          ...(fault.path === undefined ? {} : { path: new RegExp(fault.path) }),
        });
        return json({});
      }
    } catch (e) {
      return toResponse({ status: 400, body: { error: String(e) } });
    }
    return toResponse({ status: 404, kind: "empty" });
  }

  // -------------------------------------------------------------------------------------------------------
  // Endpoints (opal-api.md §8.3)

  #on(method: string, path: string, route: Route): void {
    this.#routes.push([method, path.split("/"), route]);
  }

  #defineRoutes(): void {
    this.#on("GET", "system/subject-profile/_current", ({ caller }) => ({
      status: 200,
      body: {
        principal: caller.name,
        realm: caller.admin ? "opal-ini-realm" : "opal-user-realm",
        created: new Date(EPOCH).toISOString(),
        lastUpdate: new Date(EPOCH).toISOString(),
        otpEnabled: false,
        otpRequired: false,
      },
    }));
    this.#on("DELETE", "auth/session/_current", () => ({ status: 200, kind: "empty" }));

    // Projects
    this.#on("GET", "projects", ({ caller }) => ({
      status: 200,
      body: caller.admin ? sortedEntries(this.#projects).map(([n, p]) => projectDto(n, p)) : [],
    }));
    this.#on("GET", "project/:P", ({ params }) => {
      const project = this.#projects.get(params.P as string);
      return project === undefined
        ? noSuchProject(params.P as string)
        : { status: 200, body: projectDto(params.P as string, project) };
    });
    this.#on("POST", "projects", ({ body, url, caller }) => {
      const dto = asObject(body);
      const name = dto.name;
      if (typeof name !== "string" || name === "") {
        return errorAnswer(400, "IllegalArgument", ["Project name is required"]);
      }
      if (!/^[\w _-]+$/.test(name)) {
        return errorAnswer(400, "IllegalArgument", ["Not a valid project name"]);
      }
      if (this.#projects.has(name)) {
        return errorAnswer(400, "IllegalArgument", ["Project already exists"]);
      }
      const now = this.#tick();
      const project: StoredProject = {
        title: typeof dto.title === "string" && dto.title !== "" ? dto.title : name,
        created: now,
        updated: now,
      };
      if (typeof dto.description === "string") project.description = dto.description;
      this.#projects.set(name, project);
      this.#setAcl(`/project/${name}`, caller.name, "USER", "PROJECT_ALL");
      return {
        status: 201,
        kind: "empty",
        headers: { location: `${url.origin}/ws/project/${encodeURIComponent(name)}` },
      };
    });
    this.#on("DELETE", "project/:P", ({ params }) => {
      const name = params.P as string;
      this.#projects.delete(name);
      this.#resources.delete(name);
      const node = `/project/${name}`;
      this.#acls = this.#acls.filter((a) => a.node !== node && !a.node.startsWith(`${node}/`));
      return { status: 200, kind: "empty" };
    });

    // Users ("subject credentials")
    this.#on("GET", "system/subject-credentials", () => ({
      status: 200,
      body: sortedEntries(this.#users).map(([n, u]) => userDto(n, u)),
    }));
    this.#on("GET", "system/subject-credential/:U", ({ params }) => {
      const user = this.#users.get(params.U as string);
      return user === undefined
        ? { status: 404, kind: "empty" }
        : { status: 200, body: userDto(params.U as string, user) };
    });
    this.#on("POST", "system/subject-credentials", ({ body }) => {
      const dto = asObject(body);
      const name = dto.name;
      const groups = stringList(dto.groups);
      if (typeof name !== "string" || name === "" || name === "*") {
        return errorAnswer(400, "IllegalArgument", ["Not a valid subject name"]);
      }
      if (groups === undefined || groups.some((g) => g === "" || g === "*")) {
        return errorAnswer(400, "IllegalArgument", ["Not a valid group name"]);
      }
      const type = dto.authenticationType;
      if (type !== "PASSWORD" && type !== "CERTIFICATE") {
        return errorAnswer(400, "IllegalArgument", ["An authentication type is required"]);
      }
      if (this.#users.has(name)) {
        return errorAnswer(409, "Conflict", ["Subject name must be unique"]);
      }
      const user: StoredUser = {
        authenticationType: type,
        groups: new Set(groups),
        enabled: typeof dto.enabled === "boolean" ? dto.enabled : true,
      };
      if (type === "PASSWORD") {
        const password = typeof dto.password === "string" ? dto.password : "";
        const weak = passwordPolicyError(password);
        if (weak !== undefined) return errorAnswer(400, weak, []);
        user.password = password;
      }
      this.#users.set(name, user);
      for (const g of user.groups) this.#groups.add(g);
      return { status: 200, kind: "empty" };
    });
    this.#on("PUT", "system/subject-credential/:U", ({ params, body }) => {
      const dto = asObject(body);
      const name = params.U as string;
      if (dto.name !== name) return { status: 400, kind: "empty" };
      const user = this.#users.get(name);
      if (user === undefined) return { status: 404, kind: "empty" };
      if (dto.authenticationType !== user.authenticationType) {
        return errorAnswer(400, "IllegalArgument", ["The authentication type cannot change"]);
      }
      const groups = stringList(dto.groups);
      if (groups === undefined || groups.some((g) => g === "" || g === "*")) {
        return errorAnswer(400, "IllegalArgument", ["Not a valid group name"]);
      }
      if (typeof dto.password === "string" && dto.password !== "") {
        const weak = passwordPolicyError(dto.password);
        if (weak !== undefined) return errorAnswer(400, weak, []);
        user.password = dto.password;
      }
      user.groups = new Set(groups);
      user.enabled = typeof dto.enabled === "boolean" ? dto.enabled : true;
      for (const g of user.groups) this.#groups.add(g);
      return { status: 200, kind: "empty" };
    });
    this.#on("DELETE", "system/subject-credential/:U", ({ params }) => {
      return this.#users.delete(params.U as string)
        ? { status: 200, kind: "empty" }
        : { status: 404, kind: "empty" };
    });

    // Groups
    this.#on("GET", "system/groups", () => ({
      status: 200,
      body: [...this.#groups].sort().map((g) => groupDto(g, this.#members(g))),
    }));
    this.#on("GET", "system/group/:G", ({ params }) => {
      const name = params.G as string;
      return this.#groups.has(name)
        ? { status: 200, body: groupDto(name, this.#members(name)) }
        : { status: 404, kind: "empty" };
    });
    this.#on("POST", "system/groups", ({ body }) => {
      const name = asObject(body).name;
      if (typeof name !== "string" || name === "" || name === "*") {
        return errorAnswer(400, "IllegalArgument", ["Not a valid group name"]);
      }
      if (this.#groups.has(name)) {
        return errorAnswer(409, "Conflict", ["Group name must be unique"]);
      }
      this.#groups.add(name);
      return { status: 200, kind: "empty" };
    });
    this.#on("DELETE", "system/group/:G", ({ params }) => {
      const name = params.G as string;
      this.#groups.delete(name);
      for (const user of this.#users.values()) user.groups.delete(name);
      return { status: 200, kind: "empty" };
    });

    // DataSHIELD permissions (node /datashield)
    this.#permissionRoutes(
      "system/permissions/datashield",
      () => "/datashield",
      DATASHIELD_PERMISSIONS,
    );

    // Resources
    this.#on("GET", "project/:P/resources", ({ params }) => {
      const project = params.P as string;
      if (!this.#projects.has(project)) return noSuchProject(project);
      return {
        status: 200,
        body: sortedEntries(this.#resources.get(project) ?? new Map<string, StoredResource>())
          .map(([name, r]) => resourceDto(project, name, r, false)),
      };
    });
    this.#on("GET", "project/:P/resource/:R", ({ params }) => {
      const project = params.P as string;
      if (!this.#projects.has(project)) return noSuchProject(project);
      const resource = this.#resources.get(project)?.get(params.R as string);
      if (resource === undefined) {
        return errorAnswer(404, "NoSuchResource", [project, params.R as string]);
      }
      return { status: 200, body: resourceDto(project, params.R as string, resource, true) };
    });
    this.#on("POST", "project/:P/resources", ({ params, body, url }) => {
      const project = params.P as string;
      if (!this.#projects.has(project)) return noSuchProject(project);
      const parsed = parseResource(project, body);
      if ("answer" in parsed) return parsed.answer;
      const now = this.#tick();
      this.#resourcesOf(project).set(parsed.name, {
        ...parsed.resource,
        created: now,
        updated: now,
      });
      return {
        status: 201,
        kind: "empty",
        headers: {
          location: `${url.origin}/ws/project/${encodeURIComponent(project)}/resource/${
            encodeURIComponent(parsed.name)
          }`,
        },
      };
    });
    this.#on("PUT", "project/:P/resource/:R", ({ params, body }) => {
      const project = params.P as string;
      if (!this.#projects.has(project)) return noSuchProject(project);
      const byName = this.#resources.get(project);
      const existing = byName?.get(params.R as string);
      if (byName === undefined || existing === undefined) {
        return errorAnswer(404, "NoSuchResource", [project, params.R as string]);
      }
      const parsed = parseResource(project, body);
      if ("answer" in parsed) return parsed.answer;
      byName.delete(params.R as string);
      byName.set(parsed.name, {
        ...parsed.resource,
        created: existing.created,
        updated: this.#tick(),
      });
      return { status: 200, kind: "empty" };
    });
    this.#on("DELETE", "project/:P/resource/:R", ({ params }) => {
      const project = params.P as string;
      this.#resources.get(project)?.delete(params.R as string);
      const node = `/project/${project}/resource/${params.R}`;
      this.#acls = this.#acls.filter((a) => a.node !== node);
      return { status: 204, kind: "empty" };
    });
    this.#on("DELETE", "project/:P/resources", ({ params, url }) => {
      const byName = this.#resources.get(params.P as string);
      const names = url.searchParams.getAll("names");
      if (byName !== undefined) {
        if (names.length === 0) byName.clear();
        for (const name of names) byName.delete(name);
      }
      return { status: 204, kind: "empty" };
    });

    // Permissions on every resource of a project (node /project/P/resources)
    this.#permissionRoutes(
      "project/:P/permissions/resources",
      (params) => `/project/${params.P}/resources`,
      RESOURCES_PERMISSIONS,
      (params) =>
        this.#projects.has(params.P as string) ? undefined : noSuchProject(params.P as string),
    );
  }

  /** GET / POST / DELETE of one permission node (opal-api.md §3.5, §3.7). */
  #permissionRoutes(
    path: string,
    nodeOf: (params: Params) => string,
    permissions: readonly string[],
    precondition: (params: Params) => Answer | undefined = () => undefined,
  ): void {
    this.#on("GET", path, ({ params, url }) => {
      const type = url.searchParams.get("type");
      if (type !== null && !USER_TYPES.includes(type)) return { status: 404, kind: "empty" };
      const refused = precondition(params);
      if (refused !== undefined) return refused;
      const node = nodeOf(params);
      const rows = this.#acls.filter((a) => a.node === node && (type === null || a.type === type));
      const bySubject = new Map<string, FakeOpalAcl[]>();
      for (const row of rows) {
        const key = `${row.type}\u0000${row.principal}`;
        bySubject.set(key, [...(bySubject.get(key) ?? []), row]);
      }
      return {
        status: 200,
        body: sortedEntries(bySubject).map(([, subjectRows]) => ({
          subject: { principal: subjectRows[0]?.principal, type: subjectRows[0]?.type },
          resource: node,
          actions: subjectRows.map((r) => r.permission),
          domain: "opal",
        })),
      };
    });
    this.#on("POST", path, ({ params, url }) => {
      const type = url.searchParams.get("type") ?? "USER";
      const permission = url.searchParams.get("permission");
      // JAX-RS converts enum query parameters before the method runs: a bad value is a 404.
      if (!USER_TYPES.includes(type)) return { status: 404, kind: "empty" };
      if (permission !== null && !permissions.includes(permission)) {
        return { status: 404, kind: "empty" };
      }
      const refused = precondition(params);
      if (refused !== undefined) return refused;
      const principals = url.searchParams.getAll("principal");
      if (principals.length === 0) return errorAnswer(400, "A principal is required.", []);
      if (permission === null) return errorAnswer(500, "NullPointerException", []);
      const node = nodeOf(params);
      for (const principal of principals) {
        this.#setAcl(node, principal, type as "USER" | "GROUP", permission);
      }
      return { status: 200, kind: "empty" };
    });
    this.#on("DELETE", path, ({ params, url }) => {
      const type = url.searchParams.get("type") ?? "USER";
      if (!USER_TYPES.includes(type)) return { status: 404, kind: "empty" };
      const refused = precondition(params);
      if (refused !== undefined) return refused;
      const principals = url.searchParams.getAll("principal");
      if (principals.length === 0) return errorAnswer(400, "A principal is required.", []);
      const node = nodeOf(params);
      this.#acls = this.#acls.filter((a) =>
        !(a.node === node && a.type === type && principals.includes(a.principal))
      );
      return { status: 200, kind: "empty" };
    });
  }

  /** Replaces the subject's rows on `node` with one row (OPAL's delete-then-add). */
  #setAcl(node: string, principal: string, type: "USER" | "GROUP", permission: string): void {
    this.#acls = this.#acls.filter((a) =>
      !(a.node === node && a.principal === principal && a.type === type)
    );
    this.#acls.push({ node, principal, type, permission });
  }

  #members(group: string): string[] {
    return [...this.#users].filter(([, u]) => u.groups.has(group)).map(([n]) => n).sort();
  }

  #resourcesOf(project: string): Map<string, StoredResource> {
    let byName = this.#resources.get(project);
    if (byName === undefined) {
      byName = new Map();
      this.#resources.set(project, byName);
    }
    return byName;
  }
}

// -----------------------------------------------------------------------------------------------------------
// DTOs and helpers

/** OPAL's password policy errors (opal-api.md §3.3), or `undefined` when the password passes. */
function passwordPolicyError(password: string): string | undefined {
  if (password.length < 8) return "PasswordLengthMin";
  if (password.length > 64) return "PasswordLengthMax";
  const strong = /[0-9]/.test(password) && /[a-z]/.test(password) && /[A-Z]/.test(password) &&
    [...password].some((c) => PASSWORD_SPECIALS.includes(c)) && !/\s/.test(password);
  return strong ? undefined : "PasswordTooWeak";
}

function parseResource(
  project: string,
  body: unknown,
): { name: string; resource: Omit<StoredResource, "created" | "updated"> } | { answer: Answer } {
  const dto = asObject(body);
  const { name, provider, factory, parameters } = dto;
  if (
    typeof name !== "string" || name === "" || typeof provider !== "string" ||
    typeof factory !== "string" || typeof parameters !== "string" || typeof dto.project !== "string"
  ) {
    return { answer: errorAnswer(400, "BadRequest", ["A required field is missing"]) };
  }
  if (dto.project !== project) {
    return { answer: errorAnswer(400, "IllegalArgument", [`Expected project name: ${project}`]) };
  }
  if (name === "*") return { answer: errorAnswer(400, "ReservedResourceName", [name]) };
  if (dto.credentials !== undefined && typeof dto.credentials !== "string") {
    return { answer: errorAnswer(400, "BadRequest", ["credentials must be a string"]) };
  }
  const resource: Omit<StoredResource, "created" | "updated"> = { provider, factory, parameters };
  if (typeof dto.description === "string") resource.description = dto.description;
  if (typeof dto.credentials === "string") resource.credentials = dto.credentials;
  return { name, resource };
}

function projectDto(name: string, p: StoredProject): Record<string, unknown> {
  return withoutEmpty({
    name,
    title: p.title,
    description: p.description,
    link: `/project/${name}`,
    archived: false,
    datasourceStatus: "NONE",
    timestamps: { created: p.created, lastUpdate: p.updated },
  });
}

function userDto(name: string, u: StoredUser): Record<string, unknown> {
  return withoutEmpty({
    name,
    authenticationType: u.authenticationType,
    groups: [...u.groups].sort(),
    enabled: u.enabled,
  });
}

function groupDto(name: string, members: string[]): Record<string, unknown> {
  return withoutEmpty({ name, subjectCredentials: members });
}

function resourceDto(
  project: string,
  name: string,
  r: StoredResource,
  withCredentials: boolean,
): Record<string, unknown> {
  return withoutEmpty({
    name,
    project,
    provider: r.provider,
    factory: r.factory,
    parameters: r.parameters,
    credentials: withCredentials ? r.credentials : undefined,
    description: r.description,
    created: r.created,
    updated: r.updated,
    editable: withCredentials,
    resource: computedResource(name, r),
  });
}

/** What a running R server would compute for resourcer's `sql` factory (opal-api.md §4). */
function computedResource(name: string, r: StoredResource): Record<string, unknown> | undefined {
  if (r.provider !== "resourcer" || r.factory !== "sql") return undefined;
  try {
    const p = JSON.parse(r.parameters) as Record<string, unknown>;
    const table = typeof p.schema === "string" && p.schema !== ""
      ? `${p.schema}/${p.table}`
      : p.table;
    return { name, url: `${p.driver}://${p.host}:${p.port}/${p.db}/${table}` };
  } catch {
    return undefined;
  }
}

function noSuchProject(name: string): Answer {
  return errorAnswer(404, "NoSuchProject", [name]);
}

function errorDto(code: number, status: string, args: readonly string[]): Record<string, unknown> {
  return { code, status, arguments: args };
}

function errorAnswer(code: number, status: string, args: readonly string[]): Answer {
  return { status: code, body: errorDto(code, status, args), kind: "error" };
}

function toResponse(answer: Answer): Response {
  const headers = new Headers({ "x-opal-version": FAKE_OPAL_VERSION, ...answer.headers });
  if (answer.kind === "empty" || answer.body === undefined) {
    return new Response(null, { status: answer.status, headers });
  }
  headers.set(
    "content-type",
    answer.kind === "error" ? ERROR_CONTENT_TYPE : "application/json",
  );
  const text = typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body);
  return new Response(text, { status: answer.status, headers });
}

/** Drops undefined values and empty arrays, recursively, as OPAL's JSON writer does. */
function withoutEmpty<T extends Record<string, unknown>>(value: T): T {
  const result: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
    result[key] = v !== null && typeof v === "object" && !Array.isArray(v)
      ? withoutEmpty(v as Record<string, unknown>)
      : v;
  }
  return result as T;
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function asObject(body: unknown): Record<string, unknown> {
  return body !== null && typeof body === "object" && !Array.isArray(body)
    ? body as Record<string, unknown>
    : {};
}

/** A list of strings; a missing key is an empty list; anything else is `undefined`. */
function stringList(value: unknown): string[] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) return undefined;
  return value as string[];
}

function decodePath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

function sortedEntries<V>(map: ReadonlyMap<string, V>): [string, V][] {
  return [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function sortAcls(acls: readonly FakeOpalAcl[]): FakeOpalAcl[] {
  const key = (a: FakeOpalAcl) => [a.node, a.type, a.principal, a.permission].join("\u0000");
  return acls.map((a) => ({ ...a })).sort((
    a,
    b,
  ) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}
