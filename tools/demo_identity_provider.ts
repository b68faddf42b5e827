/**
 * A DEMO OpenID provider for trying the dashboard locally and for the browser tests: `oidc-provider` on
 * 127.0.0.1 only, with the authorization code flow and PKCE, a small sign-in page of its own marked DEMO,
 * and {@link DEMO_PEOPLE} (one per role of {@link DEMO_APPROVAL_POLICY}), all with the password
 * {@link DEMO_PASSWORD}. It is not an identity provider for real use: the password is public, its
 * signing key is made at start and lost at exit, and everything is kept in memory.
 *
 * ID tokens carry `preferred_username`, `name` and the roles in `realm_access.roles` (the service's
 * `OIDC_ROLES_CLAIM` default).
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair } from "jose";

/** A demo person: the login name to type, a display name and roles. */
export interface DemoPerson {
  readonly login: string;
  readonly name: string;
  readonly roles: readonly string[];
}

/**
 * The demo people, one per role of {@link DEMO_APPROVAL_POLICY} (two output checkers), and one holding two
 * roles, who may fill only one approval type per gate (separation of duties).
 */
export const DEMO_PEOPLE: readonly DemoPerson[] = [
  { login: "igor", name: "Igor (DEMO information governance)", roles: ["ig-approver"] },
  { login: "dana", name: "Dana (DEMO data engineer)", roles: ["data-engineer"] },
  { login: "olive", name: "Olive (DEMO output checker)", roles: ["output-checker"] },
  { login: "oscar", name: "Oscar (DEMO output checker)", roles: ["output-checker"] },
  { login: "rita", name: "Rita (DEMO researcher)", roles: ["researcher"] },
  { login: "otto", name: "Otto (DEMO operator)", roles: ["operator"] },
  {
    login: "sam",
    name: "Sam (DEMO holds two roles: separation of duties)",
    roles: ["ig-approver", "data-engineer"],
  },
];

/** Every demo person's password. */
export const DEMO_PASSWORD = "demo";

/** The demo approval policy: sign-off before package, two output checkers before publish, on `LSC`. */
export const DEMO_APPROVAL_POLICY = {
  approval_types: {
    INFORMATION_GOVERNANCE: { roles: ["ig-approver"] },
    DATA_ENGINEER: { roles: ["data-engineer"] },
    OUTPUT_CHECKER: { roles: ["output-checker"] },
  },
  gates: [
    {
      name: "sign_off",
      before: "package",
      require: { INFORMATION_GOVERNANCE: 1, DATA_ENGINEER: 1 },
    },
    { name: "disclosure", before: "publish", require: { OUTPUT_CHECKER: 2 } },
  ],
  separation_of_duties: true,
  approval_max_age_days: 30,
  destinations: ["LSC"],
} as const;

/** The dashboard's client id at the demo provider (a public client: PKCE, no secret). */
export const DEMO_UI_CLIENT_ID = "cr8tor-dashboard";

