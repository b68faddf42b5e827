/**
 * People's sign-in from the environment (`OIDC_*`): an {@link OidcPersonVerifier}, or none when
 * `OIDC_ISSUER_URL` is unset (then no route takes a person's token).
 *
 * @module
 */
import { z } from "zod";
import {
  isAllowedIdentityProviderUrl,
  OIDC_DEFAULTS,
  OidcPersonVerifier,
} from "../../adapters/oidc/oidc_person_verifier.ts";
import type { PersonVerifier } from "../../ports/identity.ts";
import { parseEnv } from "./config.ts";

/** The `OIDC_*` variables. */
export const OidcEnv = z.object({
  /** The issuer; its discovery document is `<issuer>/.well-known/openid-configuration`. */
  OIDC_ISSUER_URL: z.string().optional().refine(
    (value) =>
      value === undefined || URL.canParse(value) && isAllowedIdentityProviderUrl(new URL(value)),
    { error: "must be an https URL (plain http only to a loopback host)" },
  ),
  /** The audience people's tokens must name (`aud`); required with `OIDC_ISSUER_URL`. */
  OIDC_AUDIENCE: z.string().min(1).optional(),
  /** Dotted path to the roles array in the token. */
  OIDC_ROLES_CLAIM: z.string().regex(/^[^.\s]+(\.[^.\s]+)*$/, {
    error: "must be a claim name or a dotted path such as realm_access.roles",
  }).default(OIDC_DEFAULTS.rolesClaim),
  /** The claim holding a person's stable id. */
  OIDC_ID_CLAIM: z.string().regex(/^\S+$/, { error: "must be a claim name" }).default(
    OIDC_DEFAULTS.idClaim,
  ),
  /** Comma-separated claims tried in order for a person's display name. */
  OIDC_NAME_CLAIMS: z.string().default(OIDC_DEFAULTS.nameClaims.join(",")).transform((value) =>
    value.split(",").map((claim) => claim.trim()).filter((claim) => claim !== "")
  ),
  /** Tolerance on `exp` and `nbf`, in seconds. */
  OIDC_CLOCK_SKEW_SECONDS: z.coerce.number<unknown>().int().min(0).max(300).default(
    OIDC_DEFAULTS.clockSkewSeconds,
  ),
}).refine((env) => env.OIDC_ISSUER_URL === undefined || env.OIDC_AUDIENCE !== undefined, {
  path: ["OIDC_AUDIENCE"],
  error: "must be set when OIDC_ISSUER_URL is set",
});

/**
 * The verifier of people's tokens the environment configures, or `undefined` without `OIDC_ISSUER_URL`.
 * Fetches nothing: the issuer's keys are fetched on the first token.
 *
 * @throws {ConfigError} An `OIDC_*` variable is invalid, or `OIDC_AUDIENCE` is missing beside
 *   `OIDC_ISSUER_URL`; the message names the variable.
 */
export function personVerifierFromEnv(
  env: Record<string, string | undefined>,
): PersonVerifier | undefined {
  const config = parseEnv(OidcEnv, env);
  if (config.OIDC_ISSUER_URL === undefined || config.OIDC_AUDIENCE === undefined) return undefined;
  return new OidcPersonVerifier({
    issuerUrl: config.OIDC_ISSUER_URL,
    audience: config.OIDC_AUDIENCE,
    rolesClaim: config.OIDC_ROLES_CLAIM,
    idClaim: config.OIDC_ID_CLAIM,
    nameClaims: config.OIDC_NAME_CLAIMS,
    clockSkewSeconds: config.OIDC_CLOCK_SKEW_SECONDS,
  });
}
