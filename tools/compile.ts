/**
 * `deno task compile`: builds `dist/cr8tor-approval`, `dist/cr8tor-metadata` and `dist/cr8tor-publish`, each
 * with exactly the permissions of its `start:<service>` task in deno.json (one place for them). Offline,
 * set `DENORT_BIN` to a downloaded `denort` binary of the same Deno version; `deno compile` uses it instead
 * of downloading one.
 *
 * @module
 */
const SERVICES = ["approval", "metadata", "publish"] as const;

const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));

/** The `--allow-*` flags of a service's start task. */
export function permissionsOf(tasks: Record<string, string>, service: string): string[] {
  const task = tasks[`start:${service}`];
  if (task === undefined) throw new Error(`Cannot find task "start:${service}" in deno.json`);
  return task.split(/\s+/).filter((arg) => arg.startsWith("--allow-"));
}

if (import.meta.main) {
  await Deno.mkdir("dist", { recursive: true });
  for (const service of SERVICES) {
    const args = [
      "compile",
      ...permissionsOf(config.tasks, service),
      "--output",
      `dist/cr8tor-${service}`,
      `apps/${service}/main.ts`,
    ];
    const { code } = await new Deno.Command(Deno.execPath(), {
      args,
      stdout: "inherit",
      stderr: "inherit",
    })
      .output();
    if (code !== 0) Deno.exit(code);
  }
}
