/**
 * Uploads through the dashboard (`docs/uploads.md`): a signed-in person creates an "Uploaded" data
 * source, uploads its files with tus 1.0 (`@tus/server` through its web handler, under
 * `/ui/uploads/tus/`), sees the checks of each file, overrides column types and marks the data source
 * ready. Files stay in the quarantine area (`UPLOAD_QUARANTINE_PATH`); only their uploader and the
 * people the approval policy entitles to decide see them.
 *
 * The tus endpoint takes the session cookie and, for every request that changes something, the page's
 * `Origin` and the session's synchronizer token in an `X-CSRF-Token` header (a form field cannot carry it
 * on a PATCH). Only the data source's creator may create, continue, query or end its uploads.
 *
 * @module
 */
import { Server } from "@tus/server";
import type { Context, Hono } from "hono";
import {
  type TusUpload,
  type UploadQuarantine,
} from "../../../adapters/filesystem/upload_quarantine.ts";
import {
  COLUMN_TYPES,
  type ColumnReport,
  isColumnType,
  TabularChecker,
  type TabularReport,
} from "../../../domain/tabular_checks.ts";
import {
  checkedUploadName,
  checkUploadFits,
  contentProblem,
  DataSourceClosedError,
  DataSourceNotFoundError,
  newUploadedDataSource,
  NotUploaderError,
  UPLOAD_TYPES,
  type UploadedDataSource,
  type UploadedFile,
  type UploadLimits,
  UploadNameUnsafeError,
  UploadRefusedError,
  UploadRequestInvalidError,
} from "../../../domain/upload_files.ts";
import type { Person } from "../../../ports/identity.ts";
import { statusOf } from "../../_shared/http_errors.ts";
import type { Logger } from "../../_shared/log.ts";
import { requestIdOf } from "../../_shared/request_ids.ts";
import { sameSecret } from "../../../adapters/oidc/oidc_login.ts";
import type { Session } from "./sessions.ts";
import { personOf } from "../../_shared/person_auth.ts";
import { success } from "../../_shared/envelope.ts";
import { Page } from "./dashboard.tsx";
import { UI_PREFIX } from "./paths.ts";

/** Where the upload page's tus endpoint is mounted (session cookie and CSRF token). */
export const TUS_PATH = `${UI_PREFIX}/uploads/tus`;

/** Where scripts create data sources and upload (a person's bearer token; `docs/uploads.md`). */
export const SCRIPT_PREFIX = "/uploads";

/** The scripts' tus endpoint. */
export const SCRIPT_TUS_PATH = `${SCRIPT_PREFIX}/tus`;

/** What the upload pages need. */
export interface UploadDeps {
  readonly quarantine: UploadQuarantine;
  readonly limits: UploadLimits;
  /** The filestore destinations a data source may be published into. */
  readonly destinations: readonly string[];
  /** Whether `person` may decide on releases (one of the approval policy's roles): sees every upload. */
  readonly mayReview: (person: Person) => boolean;
  /**
   * Makes the release of a data source marked ready (`docs/uploads.md`); returns its id. Absent: marking
   * ready only closes the data source.
   */
  readonly release?: (c: Context, source: UploadedDataSource, person: Person) => Promise<string>;
  /**
   * Stages the approved files of a data source marked ready (the release's `package` step, gated):
   * the publish service copies them from the quarantine area, checking each SHA-512.
   */
  readonly stage?: (
    c: Context,
    source: UploadedDataSource,
    files: readonly UploadedFile[],
    person: Person,
  ) => Promise<void>;
  /** Publishes a staged data source (the release's `publish` step, gated) as a bag with its crate. */
  readonly publish?: (c: Context, source: UploadedDataSource, person: Person) => Promise<void>;
  /** The size of each PATCH the browser sends (bytes; 8 MiB by default). */
  readonly chunkBytes?: number;
}

/** What the dashboard lends the upload pages. */
export interface UploadHost {
  /** The signed-in session of a request, or `undefined`. */
  readonly sessionOf: (c: Context) => Session | undefined;
  /** The signed-in session, or a sign-in page. */
  readonly signedIn: (c: Context) => Session;
  /** The dashboard's origin (`UI_BASE_URL`). */
  readonly origin: string;
  readonly log: Logger;
  readonly now: () => number;
}

/** The static script of the upload page (`/ui/static/upload.js`): a small tus 1.0 client. */
export const UPLOAD_SCRIPT_PATH = `${UI_PREFIX}/static/upload.js`;

