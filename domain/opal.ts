/**
 * The OPAL naming and definition rules of the PostgreSQL destination: which project, group, user and
 * resources a published project gets in OPAL, what a resource's definition holds, and the password rule
 * OPAL enforces. Pure functions; the only randomness is `crypto.getRandomValues` in
 * {@link generateOpalPassword}.
 *
 * @module
 */
import { AppError } from "./errors.ts";
import { HOST_PATTERN, isSafeIdentifier } from "./names.ts";

/** The one OPAL user every published project's group contains (the reference's `dsuser_default`). */
export const OPAL_DATASHIELD_USER = "dsuser_default";

/** The resource provider of a PostgreSQL table: the `resourcer` R package. */
export const OPAL_RESOURCE_PROVIDER = "resourcer";

/** The resourcer factory for a SQL table. It is `sql`; there is no `sql-resource` factory. */
export const OPAL_RESOURCE_FACTORY = "sql";

/**
 * What OPAL accepts as a project name (`^[\w _-]+$`, with Java's ASCII `\w`): letters, digits, `_`, space
 * and `-`.
 */
export const OPAL_PROJECT_NAME_PATTERN = /^[A-Za-z0-9_ -]+$/;

/** The characters OPAL's password policy counts as special. */
export const OPAL_PASSWORD_SPECIALS = "@#$%^&+=!";

const LOWER = "abcdefghijklmnopqrstuvwxyz";
const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS = "0123456789";
const PASSWORD_MIN = 8;
const PASSWORD_MAX = 64;
const DEFAULT_PASSWORD_LENGTH = 24;

/** The OPAL group of a project: `{project}_group`. */
export function opalGroupName(project: string): string {
  return `${project}_group`;
}

/** The OPAL resource that exposes one PostgreSQL table: `tre_postgresql_{schema}_{table}`. */
export function opalResourceName(schema: string, table: string): string {
  return `tre_postgresql_${schema}_${table}`;
}

/** The table as the publish reply names it: `{schema}.{table}`. */
export function postgresqlTableName(schema: string, table: string): string {
  return `${schema}.${table}`;
}

/** Explains why OPAL would refuse `name` as a project name, or returns `undefined` when it is fine. */
export function opalProjectNameProblem(name: string): string | undefined {
  if (name.trim() === "") return "must not be empty or blank";
  if (!OPAL_PROJECT_NAME_PATTERN.test(name)) {
    return "must contain only ASCII letters, digits, '_', '-' and spaces";
  }
  return undefined;
}

/** A project name that OPAL would refuse; checked before anything is sent to OPAL. */
export class InvalidOpalProjectNameError extends AppError {
  readonly code = "invalid_opal_project_name";

  constructor(readonly projectName: string, problem: string) {
    super(`Cannot use "${projectName}" as an OPAL project name: ${problem}`);
  }
}

/** What a PostgreSQL table resource is built from. */
export interface OpalResourceInput {
  /** The OPAL project the resource belongs to. */
  readonly project: string;
  /** The table's schema in the destination database. */
  readonly schema: string;
  /** The table's name. */
  readonly table: string;
  /** The destination database host as OPAL's R server reaches it. */
  readonly host: string;
  /** The destination database port; a string must hold the decimal number. */
  readonly port: string | number;
  /** The destination database name. */
  readonly database: string;
  /** The read-only database user OPAL reads the table with. */
  readonly username: string;
  /** That user's password. Never appears in an error message. */
  readonly password: string;
}

/**
 * One resource reference, exactly as OPAL's `ResourceReferenceDto` is sent: `parameters` and
 * `credentials` are JSON documents serialized into strings, not nested objects.
 */
export interface OpalResourceDefinition {
  readonly project: string;
  readonly name: string;
  readonly description: string;
  readonly provider: string;
  readonly factory: string;
  /** JSON string: `{"driver":"postgresql","host",port (number),"db","schema","table"}`. */
  readonly parameters: string;
  /** JSON string: `{"username","password"}`. Holds a secret. */
  readonly credentials: string;
}

/** An input that cannot become a resource definition. The message never holds the password. */
export class InvalidOpalResourceError extends AppError {
  readonly code = "invalid_opal_resource";

  constructor(readonly resourceName: string, problem: string) {
    super(`Cannot define OPAL resource "${resourceName}": ${problem}`);
  }
}

/** Two tables would get the same OPAL resource name (e.g. `a_b`.`c` and `a`.`b_c`). */
export class OpalResourceNameClashError extends AppError {
  readonly code = "opal_resource_name_clash";

  constructor(readonly resourceName: string, readonly tables: readonly string[]) {
    super(
      `Cannot publish tables ${
        tables.map((t) => `"${t}"`).join(" and ")
      } to OPAL: both would become resource "${resourceName}"`,
    );
  }
}

