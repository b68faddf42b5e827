/**
 * The systemd units of `deploy/systemd/` for the binaries on a VM: their settings against the code, and
 * `systemd-analyze verify` where it is installed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join, posix } from "node:path";
import {
  buildFacts,
  cleanupSeconds,
  commandWorks,
  graceSeconds,
  readmeVariables,
  readRepoFile,
  repoPath,
  SERVICES,
  unreadVariables,
} from "./_deploy.ts";

/** Variables for the runtime, not the service: where a self-extracting binary unpacks itself. */
const RUNTIME_VARIABLES = new Set(["XDG_DATA_HOME"]);

/** A unit file's `[Service]` settings, each key with all its values. */
async function serviceSection(service: string): Promise<Map<string, string[]>> {
  const text = await readRepoFile(`deploy/systemd/cr8tor-${service}.service`);
  const section = text.split(/^\[/m).find((s) => s.startsWith("Service]")) ?? "";
  const settings = new Map<string, string[]>();
  for (const line of section.split("\n").slice(1)) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (match === null) continue;
    settings.set(match[1]!, [...settings.get(match[1]!) ?? [], match[2]!]);
  }
  return settings;
}

function environmentOf(settings: Map<string, string[]>): Record<string, string> {
  return Object.fromEntries((settings.get("Environment") ?? []).map((e) => {
    const [name, ...value] = e.split("=");
    return [name!, value.join("=")];
  }));
}

Deno.test("deploy/systemd: every variable a unit sets is one its service reads and README documents", async () => {
  const documented = await readmeVariables();
  const problems: string[] = [];
  for (const service of SERVICES) {
    const env = environmentOf(await serviceSection(service));
    const serviceEnv = Object.fromEntries(
      Object.entries(env).filter(([name]) => !RUNTIME_VARIABLES.has(name)),
    );
    for (const name of await unreadVariables(service, serviceEnv)) {
      problems.push(`${service}: sets ${name}, which the service does not read`);
    }
    for (const name of Object.keys(serviceEnv).filter((n) => !documented.has(n))) {
      problems.push(`${service}: sets ${name}, which README.md's configuration table lacks`);
    }
  }
  assert.deepStrictEqual(problems, []);
});

Deno.test("deploy/systemd: units run the compiled binary unprivileged, sandboxed, with time to stop", async () => {
  const cleanup = cleanupSeconds();
  for (const service of SERVICES) {
    const settings = await serviceSection(service);
    const one = (key: string) => settings.get(key)?.at(-1);
    const env = environmentOf(settings);
    assert.equal(one("ExecStart"), `/opt/cr8tor/bin/cr8tor-${service}`);
    assert.ok(!["root", "0", undefined].includes(one("User")), `${service} runs as root`);
    assert.equal(one("NoNewPrivileges"), "yes", service);
    assert.equal(one("ProtectSystem"), "strict", service);
    assert.equal(one("CapabilityBoundingSet"), "", service);
    assert.equal(one("KillSignal") ?? "SIGTERM", "SIGTERM", service);
    assert.ok(
      Number(one("TimeoutStopSec")) >= graceSeconds(env) + cleanup,
      `${service}: TimeoutStopSec below SHUTDOWN_GRACE_SECONDS + ${cleanup} s`,
    );
    assert.equal(Number(env.PORT), (await buildFacts(service)).port, `${service}: PORT`);
    // With ProtectSystem=strict the service writes only its state directories and ReadWritePaths.
    const writable = [
      ...(one("StateDirectory") ?? "").split(/\s+/).filter(Boolean).map((d) => `/var/lib/${d}`),
      ...(one("ReadWritePaths") ?? "").split(/\s+/).filter(Boolean),
    ];
    const canWrite = (path: string) => writable.some((d) => path === d || path.startsWith(`${d}/`));
    if (env.AUDIT_LOG_PATH !== undefined) {
      assert.ok(canWrite(posix.dirname(env.AUDIT_LOG_PATH)), `${service}: audit trail read-only`);
    }
    for (const [name, base] of Object.entries(env)) {
      if (/^TARGET_STORAGE_ACCOUNT_.+_SDE_MNT_PATH$/.test(name)) {
        assert.ok(canWrite(base), `${service}: ${name} ${base} is read-only`);
      }
    }
    if (env.XDG_DATA_HOME !== undefined) assert.ok(canWrite(env.XDG_DATA_HOME), service);
  }
});

const ANALYZE = await commandWorks("systemd-analyze", ["--version"]);

Deno.test({
  name: ANALYZE
    ? "deploy/systemd: systemd-analyze verify accepts every unit without a warning"
    : "deploy/systemd: systemd-analyze verify accepts every unit (ignored: systemd-analyze is not installed)",
  ignore: !ANALYZE,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "cr8tor-units-" });
    try {
      for (const service of SERVICES) {
        // The binary is not installed here; verify checks that ExecStart exists.
        const unit = (await readRepoFile(`deploy/systemd/cr8tor-${service}.service`))
          .replace(/^ExecStart=.*$/m, "ExecStart=/bin/true");
        await Deno.writeTextFile(join(dir, `cr8tor-${service}.service`), unit);
      }
      const { code, stderr } = await new Deno.Command("systemd-analyze", {
        args: ["verify", ...SERVICES.map((s) => join(dir, `cr8tor-${s}.service`))],
        cwd: repoPath("."),
        stdout: "null",
        stderr: "piped",
      }).output();
      const warnings = new TextDecoder().decode(stderr).trim();
      assert.equal(code, 0, warnings);
      assert.equal(warnings, "");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