/** Adds the upload pages and the tus endpoint to the dashboard's app `ui`. */
export function addUploads(ui: Hono, deps: UploadDeps, host: UploadHost): void {
  const { quarantine, limits } = deps;
  /** A tus server at `path` over the quarantine's store (one for the dashboard, one for scripts). */
  const tusAt = (path: string) =>
    new Server({
      path,
      datastore: quarantine.store,
      maxSize: limits.maxFileBytes,
      relativeLocation: true,
      disableTerminationForFinishedUploads: true,
      onUploadFinish: async (_req, upload) => {
        await finish(upload);
        return {};
      },
    });
  const tusForPages = tusAt(TUS_PATH);
  const tusForScripts = tusAt(SCRIPT_TUS_PATH);

  /** Hashes, sniffs and checks a finished upload; refuses (and deletes) what is not allowed. */
  async function finish(upload: TusUpload): Promise<void> {
    const bytes = upload.size ?? upload.offset;
    const sha512 = await quarantine.store.sha512(upload.id, bytes);
    const name = upload.metadata?.filename ?? "";
    const type = checkedUploadName(name, limits.types).type;
    const problem = contentProblem(await quarantine.firstBytes(upload.id), type);
    if (problem !== undefined) {
      await quarantine.saveResult(upload.id, { sha512, bytes, refusal: problem, checks: null });
      await quarantine.discard(upload.id);
      throw { status_code: 415, body: problem };
    }
    let checks: TabularReport | null = null;
    if (UPLOAD_TYPES[type] === "text") {
      const checker = new TabularChecker(type);
      for await (const chunk of quarantine.read(upload.id)) checker.push(chunk);
      checks = checker.finish(await previousColumns(upload.metadata?.source ?? "", name));
    }
    await quarantine.saveResult(upload.id, { sha512, bytes, refusal: null, checks });
  }

  /** The columns of the same file in the newest earlier data source of the same project. */
  async function previousColumns(sourceId: string, name: string): Promise<string[] | null> {
    const source = await quarantine.source(sourceId);
    if (source === undefined) return null;
    const earlier = (await quarantine.sources()).filter((s) =>
      s.project_name === source.project_name && s.id !== source.id &&
      s.created_at <= source.created_at
    );
    for (const previous of earlier) {
      const file = (await quarantine.files(previous.id)).find((f) => f.name === name);
      const checks = file?.result?.checks as TabularReport | null | undefined;
      if (checks) return checks.columns.map((column) => column.name);
    }
    return null;
  }

  /** The data source `id` if `person` may see it (its creator, or a reviewer). */
  async function visibleSource(id: string, person: Person): Promise<UploadedDataSource> {
    const source = await quarantine.source(id);
    if (source === undefined || (!isOwner(source, person) && !deps.mayReview(person))) {
      throw new DataSourceNotFoundError();
    }
    return source;
  }

  /** The data source `id` if `person` created it and it is still open. */
  async function ownOpenSource(id: string, person: Person): Promise<UploadedDataSource> {
    const source = await visibleSource(id, person);
    if (!isOwner(source, person)) throw new NotUploaderError();
    if (source.state !== "open") throw new DataSourceClosedError();
    return source;
  }

  // ---- tus endpoint

  ui.all(TUS_PATH, (c) => pageTusRequest(c));
  ui.all(`${TUS_PATH}/:id`, (c) => pageTusRequest(c, c.req.param("id")));

  /** The upload page's tus requests: the session, and for changes its origin and token. */
  async function pageTusRequest(c: Context, id?: string): Promise<Response> {
    const session = host.sessionOf(c);
    if (session === undefined) return plain(401, "Sign in to the dashboard first");
    const method = c.req.method;
    if (method !== "HEAD" && method !== "OPTIONS" && method !== "GET") {
      const token = c.req.header("x-csrf-token") ?? "";
      if (c.req.header("origin") !== host.origin || !sameSecret(token, session.csrf)) {
        return plain(403, "Refused: not sent by this dashboard's upload page");
      }
    }
    return await tusRequest(c, tusForPages, session.person, id);
  }

  // Scripts: the person's bearer token (checked by the gateway's person authentication, which
  // `gatewayCredentialFor` requires under `/uploads/`); no cookie, so no CSRF check.
  ui.all(SCRIPT_TUS_PATH, (c) => scriptTusRequest(c));
  ui.all(`${SCRIPT_TUS_PATH}/:id`, (c) => scriptTusRequest(c, c.req.param("id")));

  function scriptTusRequest(c: Context, id?: string): Promise<Response> {
    const person = personOf(c);
    if (person === undefined) return Promise.resolve(plain(401, "A bearer token is required"));
    return tusRequest(c, tusForScripts, person, id);
  }

  ui.post(`${SCRIPT_PREFIX}/sources`, async (c) => {
    const person = personOf(c);
    if (person === undefined) return plain(401, "A bearer token is required");
    const body = await c.req.json().catch(() => ({})) as Record<string, unknown>;
    const source = await createSource(
      c,
      person,
      String(body.project_name ?? ""),
      String(body.destination ?? ""),
    );
    return c.json(success({ id: source.id, project_start_time: source.project_start_time }), 201);
  });

  async function tusRequest(
    c: Context,
    tus: Server,
    person: Person,
    id: string | undefined,
  ): Promise<Response> {
    const method = c.req.method;
    try {
      let request = c.req.raw;
      if (method === "POST" && id === undefined) {
        request = await creation(c, person);
      } else if (id !== undefined && method !== "OPTIONS") {
        const upload = await quarantine.upload(id);
        if (upload === undefined) return plain(404, "No such upload");
        await ownOpenSource(upload.metadata?.source ?? "", person);
      } else if (method !== "OPTIONS") {
        return plain(405, "Create an upload with POST, then PATCH it");
      }
      const response = await tus.handleWeb(request);
      if (method === "POST" && response.status === 201) {
        host.log.info("upload_created", {
          person_id: person.id,
          request_id: requestIdOf(c),
        });
      }
      return response;
    } catch (error) {
      const status = statusOf(error);
      if (error instanceof UploadRefusedError || (status !== undefined && status < 500)) {
        return plain(status ?? 400, (error as Error).message);
      }
      throw error;
    }
  }

  /**
   * Checks a creation request (`POST`): the data source is the person's and open, the name and type
   * are allowed, the size fits; returns the request with only the checked metadata.
   */
  async function creation(c: Context, person: Person): Promise<Request> {
    const metadata = parseMetadata(c.req.header("upload-metadata") ?? "");
    const source = await ownOpenSource(metadata.source ?? "", person);
    if (metadata.filename === undefined) {
      throw new UploadNameUnsafeError("The upload must name its file (metadata filename)");
    }
    const { name } = checkedUploadName(metadata.filename, limits.types);
    const length = c.req.header("upload-length");
    if (length === undefined || !/^\d{1,16}$/.test(length)) {
      throw new UploadRequestInvalidError("The upload must declare its length (Upload-Length)");
    }
    const files = (await quarantine.files(source.id)).filter((f) => f.result?.refusal == null);
    if (files.some((f) => f.name === name)) {
      throw new UploadNameUnsafeError(`The data source already has a file named ${name}`);
    }
    checkUploadFits(limits, {
      files: files.length,
      bytes: files.reduce((sum, f) => sum + f.size, 0),
    }, Number(length));
    const headers = new Headers(c.req.raw.headers);
    headers.set("upload-metadata", `filename ${b64(name)},source ${b64(source.id)}`);
    return new Request(c.req.raw, { headers });
  }

  // ---- pages

  ui.get(UPLOAD_SCRIPT_PATH, (c) => {
    c.header("Content-Type", "text/javascript; charset=utf-8");
    c.header("Cache-Control", "public, max-age=300");
    return c.body(UPLOAD_SCRIPT);
  });

  ui.get(`${UI_PREFIX}/uploads`, async (c) => {
    const session = host.signedIn(c);
    const visible = (await quarantine.sources()).filter((s) =>
      isOwner(s, session.person) || deps.mayReview(session.person)
    );
    return c.html(
      <Page session={session} title="Uploads" current="uploads">
        <h1>Uploads</h1>
        <h2>New data source</h2>
        <form method="post" action={`${UI_PREFIX}/uploads`}>
          <input type="hidden" name="csrf" value={session.csrf} />
          <label for="project_name">Project name</label>
          <input type="text" id="project_name" name="project_name" required maxlength={64} />
          <label for="destination">Destination</label>
          <select id="destination" name="destination">
            {deps.destinations.map((d) => <option key={d} value={d}>{d}</option>)}
          </select>
          <div>
            <button type="submit">Create</button>
          </div>
        </form>
        <h2>Data sources</h2>
        {visible.length === 0 ? <p>No uploaded data sources yet.</p> : (
          <table>
            <thead>
              <tr>
                <th scope="col">Project</th>
                <th scope="col">Start time</th>
                <th scope="col">Destination</th>
                <th scope="col">Uploader</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {visible.map((s) => (
                <tr key={s.id}>
                  <td>
                    <a href={`${UI_PREFIX}/uploads/${s.id}`}>{s.project_name}</a>
                  </td>
                  <td>{s.project_start_time}</td>
                  <td>{s.destination}</td>
                  <td>{s.owner.name}</td>
                  <td>{s.state}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Page>,
    );
  });

  /** Creates a data source of `person` (the dashboard's form, or a script's request). */
  async function createSource(
    c: Context,
    person: Person,
    rawProjectName: string,
    destination: string,
  ): Promise<UploadedDataSource> {
    const source = newUploadedDataSource({
      id: randomHex(),
      projectName: rawProjectName,
      destination,
      destinations: deps.destinations,
      owner: { id: person.id, issuer: person.issuer, name: person.name },
      at: new Date(host.now()),
    });
    await quarantine.saveSource(source);
    host.log.info("upload_source_created", { person_id: person.id, request_id: requestIdOf(c) });
    return source;
  }

  ui.post(`${UI_PREFIX}/uploads`, async (c) => {
    const session = host.signedIn(c);
    const form = c.get("form" as never) as Record<string, unknown>;
    const source = await createSource(
      c,
      session.person,
      String(form.project_name ?? ""),
      String(form.destination ?? ""),
    );
    return c.redirect(`${UI_PREFIX}/uploads/${source.id}`, 303);
  });

  ui.get(`${UI_PREFIX}/uploads/:id`, async (c) => {
    const session = host.signedIn(c);
    const source = await visibleSource(c.req.param("id"), session.person);
    const files = await quarantine.files(source.id);
    const owner = isOwner(source, session.person);
    const editable = owner && source.state === "open";
    const notice = c.req.query("done") === "1" ? "Saved." : null;
    return c.html(
      <Page session={session} title={`Upload: ${source.project_name}`} current="uploads">
        <h1>Upload: {source.project_name}</h1>
        {notice === null ? null : <p class="notice" role="status">{notice}</p>}
        <dl>
          <dt>Start time</dt>
          <dd>{source.project_start_time}</dd>
          <dt>Destination</dt>
          <dd>{source.destination}</dd>
          <dt>Uploader</dt>
          <dd>{source.owner.name}</dd>
          <dt>State</dt>
          <dd>{source.state}</dd>
          {source.release_id === null ? null : (
            <>
              <dt>Release</dt>
              <dd>
                <a href={`${UI_PREFIX}/releases/${source.release_id}`}>{source.release_id}</a>
              </dd>
            </>
          )}
        </dl>
        {editable
          ? (
            <section
              class="dropzone"
              aria-labelledby="add-files"
              data-upload-source={source.id}
              data-csrf={session.csrf}
              data-endpoint={TUS_PATH}
              data-chunk-bytes={String(deps.chunkBytes ?? 8 * (1 << 20))}
            >
              <h2 id="add-files">Add files</h2>
              <p>
                Drop files here or choose them ({limits.types.map((t) => `.${t}`).join(", ")}; at
                most {limits.maxFiles} files, {limits.maxFileBytes}{" "}
                bytes each). An upload cut off resumes when you choose the same file again, even
                after reloading the page.
              </p>
              <label for="files">Files</label>
              <input type="file" id="files" multiple />
              <ul class="plain" data-upload-list aria-live="polite"></ul>
            </section>
          )
          : null}
        <h2>Files</h2>
        {files.length === 0 ? <p>No files yet.</p> : (
          files.map((file) => (
            <FileReport
              key={file.id}
              file={file}
              source={source}
              editable={editable}
              csrf={session.csrf}
            />
          ))
        )}
        {editable && files.length > 0
          ? (
            <form method="post" action={`${UI_PREFIX}/uploads/${source.id}/ready`}>
              <input type="hidden" name="csrf" value={session.csrf} />
              <button type="submit">Mark ready for release</button>
            </form>
          )
          : null}
        {owner && (source.state === "ready" || source.state === "staged")
          ? (
            <form
              method="post"
              action={`${UI_PREFIX}/uploads/${source.id}/${
                source.state === "ready" ? "stage" : "publish"
              }`}
            >
              <input type="hidden" name="csrf" value={session.csrf} />
              <p>
                {source.state === "ready"
                  ? "Once the release's first gate is met, stage the files exactly as uploaded."
                  : "Once the release's last gate is met, publish the staged files."}
              </p>
              <button type="submit">
                {source.state === "ready" ? "Stage approved files" : "Publish"}
              </button>
            </form>
          )
          : null}
        <script src={UPLOAD_SCRIPT_PATH} defer></script>
      </Page>,
    );
  });

  ui.post(`${UI_PREFIX}/uploads/:id/types`, async (c) => {
    const session = host.signedIn(c);
    const source = await ownOpenSource(c.req.param("id"), session.person);
    const form = c.get("form" as never) as Record<string, unknown>;
    const file = String(form.file ?? "");
    const known = (await quarantine.files(source.id)).find((f) => f.name === file);
    const checks = known?.result?.checks as TabularReport | null | undefined;
    if (!checks) throw new DataSourceNotFoundError();
    const types: Record<string, string> = {};
    checks.columns.forEach((column, i) => {
      const chosen = String(form[`type_${i}`] ?? "");
      if (isColumnType(chosen) && chosen !== column.inferred) types[column.name] = chosen;
    });
    await quarantine.saveSource({
      ...source,
      column_types: { ...source.column_types, [file]: types },
    });
    return c.redirect(`${UI_PREFIX}/uploads/${source.id}?done=1`, 303);
  });

  ui.post(`${UI_PREFIX}/uploads/:id/ready`, async (c) => {
    const session = host.signedIn(c);
    const source = await ownOpenSource(c.req.param("id"), session.person);
    const files = await quarantine.files(source.id);
    const kept = files.filter((f) => f.result !== null && f.result.refusal === null);
    if (kept.length === 0 || kept.length !== files.length) {
      throw new DataSourceClosedError("Every file must be uploaded in full before marking ready");
    }
    const failing = kept.find((f) =>
      ((f.result?.checks as TabularReport | null)?.errors.length ?? 0) > 0
    );
    if (failing !== undefined) {
      throw new DataSourceClosedError(`${failing.name} failed its checks; replace it first`);
    }
    const releaseId = deps.release === undefined
      ? null
      : await deps.release(c, source, session.person);
    await quarantine.saveSource({ ...source, state: "ready", release_id: releaseId });
    host.log.info("upload_source_ready", {
      person_id: session.person.id,
      request_id: requestIdOf(c),
    });
    return c.redirect(`${UI_PREFIX}/uploads/${source.id}?done=1`, 303);
  });

  /** The data source `id` if `person` created it and it is in state `state`. */
  async function ownSourceIn(
    id: string,
    person: Person,
    state: UploadedDataSource["state"],
  ): Promise<UploadedDataSource> {
    const source = await visibleSource(id, person);
    if (!isOwner(source, person)) throw new NotUploaderError();
    if (source.state !== state) {
      throw new DataSourceClosedError(`The data source is ${source.state}, not ${state}`);
    }
    return source;
  }

  ui.post(`${UI_PREFIX}/uploads/:id/stage`, async (c) => {
    const session = host.signedIn(c);
    const source = await ownSourceIn(c.req.param("id"), session.person, "ready");
    if (deps.stage === undefined) throw new DataSourceClosedError("Staging uploads is off here");
    const files: UploadedFile[] = [];
    for (const file of await quarantine.files(source.id)) {
      if (file.result === null || file.result.refusal !== null) continue;
      files.push({ id: file.id, name: file.name, sha512: file.result.sha512, bytes: file.size });
    }
    await deps.stage(c, source, files, session.person);
    await quarantine.saveSource({ ...source, state: "staged" });
    return c.redirect(`${UI_PREFIX}/uploads/${source.id}?done=1`, 303);
  });

  ui.post(`${UI_PREFIX}/uploads/:id/publish`, async (c) => {
    const session = host.signedIn(c);
    const source = await ownSourceIn(c.req.param("id"), session.person, "staged");
    if (deps.publish === undefined) {
      throw new DataSourceClosedError("Publishing uploads is off here");
    }
    await deps.publish(c, source, session.person);
    await quarantine.saveSource({ ...source, state: "published" });
    return c.redirect(`${UI_PREFIX}/uploads/${source.id}?done=1`, 303);
  });
}

/** Whether `person` created `source`. */
function isOwner(source: UploadedDataSource, person: Person): boolean {
  return source.owner.id === person.id && source.owner.issuer === person.issuer;
}

/** tus `Upload-Metadata`: `key base64value` pairs separated by commas. */
function parseMetadata(header: string): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const pair of header.split(",")) {
    const [key, value] = pair.trim().split(" ");
    if (key === undefined || key === "") continue;
    try {
      const bytes = Uint8Array.from(atob(value ?? ""), (ch) => ch.charCodeAt(0));
      out[key] = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw new UploadNameUnsafeError("The upload's metadata is not base64 of UTF-8 text");
    }
  }
  return out;
}

function b64(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

function randomHex(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

function plain(status: number, message: string): Response {
  return new Response(message, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "tus-resumable": "1.0.0" },
  });
}

/** One file: its state, digest, checks, column types (editable by its uploader) and preview. */
function FileReport(
  props: {
    file: Awaited<ReturnType<UploadQuarantine["files"]>>[number];
    source: UploadedDataSource;
    editable: boolean;
    csrf: string;
  },
) {
  const { file, source } = props;
  const result = file.result;
  const checks = result?.checks as TabularReport | null | undefined;
  const overrides = source.column_types[file.name] ?? {};
  const columns: ColumnReport[] = checks?.columns.map((column) => ({
    ...column,
    type: isColumnType(overrides[column.name] ?? "")
      ? overrides[column.name] as ColumnReport["type"]
      : column.inferred,
  })) ?? [];
  return (
    <section class="run" aria-label={file.name} data-file={file.name}>
      <h3>{file.name}</h3>
      <dl>
        <dt>Size</dt>
        <dd>
          {result === null
            ? `${file.offset} of ${file.size} bytes (unfinished)`
            : `${file.size} bytes`}
        </dd>
        {result === null ? null : (
          <>
            <dt>SHA-512</dt>
            <dd>
              <code>{result.sha512}</code>
            </dd>
          </>
        )}
        {checks
          ? (
            <>
              <dt>Rows</dt>
              <dd data-rows>{checks.rows}</dd>
              <dt>Delimiter</dt>
              <dd>{checks.delimiter === "\t" ? "tab" : checks.delimiter}</dd>
            </>
          )
          : null}
      </dl>
      {checks?.errors.map((error, i) => <p key={i} class="error">{error}</p>)}
      {checks?.warnings.length
        ? (
          <ul>
            {checks.warnings.map((warning, i) => <li key={i} data-warning>{warning}</li>)}
          </ul>
        )
        : null}
      {columns.length > 0
        ? (
          <form method="post" action={`${UI_PREFIX}/uploads/${source.id}/types`}>
            <input type="hidden" name="csrf" value={props.csrf} />
            <input type="hidden" name="file" value={file.name} />
            <table>
              <caption>Columns of {file.name}</caption>
              <thead>
                <tr>
                  <th scope="col">Column</th>
                  <th scope="col">Inferred</th>
                  <th scope="col">Type</th>
                  <th scope="col">Empty values</th>
                </tr>
              </thead>
              <tbody>
                {columns.map((column, i) => (
                  <tr key={column.name}>
                    <td>{column.name}</td>
                    <td>{column.inferred}</td>
                    <td>
                      {props.editable
                        ? (
                          <select
                            name={`type_${i}`}
                            aria-label={`Type of ${column.name}`}
                          >
                            {COLUMN_TYPES.map((t) => (
                              <option key={t} value={t} selected={t === column.type}>{t}</option>
                            ))}
                          </select>
                        )
                        : column.type}
                    </td>
                    <td>{column.empty}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {props.editable ? <button type="submit">Save column types</button> : null}
          </form>
        )
        : null}
      {checks && checks.preview.length > 1
        ? (
          <table>
            <caption>First rows of {file.name}</caption>
            <thead>
              <tr>{checks.preview[0]!.map((name, i) => <th key={i} scope="col">{name}</th>)}</tr>
            </thead>
            <tbody>
              {checks.preview.slice(1).map((row, r) => (
                <tr key={r}>{row.map((v, i) => <td key={i}>{v}</td>)}</tr>
              ))}
            </tbody>
          </table>
        )
        : null}
    </section>
  );
}

/**
 * A small tus 1.0 client (creation, HEAD, PATCH in chunks): each chosen or dropped file gets a progress
 * bar; its upload URL is kept in `localStorage` under the data source, name, size and modification time,
 * so choosing the same file again after a reload (or a dropped connection) resumes from the server's
 * offset. A failed request is retried (HEAD first) a few times with backoff. No inline script: the
 * Content-Security-Policy stays strict.
 */
export const UPLOAD_SCRIPT = `"use strict";
(function () {
  function b64(text) {
    var bytes = new TextEncoder().encode(text), s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s);
  }
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.querySelector("[data-upload-source]");
    if (!box) return;
    var source = box.getAttribute("data-upload-source");
    var csrf = box.getAttribute("data-csrf");
    var endpoint = box.getAttribute("data-endpoint");
    var chunk = Number(box.getAttribute("data-chunk-bytes")) || 8388608;
    var input = box.querySelector("input[type=file]");
    var list = box.querySelector("[data-upload-list]");
    var running = 0;
    function call(method, url, headers, body) {
      var h = { "Tus-Resumable": "1.0.0", "X-CSRF-Token": csrf };
      for (var k in headers) h[k] = headers[k];
      return fetch(url, { method: method, headers: h, body: body, credentials: "same-origin" });
    }
    function keyOf(file) {
      return "cr8tor-upload:" + source + ":" + file.name + ":" + file.size + ":" + file.lastModified;
    }
    async function offsetOf(url) {
      var head = await call("HEAD", url, {});
      if (head.status !== 200) return -1;
      return Number(head.headers.get("Upload-Offset"));
    }
    async function send(file, bar, state) {
      var key = keyOf(file);
      var url = localStorage.getItem(key);
      var offset = url ? await offsetOf(url) : -1;
      if (offset < 0) {
        var created = await call("POST", endpoint, {
          "Upload-Length": String(file.size),
          "Upload-Metadata": "filename " + b64(file.name) + ",source " + b64(source),
        });
        if (created.status !== 201) throw new Error(await created.text());
        url = new URL(created.headers.get("Location"), location.href).pathname;
        localStorage.setItem(key, url);
        offset = Number(created.headers.get("Upload-Offset") || "0");
      } else {
        state.textContent = "resuming at byte " + offset;
      }
      var failures = 0;
      while (offset < file.size) {
        bar.value = offset;
        try {
          var res = await call("PATCH", url, {
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": String(offset),
          }, file.slice(offset, Math.min(file.size, offset + chunk)));
          if (res.status === 204) {
            offset = Number(res.headers.get("Upload-Offset"));
            failures = 0;
            continue;
          }
          if (res.status < 500 && res.status !== 409) {
            localStorage.removeItem(key);
            throw new Error(await res.text());
          }
        } catch (error) {
          if (!(error instanceof TypeError)) throw error;
        }
        if (++failures > 5) throw new Error("the connection keeps failing; choose the file again to resume");
        state.textContent = "connection lost; retrying";
        await sleep(500 * Math.pow(2, failures));
        var now = await offsetOf(url).catch(function () { return -1; });
        if (now >= 0) offset = now;
      }
      bar.value = file.size;
      localStorage.removeItem(key);
    }
    function start(files) {
      Array.prototype.forEach.call(files, function (file) {
        var item = document.createElement("li");
        item.setAttribute("data-upload-file", file.name);
        var label = document.createElement("span");
        label.textContent = file.name + " ";
        var bar = document.createElement("progress");
        bar.max = Math.max(file.size, 1);
        bar.value = 0;
        bar.setAttribute("aria-label", file.name + " upload progress");
        var state = document.createElement("span");
        state.setAttribute("data-upload-state", "");
        state.textContent = " uploading";
        item.appendChild(label);
        item.appendChild(bar);
        item.appendChild(state);
        list.appendChild(item);
        running++;
        send(file, bar, state).then(function () {
          bar.value = bar.max;
          state.textContent = " uploaded";
        }, function (error) {
          state.textContent = " refused: " + error.message;
          state.className = "error";
          item.setAttribute("data-refused", "");
        }).then(function () {
          if (--running === 0 && !list.querySelector("[data-refused]")) location.reload();
        });
      });
    }
    input.addEventListener("change", function () { start(input.files); input.value = ""; });
    box.addEventListener("dragover", function (event) { event.preventDefault(); });
    box.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer) start(event.dataTransfer.files);
    });
  });
})();
`;
