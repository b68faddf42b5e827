import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  DESTINATION_NAME_PATTERN,
  HOST_PATTERN,
  HTTP_PATH_PATTERN,
  IDENTIFIER_PATTERN,
  isSafeIdentifier,
  isSafeSecretName,
  PROJECT_START_TIME_PATTERN,
  projectFolderKey,
  projectIdentifier,
  projectNameProblem,
  SECRET_NAME_PATTERN,
  unicodeNameProblem,
} from "./names.ts";

Deno.test("projectNameProblem() accepts typical, spaced and Unicode names", async (t) => {
  const names = [
    "Pr042",
    "my-proj_1",
    "a",
    "x".repeat(64),
    "proj.v2",
    "a.b.c",
    "a..b",
    "Überprojekt",
    "проект",
    "研究プロジェクト",
    "café-2025",
    "CR8TOR Demo Project",
    "My Study (2025) & co, v2!",
    "50% sample #3",
    "O'Brien's cohort",
    "a;b=c+d@e~f[g]{h}^i$j`k",
    "%2e%2e%2fPWNED",
    "10µm study",
    "😀 emoji",
    "CONSOLE",
    "COM10",
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
    ["'..'", "..", /start with '-' or '\.'/],
    ["'..' prefix", "..a", /start with '-' or '\.'/],
    ["'.'", ".", /start with '-' or '\.'/],
    ["leading '.'", ".hidden", /start with '-' or '\.'/],
    ["leading '-'", "-rf", /start with '-' or '\.'/],
    ["trailing '.'", "proj.", /end with '\.'/],
    ["'../x'", "../x", /path separator/],
    ["leading space", " proj", /start or end with a space/],
    ["trailing space", "proj ", /start or end with a space/],
    ["only spaces", "   ", /start or end with a space/],
    ["'<'", "a<b", /< > :/],
    ["'>'", "a>b", /< > :/],
    ["':'", "c:proj", /< > :/],
    ["'\"'", 'a"b', /< > :/],
    ["'|'", "a|b", /< > :/],
    ["'?'", "a?", /< > :/],
    ["'*'", "a*", /< > :/],
    ["device name CON", "CON", /device name/],
    ["device name nul.txt", "nul.txt", /device name/],
    ["device name com1", "com1", /device name/],
    ["device name LPT\u00b9", "LPT\u00b9", /device name/],
    ["tab", "my\tproj", /printable/],
    ["newline", "proj\n", /printable/],
    ["carriage return", "proj\r", /printable/],
    ["NUL", "proj\0", /printable/],
    ["BEL (U+0007)", "proj\u0007", /printable/],
    ["ESC (U+001B)", "proj\u001b[0m", /printable/],
    ["DEL (U+007F)", "proj\u007f", /printable/],
    ["C1 control (U+0085)", "proj\u0085", /printable/],
    ["zero-width space (U+200B)", "proj\u200b", /printable/],
    ["zero-width joiner (U+200D)", "pro\u200dj", /printable/],
    ["right-to-left override (U+202E)", "proj\u202etxt", /printable/],
    ["byte-order mark (U+FEFF)", "\ufeffproj", /printable/],
    ["soft hyphen (U+00AD)", "pro\u00adj", /printable/],
    ["variation selector (U+FE0F)", "proj\ufe0f", /printable/],
    ["Hangul filler (U+3164)", "pro\u3164j", /printable/],
    ["combining grapheme joiner (U+034F)", "pro\u034fj", /printable/],
    ["private use (U+E000)", "proj\ue000", /printable/],
    ["unassigned (U+0378)", "proj\u0378", /printable/],
    ["no-break space (U+00A0)", "my\u00a0proj", /printable/],
    ["ideographic space (U+3000)", "my\u3000proj", /printable/],
    ["thin space (U+2009)", "my\u2009proj", /printable/],
    ["line separator (U+2028)", "my\u2028proj", /printable/],
    ["paragraph separator (U+2029)", "my\u2029proj", /printable/],
    ["unpaired high surrogate", "proj\ud800", /unpaired UTF-16 surrogate/],
    ["unpaired low surrogate", "\udc00proj", /unpaired UTF-16 surrogate/],
    ["reversed surrogate pair", "\ude00\ud83d", /unpaired UTF-16 surrogate/],
    ["U+FFFD", "proj\ufffd", /U\+FFFD/],
    ["NFD 'Café'", "Cafe\u0301", /NFC/],
    ["NFD Hangul", "\u1112\u1161\u11ab", /NFC/],
    ["combining marks out of canonical order", "a\u0301\u0327", /NFC/],
    ["fullwidth solidus (U+FF0F)", "a\uff0fb", /look-alike.*path separator/],
    ["fullwidth reverse solidus (U+FF3C)", "a\uff3cb", /look-alike.*path separator/],
    ["fullwidth dots and solidus", "\uff0e\uff0e\uff0fPWNED", /look-alike/],
    ["account-of sign (U+2100, 'a/c')", "\u2100", /look-alike.*path separator/],
    ["fullwidth colon (U+FF1A)", "c\uff1aproj", /look-alike.*< > :/],
    ["small question mark (U+FE56)", "proj\ufe56", /look-alike.*< > :/],
    ["trailing fullwidth full stop (U+FF0E)", "proj\uff0e", /look-alike.*end with '\.'/],
    ["leading one dot leader (U+2024)", "\u2024hidden", /look-alike.*start with/],
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
  assert.equal(projectNameProblem("😀".repeat(32)), undefined);
  assert.match(projectNameProblem("😀".repeat(33)) ?? "", /at most 64/);
});

Deno.test("unicodeNameProblem() refuses unpaired surrogates, U+FFFD and non-NFC text, nothing else", async (t) => {
  const cases: [label: string, name: string, problem: RegExp | undefined][] = [
    ["ASCII", "oncology_extract", undefined],
    ["spaces and punctuation", "My dataset: v2 / final?", undefined],
    ["NFC accents", "Caf\u00e9", undefined],
    ["a surrogate pair", "\ud83d\ude00", undefined],
    ["empty", "", undefined],
    ["unpaired high surrogate", "a\ud800", /surrogate/],
    ["unpaired low surrogate", "\udfffa", /surrogate/],
    ["U+FFFD", "\ufffd", /U\+FFFD/],
    ["NFD", "Cafe\u0301", /NFC/],
    ["singleton decomposition (Angstrom sign U+212B)", "\u212b", /NFC/],
  ];
  for (const [label, name, problem] of cases) {
    await t.step(label, () => {
      const found = unicodeNameProblem(name);
      if (problem === undefined) assert.equal(found, undefined);
      else assert.match(found ?? "", problem);
    });
  }
});

Deno.test("every ASCII name pattern refuses what unicodeNameProblem() refuses", async (t) => {
  const hostile = ["a\ud800", "a\ufffd", "Cafe\u0301", "Caf\u00e9"];
  const patterns: [string, RegExp][] = [
    ["IDENTIFIER_PATTERN", IDENTIFIER_PATTERN],
    ["SECRET_NAME_PATTERN", SECRET_NAME_PATTERN],
    ["DESTINATION_NAME_PATTERN", DESTINATION_NAME_PATTERN],
    ["HOST_PATTERN", HOST_PATTERN],
    ["HTTP_PATH_PATTERN", HTTP_PATH_PATTERN],
    ["PROJECT_START_TIME_PATTERN", PROJECT_START_TIME_PATTERN],
  ];
  for (const [label, pattern] of patterns) {
    await t.step(label, () => {
      assert.ok(!/[^\x20-\x7e]/.test(pattern.source), `${label} must only list ASCII`);
      for (const name of hostile) assert.equal(pattern.test(name), false, JSON.stringify(name));
    });
  }
});

/** The documented mapping, written out independently of the code under test. */
function sha8(text: string): string {
  return createHash("sha256").update(new TextEncoder().encode(text)).digest("hex").slice(0, 8);
}

Deno.test("projectIdentifier() keeps names that are already [a-z0-9_] identifiers", async (t) => {
  for (const name of ["pr042", "my_proj_1", "a", "9lives", "deadbeef", "x".repeat(64), "a__b"]) {
    await t.step(name, () => assert.equal(projectIdentifier(name), name));
  }
});

Deno.test("projectIdentifier() maps other names to [a-z0-9_] plus 8 hex digits of their SHA-256", async (t) => {
  const cases: [name: string, slug: string][] = [
    ["CR8TOR Demo Project", "cr8tor_demo_project"],
    ["Pr042", "pr042"],
    ["PR042", "pr042"],
    ["my-proj", "my_proj"],
    ["my proj", "my_proj"],
    ["Inner", "inner"],
    ["a..b", "a_b"],
    ["_lead", "lead"],
    ["trail_", "trail"],
    ["Café 2025", "caf_2025"],
    ["\u212aelvin", "elvin"],
    ["研究プロジェクト", "project"],
    ["%%%", "project"],
    // Already an identifier, but ending like a hashed one: hashed too, so it cannot pose as one.
    ["cr8tor_demo_project_1a2b3c4d", "cr8tor_demo_project_1a2b3c4d"],
  ];
  for (const [name, slug] of cases) {
    await t.step(name, () => {
      const identifier = projectIdentifier(name);
      assert.equal(identifier, `${slug}_${sha8(name)}`);
      assert.match(identifier, /^[a-z0-9_]+$/);
    });
  }
});

Deno.test("projectIdentifier() gives different names different identifiers", () => {
  const names = [
    "CR8TOR Demo Project",
    "cr8tor demo project",
    "CR8TOR-Demo-Project",
    "CR8TOR_Demo_Project",
    "cr8tor_demo_project",
    `cr8tor_demo_project_${sha8("CR8TOR Demo Project")}`,
    "Pr042",
    "pr042",
    "PR042",
    "Caf\u00e9",
    "Cafe",
    "caf",
  ];
  const identifiers = names.map(projectIdentifier);
  assert.equal(new Set(identifiers).size, names.length, JSON.stringify(identifiers));
});

Deno.test("projectFolderKey() is the same for names that differ only in case, and only for those", () => {
  assert.equal(projectFolderKey("Demo Project"), projectFolderKey("DEMO project"));
  assert.equal(projectFolderKey("Caf\u00e9"), projectFolderKey("CAF\u00c9"));
  assert.equal(projectFolderKey("\u212aelvin"), projectFolderKey("kelvin"));
  assert.notEqual(projectFolderKey("Demo"), projectFolderKey("Demo2"));
  assert.notEqual(projectFolderKey("Caf\u00e9"), projectFolderKey("Cafe"));
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
