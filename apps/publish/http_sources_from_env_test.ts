import assert from "node:assert/strict";
import { join } from "node:path";
import { MemorySecretStore } from "../../adapters/memory/memory_secret_store.ts";
import { ConfigError } from "../_shared/app_errors.ts";
import { memoryLogger } from "../_shared/log.ts";
import { httpSourcesFromEnv } from "./http_sources_from_env.ts";

const SOURCE = {
  name: "weekly",
  urls: ["https://files.example/a.csv"],
  destination: "LSC",
  project_name: "Pr042",
  schedule: "0 3 * * *",
};

Deno.test("httpSourcesFromEnv: none without the file; the sources and a SQLite registry with it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const log = memoryLogger("publish");
    const secrets = new MemorySecretStore({});
    assert.equal(await httpSourcesFromEnv({}, secrets, log), undefined);
    const file = join(dir, "sources.json");
    await Deno.writeTextFile(file, JSON.stringify({ sources: [SOURCE] }));
    const configured = await httpSourcesFromEnv(
      { HTTP_FILE_SOURCES_FILE: file, STATE_DIR: dir },
      secrets,
      log,
    );
    assert.ok(configured !== undefined);
    try {
      assert.equal(configured.sources.source("weekly").schedule, "0 3 * * *");
      assert.equal(configured.scheduler, "publish", "schedules run here by default");
      await Deno.stat(join(dir, "file-registry.sqlite"));
    } finally {
      await configured.close();
    }
    // With runs as Kubernetes Jobs, the operator runs the schedules (the publish service does not).
    for (
      const [env, scheduler] of [
        [{ RUN_EXECUTOR: "kubernetes" }, "operator"],
        [{ RUN_EXECUTOR: "kubernetes", HTTP_SOURCE_SCHEDULER: "publish" }, "publish"],
      ] as const
    ) {
      const other = await httpSourcesFromEnv(
        { HTTP_FILE_SOURCES_FILE: file, STATE_DIR: dir, ...env },
        secrets,
        log,
      );
      try {
        assert.equal(other?.scheduler, scheduler, JSON.stringify(env));
      } finally {
        await other?.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("httpSourcesFromEnv: a file that is not a valid sources file stops startup", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "sources.json");
    const bad: [string, RegExp][] = [
      ["not json", /HTTP_FILE_SOURCES_FILE/],
      [JSON.stringify({ sources: [{ ...SOURCE, schedule: "daily" }] }), /cron/],
      [JSON.stringify({ sources: [{ ...SOURCE, urls: ["file:///etc/passwd"] }] }), /http\(s\) URL/],
    ];
    for (const [text, message] of bad) {
      await Deno.writeTextFile(file, text);
      await assert.rejects(
        httpSourcesFromEnv(
          { HTTP_FILE_SOURCES_FILE: file, STATE_DIR: dir },
          new MemorySecretStore({}),
          memoryLogger("publish"),
        ),
        (e) => e instanceof ConfigError && message.test(e.message),
      );
    }
    await assert.rejects(
      httpSourcesFromEnv(
        { HTTP_FILE_SOURCES_FILE: join(dir, "missing.json") },
        new MemorySecretStore({}),
        memoryLogger("publish"),
      ),
      ConfigError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
