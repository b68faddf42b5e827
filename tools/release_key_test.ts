import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { MemorySecretStore } from "../adapters/memory/memory_secret_store.ts";
import { Ed25519ReleaseSigner } from "../adapters/crypto/ed25519_release_signer.ts";

Deno.test("deno task release-key: stdout is a private JWK the signer uses; stderr names its kid and public JWK only", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", fileURLToPath(new URL("./release_key.ts", import.meta.url))],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0);
  const secret = new TextDecoder().decode(output.stdout);
  const notice = new TextDecoder().decode(output.stderr);
  const privateJwk = JSON.parse(secret);
  assert.equal(typeof privateJwk.d, "string");
  const signer = new Ed25519ReleaseSigner({
    secrets: new MemorySecretStore({ "release-key": secret }),
    keySecretName: "release-key",
  });
  const [current] = (await signer.keySet()).keys;
  assert.ok(notice.includes(current!.kid));
  assert.ok(notice.includes(JSON.stringify(current)));
  assert.ok(!notice.includes(privateJwk.d));
});