/**
 * Builds the resource that exposes one PostgreSQL table through resourcer's `sql` factory, which OPAL
 * turns into the URL `postgresql://{host}:{port}/{database}/{schema}/{table}`. The port is sent as a
 * number, as the factory's form declares it.
 *
 * @throws {InvalidOpalResourceError} when a name, the host or the port is unusable, or a credential is
 *   empty.
 */
export function opalResourceDefinition(input: OpalResourceInput): OpalResourceDefinition {
  const name = opalResourceName(input.schema, input.table);
  const problem = resourceInputProblem(input);
  if (problem !== undefined) throw new InvalidOpalResourceError(name, problem);
  return {
    project: input.project,
    name,
    description: `Resource for table ${input.table} in schema ${input.schema}`,
    provider: OPAL_RESOURCE_PROVIDER,
    factory: OPAL_RESOURCE_FACTORY,
    parameters: JSON.stringify({
      driver: "postgresql",
      host: input.host,
      port: Number(input.port),
      db: input.database,
      schema: input.schema,
      table: input.table,
    }),
    credentials: JSON.stringify({ username: input.username, password: input.password }),
  };
}

function resourceInputProblem(input: OpalResourceInput): string | undefined {
  if (!isSafeIdentifier(input.schema)) {
    return `schema ${JSON.stringify(input.schema)} is not a safe name`;
  }
  if (!isSafeIdentifier(input.table)) {
    return `table ${JSON.stringify(input.table)} is not a safe name`;
  }
  if (!HOST_PATTERN.test(input.host)) {
    return `host ${JSON.stringify(input.host)} is not a host name`;
  }
  const port = typeof input.port === "number"
    ? input.port
    : /^[0-9]{1,5}$/.test(input.port.trim())
    ? Number(input.port)
    : Number.NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return `port ${JSON.stringify(input.port)} is not a number from 1 to 65535`;
  }
  if (input.database === "") return "the database name is empty";
  if (input.username === "") return "the read-only user name is empty";
  if (input.password === "") return "the read-only password is empty";
  return undefined;
}

/**
 * Explains why OPAL's password policy refuses `password`, or returns `undefined` when it accepts it. The
 * policy: 8 to 64 characters, no whitespace, and at least one digit, one lower-case letter, one upper-case
 * letter and one of `@#$%^&+=!`.
 */
export function opalPasswordProblem(password: string): string | undefined {
  if (password.length < PASSWORD_MIN) return `must have at least ${PASSWORD_MIN} characters`;
  if (password.length > PASSWORD_MAX) return `must have at most ${PASSWORD_MAX} characters`;
  if (/\s/.test(password)) return "must not contain whitespace";
  if (!/[0-9]/.test(password)) return "must contain a digit";
  if (!/[a-z]/.test(password)) return "must contain a lower-case letter";
  if (!/[A-Z]/.test(password)) return "must contain an upper-case letter";
  if (![...password].some((c) => OPAL_PASSWORD_SPECIALS.includes(c))) {
    return `must contain one of ${OPAL_PASSWORD_SPECIALS}`;
  }
  return undefined;
}

/**
 * Returns a random password that OPAL's policy always accepts: one character of each required class,
 * the rest drawn uniformly from all of them, shuffled.
 *
 * @param length 8 to 64 characters; 24 by default.
 * @throws {RangeError} when `length` is outside 8..64.
 */
export function generateOpalPassword(length: number = DEFAULT_PASSWORD_LENGTH): string {
  if (!Number.isInteger(length) || length < PASSWORD_MIN || length > PASSWORD_MAX) {
    throw new RangeError(
      `Cannot generate an OPAL password of length ${length}: must be ${PASSWORD_MIN} to ${PASSWORD_MAX}`,
    );
  }
  const all = LOWER + UPPER + DIGITS + OPAL_PASSWORD_SPECIALS;
  const chars = [LOWER, UPPER, DIGITS, OPAL_PASSWORD_SPECIALS].map(randomCharOf);
  while (chars.length < length) chars.push(randomCharOf(all));
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomIndex(i + 1);
    [chars[i], chars[j]] = [chars[j] as string, chars[i] as string];
  }
  return chars.join("");
}

function randomCharOf(alphabet: string): string {
  return alphabet[randomIndex(alphabet.length)] as string;
}

/** A uniform random integer in `[0, bound)`, by rejection sampling (no modulo bias). */
function randomIndex(bound: number): number {
  const limit = Math.floor(0x1_0000_0000 / bound) * bound;
  const buffer = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(buffer);
    const value = buffer[0] as number;
    if (value < limit) return value % bound;
  }
}
