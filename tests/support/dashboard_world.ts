/**
 * A dashboard served over HTTP on 127.0.0.1 for the browser tests: the gateway (with the demo approval
 * policy, an in-memory release store and the dashboard) over the in-process publish and metadata apps of a
 * {@link FakeWorld}, and the DEMO identity provider.
 *
 * @module
 */
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { MemoryReleaseStore } from "../../adapters/memory/memory_release_store.ts";
import { OidcLogin } from "../../adapters/oidc/oidc_login.ts";
import { personVerifierFromEnv } from "../../apps/_shared/person_verifier_from_env.ts";
import { parseApprovalPolicy } from "../../domain/approval_policy.ts";
import {
  DEMO_APPROVAL_POLICY,
  DEMO_UI_CLIENT_ID,
  type DemoIdentityProvider,
  startDemoIdentityProvider,
} from "../../tools/demo_identity_provider.ts";
import type { UploadQuarantine } from "../../adapters/filesystem/upload_quarantine.ts";
import { DEFAULT_UPLOAD_LIMITS } from "../../domain/upload_files.ts";
import { APPROVAL_KEY, FakeWorld } from "./apps.ts";
import { aTransferRequest, postJson } from "./requests.ts";

/** A served dashboard; see the module documentation. */
export interface DashboardWorld extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`. */
  readonly baseUrl: string;
  readonly world: FakeWorld;
  readonly store: MemoryReleaseStore;
  readonly idp: DemoIdentityProvider;
  /** POSTs to the gateway's API with its key, as the CLI does. */
  api(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  /** GETs from the gateway's API with its key. */
  get(path: string): Promise<Response>;
  /** Asks to package the test project (`aTransferRequest`), as the CLI does; the reply's status and body. */
  packageProject(): Promise<{ status: number; body: Record<string, unknown> }>;
}

/** Options of {@link startDashboardWorld}. */
export interface DashboardWorldOptions {
  /** Turns uploads on (`docs/uploads.md`) with this quarantine, the default limits and PATCH size. */
  readonly uploads?: { readonly quarantine: UploadQuarantine; readonly chunkBytes?: number };
}

/** Starts a {@link DashboardWorld}. */
export async function startDashboardWorld(
  options: DashboardWorldOptions = {},
): Promise<DashboardWorld> {
  const served: { fetch?: (request: Request) => Response | Promise<Response> } = {};
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => served.fetch?.(request) ?? new Response("starting", { status: 503 }),
  );
  const baseUrl = `http://127.0.0.1:${server.addr.port}`;
  const idp = await startDemoIdentityProvider({ redirectUris: [`${baseUrl}/ui/callback`] });
  const verifier = personVerifierFromEnv({
    OIDC_ISSUER_URL: idp.issuer,
    OIDC_AUDIENCE: DEMO_UI_CLIENT_ID,
  });
  if (verifier === undefined) throw new Error("no verifier");
  const world = new FakeWorld();
  world.audit = new MemoryAuditTrail();
  const store = new MemoryReleaseStore();
  const app = world.approvalApp({
    gates: {
      // Operators may revoke (`docs/revocation.md`), so that the pages show the Revoke form.
      policy: parseApprovalPolicy({ ...DEMO_APPROVAL_POLICY, revocation_roles: ["operator"] }),
      store,
      verifier,
    },
    dashboard: {
      login: new OidcLogin({
        issuerUrl: idp.issuer,
        clientId: DEMO_UI_CLIENT_ID,
        redirectUri: `${baseUrl}/ui/callback`,
      }),
      baseUrl,
      sessionTtlMs: 60 * 60_000,
      operatorRoles: ["operator"],
      uploads: options.uploads === undefined ? undefined : {
        ...options.uploads,
        limits: DEFAULT_UPLOAD_LIMITS,
        destinations: [...DEMO_APPROVAL_POLICY.destinations],
      },
    },
  });
  served.fetch = (request) => app.fetch(request);
  async function api(
    path: string,
    body: unknown,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    return await app.request(postJson(path, body, APPROVAL_KEY, headers));
  }
  return {
    baseUrl,
    world,
    store,
    idp,
    api,
    async get(path) {
      return await app.request(`http://test.local${path}`, {
        headers: { "x-api-key": APPROVAL_KEY },
      });
    },
    async packageProject() {
      const response = await api("/project/package", aTransferRequest());
      return { status: response.status, body: await response.json() };
    },
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      await idp[Symbol.asyncDispose]();
      world[Symbol.dispose]();
    },
  };
}
