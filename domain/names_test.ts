import assert from "node:assert/strict";
import {
  HOST_PATTERN,
  isSafeIdentifier,
  isSafeSecretName,
  PROJECT_START_TIME_PATTERN,
  projectNameProblem,
} from "./names.ts";

Deno.test("projectNameProblem() accepts typical and Unicode names", async (t) => {
  const names = [
    "Pr042",
    "my-proj_1",
    "a",
    "x".repeat(64),
    "proj.v2",
    "a.b.c",
    "Überprojekt",
    "проект",
    "研究プロジェクト",
    "café-2025",
  ];
  for (const name of names) {
    await t.step(JSON.stringify(name), () => {
      assert.equal(projectNameProblem(name), undefined);
    });
  }
});

Deno.test("projectNameProblem() rejects unsafe names", async (t) => {
  const cases: [label: string, name: string, problem: RegExp][] = [
    ["empty", "", /empty/],
    ["65 characters", "x".repeat(65), /at most 64/],
    ["'/'", "a/b", /path separator/],
    ["leading '/'", "/etc", /path separator/],
    ["'\\'", "a\\b", /path separator/],
    ["'..'", "..", /'\.\.'/],
    ["'..' inside", "a..b", /'\.\.'/],
    ["'..' prefix", "..a", /'\.\.'/],
    ["'.'", ".", /'\.'/],
    ["'../x'", "../x", /path separator|'\.\.'/],
    ["space", "my proj", /whitespace/],
    ["leading space", " proj", /whitespace/],
    ["trailing space", "proj ", /whitespace/],
    ["tab", "my\tproj", /whitespace/],
    ["newline", "proj\n", /whitespace/],
    ["carriage return", "proj\r", /whitespace/],
    ["NUL", "proj\0", /control/],
    ["BEL (U+0007)", "proj\u0007", /control/],
    ["ESC (U+001B)", "proj\u001b[0m", /control/],
    ["DEL (U+007F)", "proj\u007f", /control/],
    ["C1 control (U+0085)", "proj\u0085", /control/],
    ["zero-width space (U+200B)", "proj\u200b", /control/],
    ["zero-width joiner (U+200D)", "pro\u200dj", /control/],
    ["right-to-left override (U+202E)", "proj\u202etxt", /control/],
    ["byte-order mark (U+FEFF)", "\ufeffproj", /control/],
    ["soft hyphen (U+00AD)", "pro\u00adj", /control/],
    ["no-break space (U+00A0)", "my\u00a0proj", /whitespace/],
    ["ideographic space (U+3000)", "my\u3000proj", /whitespace/],
    ["line separator (U+2028)", "my\u2028proj", /whitespace/],
  ];
  for (const [label, name, problem] of cases) {
    await t.step(`rejects ${label}`, () => {
      const found = projectNameProblem(name);
      assert.ok(found !== undefined, `expected a problem for ${JSON.stringify(name)}`);
      assert.match(found, problem);
    });
  }
});

Deno.test("projectNameProblem() checks length in UTF-16 code units, 64 allowed and 65 not", () => {
  assert.equal(projectNameProblem("é".repeat(64)), undefined);
  assert.match(projectNameProblem("é".repeat(65)) ?? "", /at most 64/);
});

Deno.test("isSafeSecretName() accepts typical secret names", async (t) => {
  const names = [
    "sourceuser",
    "sourcepassword",
    "databricksspnclientid",
    "db-password",
    "db_password.v2",
    "_private",
    "9lives",
    "a",
    "a".repeat(127),
  ];
  for (const name of names) {
    await t.step(JSON.stringify(name), () => {
      assert.equal(isSafeSecretName(name), true);
    });
  }
});

Deno.test("isSafeSecretName() rejects names that could leave the secrets directory", async (t) => {
  const cases: [label: string, name: string][] = [
    ["empty", ""],
    ["128 characters", "a".repeat(128)],
    ["'..'", ".."],
    ["'.'", "."],
    ["'../etc/passwd'", "../etc/passwd"],
    ["'..' inside", "a..b"],
    ["'..' at the end", "secret.."],
    ["encoded traversal '%2e%2e%2f'", "%2e%2e%2fpasswd"],
    ["'%' anywhere", "db%20pass"],
    ["absolute '/etc/passwd'", "/etc/passwd"],
    ["'/' inside", "dir/secret"],
    ["backslash", "dir\\secret"],
    ["'..\\' traversal", "..\\secret"],
    ["NUL", "secret\0"],
    ["NUL then suffix", "secret\0.txt"],
    ["leading dot", ".hidden"],
    ["leading '-'", "-rf"],
    ["space", "db pass"],
    ["newline", "secret\n"],
    ["trailing newline only", "sourceuser\n"],
    ["colon", "c:secret"],
    ["'~'", "~root"],
    ["Unicode letter", "sécret"],
    ["Cyrillic look-alike 'а'", "\u0430dmin"],
    ["zero-width space", "secret\u200b"],
  ];
  for (const [label, name] of cases) {
    await t.step(`rejects ${label}`, () => {
      assert.equal(isSafeSecretName(name), false);
    });
  }
});