/** A running demo provider. */
export interface DemoIdentityProvider extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`. */
  readonly issuer: string;
}

/**
 * Starts the demo provider on 127.0.0.1 (`port` 0: a free one) for a dashboard whose callback is
 * `redirectUri`.
 */
export async function startDemoIdentityProvider(
  options: { redirectUris: readonly string[]; port?: number },
): Promise<DemoIdentityProvider> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const signingJwk = {
    ...(await exportJWK(privateKey)),
    kid: "demo-key",
    alg: "RS256",
    use: "sig",
  };
  const route: { handler?: (...args: unknown[]) => void } = {};
  const server: Server = createServer((req, res) => {
    const uid = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(req.url ?? "")?.[1];
    if (uid === undefined) return route.handler?.(req, res);
    signInPage(req, res).catch(() => {
      res.statusCode = 400;
      res.end("This sign-in has expired; start again from the dashboard.");
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const people = new Map(DEMO_PEOPLE.map((person) => [person.login, person]));
  const Provider = await loadOidcProvider();
  const provider = new Provider(issuer, {
    clients: [{
      client_id: DEMO_UI_CLIENT_ID,
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code"],
      response_types: ["code"],
      redirect_uris: [...options.redirectUris],
    }],
    features: { devInteractions: { enabled: false } },
    interactions: {
      url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
    },
    pkce: { required: () => true },
    jwks: { keys: [signingJwk] },
    claims: { openid: ["sub"], profile: ["preferred_username", "name", "realm_access"] },
    conformIdTokenClaims: false,
    // The demo dashboard is a first-party client: no consent screen.
    loadExistingGrant: async (ctx: { oidc: Record<string, unknown> }) => {
      const oidc = ctx.oidc as {
        client: { clientId: string };
        session: { accountId: string };
        provider: { Grant: new (init: object) => GrantLike };
      };
      const grant = new oidc.provider.Grant({
        clientId: oidc.client.clientId,
        accountId: oidc.session.accountId,
      });
      grant.addOIDCScope("openid profile");
      await grant.save();
      return grant;
    },
    findAccount: (_ctx: unknown, id: string) => {
      const person = people.get(id);
      if (person === undefined) return undefined;
      return {
        accountId: id,
        claims: () => ({
          sub: id,
          preferred_username: person.name,
          name: person.name,
          realm_access: { roles: [...person.roles] },
        }),
      };
    },
    ttl: { IdToken: 600, AccessToken: 600, Session: 3600, Interaction: 600, Grant: 3600 },
  });
  route.handler = provider.callback() as (...args: unknown[]) => void;

  /** The DEMO sign-in page (GET) and its form (POST): a demo person's login and the demo password. */
  async function signInPage(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    if (req.method === "POST") {
      let text = "";
      for await (const chunk of req) {
        text += chunk;
        if (text.length > 4096) throw new Error("too long");
      }
      const form = new URLSearchParams(text);
      const login = form.get("login") ?? "";
      if (people.has(login) && form.get("password") === DEMO_PASSWORD) {
        await provider.interactionFinished(req, res, { login: { accountId: login } }, {
          mergeWithLastSubmission: false,
        });
        return;
      }
      return page(res, 401, details.uid, "Unknown demo person or wrong password.");
    }
    return page(res, 200, details.uid, null);
  }
  return {
    issuer,
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(res: ServerResponse, status: number, uid: string, error: string | null): void {
  const rows = DEMO_PEOPLE.map((p) =>
    `<tr><td><code>${escapeHtml(p.login)}</code></td><td>${escapeHtml(p.name)}</td><td>${
      escapeHtml(p.roles.join(", "))
    }</td></tr>`
  ).join("");
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy":
      "default-src 'none'; form-action 'self' http://127.0.0.1:*; frame-ancestors 'none'",
    "cache-control": "no-store",
  });
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>DEMO sign-in</title></head>
<body><main><h1>DEMO identity provider</h1>
<p><strong>DEMO ONLY: not for real people or data.</strong> Every demo person's password is
<code>${DEMO_PASSWORD}</code>.</p>
${error === null ? "" : `<p role="alert"><strong>${escapeHtml(error)}</strong></p>`}
<form method="post" action="/interaction/${escapeHtml(uid)}">
<p><label for="login">Login</label> <input id="login" name="login" required autocomplete="off"></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password" required></p>
<p><button type="submit">Sign in</button></p></form>
<table><caption>Demo people</caption><thead><tr><th scope="col">Login</th><th scope="col">Name</th>
<th scope="col">Roles</th></tr></thead><tbody>${rows}</tbody></table></main></body></html>`);
}

interface GrantLike {
  addOIDCScope(scope: string): void;
  save(): Promise<string>;
}

/** The line oidc-provider prints, when its module is loaded, on any runtime but Node.js LTS. */
const UNSUPPORTED_RUNTIME_WARNING = "oidc-provider WARNING: Unsupported runtime.";

/**
 * Loads oidc-provider without its "Unsupported runtime" warning: it prints it for every runtime but
 * Node.js LTS, Deno included, although this demo provider (and the tests' identity providers, on
 * the same package) run on Deno. Only that exact line is held back, only while the module loads; any
 * other warning still goes to the console.
 */
async function loadOidcProvider(): Promise<typeof import("oidc-provider").default> {
  // deno-lint-ignore no-console
  const warn = console.warn;
  // deno-lint-ignore no-console
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === "string" && args[0].startsWith(UNSUPPORTED_RUNTIME_WARNING)) return;
    warn(...args);
  };
  try {
    return (await import("oidc-provider")).default;
  } finally {
    // deno-lint-ignore no-console
    console.warn = warn;
  }
}
