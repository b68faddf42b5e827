import assert from "node:assert/strict";
import {
  generateOpalPassword,
  InvalidOpalResourceError,
  opalPasswordProblem,
  opalProjectNameProblem,
  opalResourceDefinition,
} from "./opal.ts";

Deno.test("generateOpalPassword() always satisfies OPAL's password policy", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2_000; i++) {
    const password = generateOpalPassword();
    assert.equal(password.length, 24);
    assert.equal(opalPasswordProblem(password), undefined, password);
    seen.add(password);
  }
  assert.equal(seen.size, 2_000);
  for (let i = 0; i < 500; i++) {
    assert.equal(opalPasswordProblem(generateOpalPassword(8)), undefined);
  }
  assert.equal(generateOpalPassword(64).length, 64);
  assert.throws(() => generateOpalPassword(7), RangeError);
  assert.throws(() => generateOpalPassword(65), RangeError);
});

Deno.test("opalPasswordProblem() applies OPAL's policy", async (t) => {
  const cases: [password: string, problem: RegExp | undefined][] = [
    ["Abcdef1!", undefined],
    ["Abcde1!", /at least 8/],
    [`Ab1!${"x".repeat(61)}`, /at most 64/],
    ["Abcdef1! x", /whitespace/],
    ["Abcdefg!", /digit/],
    ["ABCDEF1!", /lower-case/],
    ["abcdef1!", /upper-case/],
    ["Abcdef12", /one of/],
    ["Abcdef1*", /one of/],
  ];
  for (const [password, problem] of cases) {
    await t.step(password, () => {
      const found = opalPasswordProblem(password);
      if (problem === undefined) assert.equal(found, undefined);
      else assert.match(found ?? "", problem);
    });
  }
});

Deno.test("opalProjectNameProblem() follows OPAL's project name rule", () => {
  for (const ok of ["Pr042", "my project", "a-b_c"]) {
    assert.equal(opalProjectNameProblem(ok), undefined);
  }
  for (const bad of ["", "  ", "proj.v2", "Überprojekt", "a/b", "*"]) {
    assert.notEqual(opalProjectNameProblem(bad), undefined, bad);
  }
});

Deno.test("opalResourceDefinition() builds the resourcer sql resource with JSON-string fields", () => {
  assert.deepEqual(
    opalResourceDefinition({
      project: "Pr042",
      schema: "s",
      table: "t",
      host: "pg.internal",
      port: 5432,
      database: "db",
      username: "ro",
      password: 'p"w',
    }),
    {
      project: "Pr042",
      name: "tre_postgresql_s_t",
      description: "Resource for table t in schema s",
      provider: "resourcer",
      factory: "sql",
      parameters:
        '{"driver":"postgresql","host":"pg.internal","port":5432,"db":"db","schema":"s","table":"t"}',
      credentials: '{"username":"ro","password":"p\\"w"}',
    },
  );
  const base = {
    project: "P",
    schema: "s",
    table: "t",
    host: "h",
    port: "1",
    database: "d",
    username: "u",
    password: "Secret#1",
  };
  for (const port of ["0", "65536", "", "5432x", 1.5]) {
    const error = (() => {
      try {
        opalResourceDefinition({ ...base, port });
      } catch (e) {
        return e;
      }
    })();
    assert.ok(error instanceof InvalidOpalResourceError, `port ${port}`);
    assert.ok(!error.message.includes("Secret#1"));
  }
  assert.throws(() => opalResourceDefinition({ ...base, password: "" }), InvalidOpalResourceError);
  assert.throws(() => opalResourceDefinition({ ...base, host: "h/x" }), InvalidOpalResourceError);
});