Deno.test("isSafeIdentifier() accepts schema, table and column names", async (t) => {
  const names = [
    "oncology",
    "tumour_stage",
    "Stage_ID",
    "_hidden",
    "9col",
    "col$1",
    "research-gold",
    "a",
    "a".repeat(128),
  ];
  for (const name of names) {
    await t.step(JSON.stringify(name), () => {
      assert.equal(isSafeIdentifier(name), true);
    });
  }
});

Deno.test("isSafeIdentifier() rejects names unsafe in SQL or paths", async (t) => {
  const cases: [label: string, name: string][] = [
    ["empty", ""],
    ["129 characters", "a".repeat(129)],
    ["leading '$'", "$col"],
    ["leading '-'", "-col"],
    ["double quote", 'a"b'],
    ["single quote", "a'b"],
    ["backtick", "a`b"],
    ["closing bracket", "a]b"],
    ["semicolon", "a;drop"],
    ["space", "a b"],
    ["'--' comment", "a --"],
    ["'.'", "schema.table"],
    ["'..'", ".."],
    ["'/'", "a/b"],
    ["backslash", "a\\b"],
    ["NUL", "a\0"],
    ["newline", "a\n"],
    ["Cyrillic look-alike 'а'", "d\u0430ta"],
    ["accented letter", "tumeur_étape"],
    ["zero-width space", "col\u200b"],
  ];
  for (const [label, name] of cases) {
    await t.step(`rejects ${label}`, () => {
      assert.equal(isSafeIdentifier(name), false);
    });
  }
});

Deno.test("PROJECT_START_TIME_PATTERN accepts YYYYMMDD_HHMMSS", async (t) => {
  for (const value of ["20250611_093000", "19991231_235959", "00000000_000000"]) {
    await t.step(value, () => {
      assert.ok(PROJECT_START_TIME_PATTERN.test(value));
    });
  }
});

Deno.test("PROJECT_START_TIME_PATTERN rejects other shapes and non-ASCII digits", async (t) => {
  const cases: [label: string, value: string][] = [
    ["empty", ""],
    ["year only", "2025"],
    ["no underscore", "20250611093000"],
    ["dash", "20250611-093000"],
    ["ISO 8601", "2025-06-11T09:30:00"],
    ["short date", "2025061_093000"],
    ["short time", "20250611_09300"],
    ["long time", "20250611_0930000"],
    ["leading space", " 20250611_093000"],
    ["trailing newline", "20250611_093000\n"],
    ["letters", "2025061a_093000"],
    ["Arabic-Indic digits", "٢٠٢٥٠٦١١_٠٩٣٠٠٠"],
    ["one Arabic-Indic digit", "2025061١_093000"],
    ["Devanagari digits", "२०२५०६११_०९३०००"],
    ["full-width digits", "２０２５０６１１_０９３０００"],
    ["path traversal", "../../etc_passwd"],
  ];
  for (const [label, value] of cases) {
    await t.step(`rejects ${label}`, () => {
      assert.equal(PROJECT_START_TIME_PATTERN.test(value), false);
    });
  }
});

Deno.test("HOST_PATTERN accepts host names and IP literals", async (t) => {
  const hosts = [
    "localhost",
    "db",
    "db.internal",
    "mysql-rfam-public.ebi.ac.uk",
    "db.example.com.",
    "sql-1.database.windows.net",
    "10.0.0.1",
    "127.0.0.1",
    "[::1]",
    "[2001:db8::1]",
    "[::ffff:192.0.2.1]",
  ];
  for (const host of hosts) {
    await t.step(host, () => {
      assert.ok(HOST_PATTERN.test(host));
    });
  }
});

Deno.test("HOST_PATTERN rejects schemes, ports, paths, credentials and spaces", async (t) => {
  const cases: [label: string, host: string][] = [
    ["empty", ""],
    ["scheme", "https://db.internal"],
    ["scheme without slashes", "mysql:db"],
    ["port", "db.internal:5432"],
    ["IPv4 with port", "10.0.0.1:5432"],
    ["IPv6 with port", "[::1]:5432"],
    ["bare IPv6", "::1"],
    ["path", "db.internal/research"],
    ["trailing slash", "db.internal/"],
    ["userinfo", "a@b"],
    ["userinfo with password", "user:pw@db.internal"],
    ["space", "db internal"],
    ["leading space", " db.internal"],
    ["trailing newline", "db.internal\n"],
    ["query", "db.internal?ssl=true"],
    ["leading dot", ".db.internal"],
    ["leading hyphen", "-db"],
    ["empty label", "db..internal"],
    ["Cyrillic look-alike 'а'", "d\u0430tabase.internal"],
    ["empty brackets", "[]"],
    ["bracketed name", "[db.internal]"],
  ];
  for (const [label, host] of cases) {
    await t.step(`rejects ${label}`, () => {
      assert.equal(HOST_PATTERN.test(host), false);
    });
  }
});
