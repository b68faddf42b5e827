# syntax=docker/dockerfile:1
#
# The three services, one image each:
#
#   docker build --target approval -t cr8tor-approval .
#   docker build --target metadata -t cr8tor-metadata .
#   docker build --target publish  -t cr8tor-publish  .
#   docker build --target operator -t cr8tor-operator .   (docs/operator.md)
#
# (`docker compose build` builds all three.) Each image runs its service from source with `deno run`,
# as the non-root user `deno` (uid 1993) of the official image, with its dependencies cached at build
# time: at run time it neither downloads nor writes anything outside /data and /tmp, so it runs with a
# read-only root filesystem. Configuration is the environment (README, "Configuration"); secrets are
# files in SECRETS_MNT_PATH (/run/secrets).
#
# The base is the official Debian image of the Deno version the project pins (.ci/run): glibc, which
# DuckDB's native addon needs, and tini as PID 1, which passes SIGTERM on to the service. It is pinned by
# tag. To pin it by digest too, build with
#   --build-arg DENO_IMAGE=denoland/deno:debian-2.9.6@sha256:<digest>
# where <digest> is what `docker buildx imagetools inspect denoland/deno:debian-2.9.6` prints (not
# recorded here: no image registry was reachable where this file was written).
ARG DENO_IMAGE=denoland/deno:debian-2.9.6

# ---- dependencies: every npm package of the lockfile, downloaded once per change of deno.json/deno.lock.
# Deno checks at start-up that every import of deno.json is in its cache, so one cache serves all three.
FROM ${DENO_IMAGE} AS deps
ENV DENO_DIR=/deno-dir \
    DENO_NO_UPDATE_CHECK=1 \
    DENO_NO_PROMPT=1 \
    NO_COLOR=1
WORKDIR /app
COPY deno.json deno.lock ./
RUN deno install --frozen

# ---- the code (.dockerignore keeps tests, tools, docs and secrets out), resolved against the cache.
FROM deps AS app
COPY domain/ domain/
COPY ports/ ports/
COPY application/ application/
COPY adapters/ adapters/
COPY apps/ apps/
# The publish service's hashing worker (adapters/filesystem/sha512_worker.ts) is started by URL, outside
# the module graph of its main.ts, so it is named here too.
RUN deno cache --frozen apps/approval/main.ts apps/metadata/main.ts apps/publish/main.ts apps/operator/main.ts \
      adapters/filesystem/sha512_worker.ts \
 && mkdir -p /data/lsc/staging /data/lsc/production /data/audit /data/state \
 && chown -R deno:deno /data
# The cache and the code stay owned by root: the service can read them, not change them.
# Outside a container the services listen on 127.0.0.1 by default (BIND_ADDRESS); in one they must
# listen on every interface of the container to be reached at all.
ENV SECRETS_MNT_PATH=/run/secrets \
    SHUTDOWN_GRACE_SECONDS=25 \
    BIND_ADDRESS=0.0.0.0
# SIGTERM (Docker's default stop signal) drains requests for SHUTDOWN_GRACE_SECONDS, cancels those still
# running and gives them 10 s more (apps/_shared/serve.ts): stop timeouts must allow 25 + 10 s and a margin
# (compose.yaml: stop_grace_period 45s; Kubernetes: terminationGracePeriodSeconds 45).
STOPSIGNAL SIGTERM
USER deno

# ---- the gateway: needs the three API keys.
FROM app AS approval
ENV PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["deno", "eval", "--no-config", "const r = await fetch(`http://127.0.0.1:${Deno.env.get('PORT') ?? '8000'}/health`, { signal: AbortSignal.timeout(4000) }); Deno.exit(r.ok ? 0 : 1)"]
CMD ["run", "--cached-only", "--frozen", "--allow-env", "--allow-read", "--allow-write", "--allow-net", "--allow-sys=osRelease", "--v8-flags=--initial-old-space-size=64", "apps/approval/main.ts"]

# ---- metadata: needs its key, the allow-list (ALLOWED_SOURCES_FILE) and the source credentials.
FROM app AS metadata
ENV PORT=8002
EXPOSE 8002
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["deno", "eval", "--no-config", "const r = await fetch(`http://127.0.0.1:${Deno.env.get('PORT') ?? '8002'}/health`, { signal: AbortSignal.timeout(4000) }); Deno.exit(r.ok ? 0 : 1)"]
CMD ["run", "--cached-only", "--frozen", "--allow-env", "--allow-read", "--allow-write", "--allow-net", "--allow-sys", "apps/metadata/main.ts"]

# ---- publish: also the filestores (TARGET_STORAGE_ACCOUNT_{NAME}_SDE_MNT_PATH, under /data) and DuckDB,
# the only native library (--allow-ffi). It sweeps interrupted runs before it listens, hence the longer
# start period.
FROM app AS publish
ENV PORT=8003
EXPOSE 8003
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["deno", "eval", "--no-config", "const r = await fetch(`http://127.0.0.1:${Deno.env.get('PORT') ?? '8003'}/health`, { signal: AbortSignal.timeout(4000) }); Deno.exit(r.ok ? 0 : 1)"]
CMD ["run", "--cached-only", "--frozen", "--allow-env", "--allow-read", "--allow-write", "--allow-net", "--allow-sys", "--allow-ffi", "--v8-flags=--max-old-space-size=256,--max-semi-space-size=8,--initial-old-space-size=48,--no-concurrent-array-buffer-sweeping", "apps/publish/main.ts"]

# ---- operator: the AnalyticsWorkspaceDataSource operator (docs/operator.md, k8s/operator). It talks to
# the Kubernetes API and the run store; no filestore, no native library. It writes only the upload
# quarantine's data sources of `Uploaded` resources (UPLOAD_QUARANTINE_PATH, when mounted). Its Jobs run
# the publish image in one-run mode (`run <id>`, k8s/operator/job-template.yaml).
FROM app AS operator
ENV PORT=8004
EXPOSE 8004
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["deno", "eval", "--no-config", "const r = await fetch(`http://127.0.0.1:${Deno.env.get('PORT') ?? '8004'}/health`, { signal: AbortSignal.timeout(4000) }); Deno.exit(r.ok ? 0 : 1)"]
CMD ["run", "--cached-only", "--frozen", "--allow-env", "--allow-read", "--allow-write", "--allow-net", "--allow-sys", "apps/operator/main.ts"]
