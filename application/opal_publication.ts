/**
 * Publishing PostgreSQL tables through OPAL / DataSHIELD (contract §4.6): the project, its group (made
 * through the `dsuser_default` user), the group's DataSHIELD use, one resource per table and the group's
 * view of them. Every step is idempotent, so a failed publish is finished by running it again.
 *
 * Unlike the reference, the user is added to the group even when the group already existed, a resource
 * whose definition changed (e.g. a rotated read-only password) is updated, stronger grants are kept, and
 * the password of a new `dsuser_default` always satisfies OPAL's policy.
 *
 * @module
 */
import { AppError } from "../domain/errors.ts";
import { projectIdentifier } from "../domain/names.ts";
import {
  generateOpalPassword,
  InvalidOpalProjectNameError,
  OPAL_DATASHIELD_USER,
  opalGroupName,
  opalProjectNameProblem,
  type OpalResourceDefinition,
  opalResourceDefinition,
  OpalResourceNameClashError,
  postgresqlTableName,
} from "../domain/opal.ts";
import type { OpalClient } from "../ports/opal_client.ts";

/** One table to expose. */
export interface OpalPublicationTable {
  readonly schema: string;
  readonly table: string;
}

/** What to publish: the tables of one project, and how OPAL's R server reads them. */
export interface OpalPublication {
  /** The CR8TOR project name; the OPAL project is its `projectIdentifier` (`domain/names.ts`). */
  readonly project: string;
  readonly tables: readonly OpalPublicationTable[];
  /** The destination database as OPAL reaches it. */
  readonly database: {
    readonly host: string;
    readonly port: string | number;
    readonly database: string;
  };
  /** The read-only database user the resources carry as credentials. */
  readonly readOnly: { readonly username: string; readonly password: string };
}

/** One item of `data_published` for a PostgreSQL destination (contract §2.3.3). */
export interface OpalPublishedTable {
  /** `{schema}.{table}` */
  readonly postgresql_table_name: string;
  /** `tre_postgresql_{schema}_{table}` */
  readonly opal_resource_name: string;
  /** The project's `projectIdentifier`. */
  readonly opal_project_name: string;
  /** `{opal_project_name}_group` */
  readonly opal_group_name: string;
}

/** One OPAL step of a publish failed; the message names the step, the cause is the port's error. */
export class OpalStepFailedError extends AppError {
  readonly code = "opal_step_failed";

  /**
   * @param step what was being done, e.g. `create resource tre_postgresql_s_t`.
   * @param cause the error the step raised (an `OpalError` from the port, usually).
   * @param secrets values to scrub from the message, whatever the cause's message holds.
   */
  constructor(readonly step: string, cause: unknown, secrets: readonly string[] = []) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`Cannot publish to OPAL: step "${step}" failed: ${redact(reason, secrets)}`, { cause });
  }
}

/**
 * Publishes `publication.tables` through OPAL, in this order: check the login; create the project (named
 * by the project's `projectIdentifier`, e.g. `cr8tor_demo_project_1a2b3c4d` for `CR8TOR Demo Project`);
 * add `dsuser_default` to `{identifier}_group` (creating either as needed); grant the group DataSHIELD use; create
 * or update one resource per table, sorted by schema then table; grant the group view of the project's
 * resources. Names and definitions are checked before OPAL is called. Running it again after a failure,
 * or after success, reaches the same OPAL state.
 *
 * @returns one item per distinct table, sorted by `postgresql_table_name`.
 * @throws {InvalidOpalProjectNameError} when OPAL would refuse the project name (nothing is sent).
 * @throws {InvalidOpalResourceError} when a table or the database settings cannot define a resource.
 * @throws {OpalResourceNameClashError} when two tables would share a resource name.
 * @throws {OpalStepFailedError} when an OPAL step fails; the steps before it stay done.
 */
export async function publishToOpal(
  client: OpalClient,
  publication: OpalPublication,
): Promise<OpalPublishedTable[]> {
  const project = projectIdentifier(publication.project);
  const problem = opalProjectNameProblem(project);
  if (problem !== undefined) throw new InvalidOpalProjectNameError(project, problem);
  const group = opalGroupName(project);
  const tables = distinctSortedTables(publication.tables);
  const definitions = tables.map((t) =>
    opalResourceDefinition({
      project,
      schema: t.schema,
      table: t.table,
      host: publication.database.host,
      port: publication.database.port,
      database: publication.database.database,
      username: publication.readOnly.username,
      password: publication.readOnly.password,
    })
  );
  assertNoNameClash(tables, definitions);

  const newUserPassword = generateOpalPassword();
  const secrets = [publication.readOnly.password, newUserPassword];
  async function step(name: string, run: () => Promise<unknown>): Promise<void> {
    try {
      await run();
    } catch (e) {
      throw new OpalStepFailedError(name, e, secrets);
    }
  }

  await step("check the OPAL login", () => client.checkReady());
  await step(`create project ${project}`, () => client.ensureProject(project));
  await step(
    `add user ${OPAL_DATASHIELD_USER} to group ${group}`,
    () => client.ensureUserInGroup(OPAL_DATASHIELD_USER, group, newUserPassword),
  );
  await step(`grant DataSHIELD use to group ${group}`, () => client.ensureDatashieldUse(group));
  for (const definition of definitions) {
    await step(`create resource ${definition.name}`, () => client.ensureResource(definition));
  }
  await step(
    `grant group ${group} view of the resources of project ${project}`,
    () => client.ensureResourcesView(project, group),
  );

  return tables.map((t, i) => ({
    postgresql_table_name: postgresqlTableName(t.schema, t.table),
    opal_resource_name: (definitions[i] as OpalResourceDefinition).name,
    opal_project_name: project,
    opal_group_name: group,
  }));
}

/** The tables without repeats, sorted by `schema.table` (code-unit order, independent of locale). */
function distinctSortedTables(tables: readonly OpalPublicationTable[]): OpalPublicationTable[] {
  const byName = new Map<string, OpalPublicationTable>();
  for (const t of tables) {
    byName.set(postgresqlTableName(t.schema, t.table), { schema: t.schema, table: t.table });
  }
  return [...byName].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, t]) => t);
}

function assertNoNameClash(
  tables: readonly OpalPublicationTable[],
  definitions: readonly OpalResourceDefinition[],
): void {
  const seen = new Map<string, string>();
  definitions.forEach((definition, i) => {
    const table = tables[i] as OpalPublicationTable;
    const tableName = postgresqlTableName(table.schema, table.table);
    const earlier = seen.get(definition.name);
    if (earlier !== undefined) {
      throw new OpalResourceNameClashError(definition.name, [earlier, tableName]);
    }
    seen.set(definition.name, tableName);
  });
}

function redact(text: string, secrets: readonly string[]): string {
  let result = text;
  for (const secret of secrets) {
    if (secret.length >= 4) result = result.replaceAll(secret, "***");
  }
  return result;
}
