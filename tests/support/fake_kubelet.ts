/**
 * A stand-in for the Job controller and kubelet, over the fake Kubernetes API
 * (`tests/support/fake_kubernetes.ts`): every new Job of a namespace gets a Pod (`job-name` label), its
 * first container is "run" by a callback the test gives (in process, or as a real process with the
 * container's command, arguments and environment), and the Pod and Job get the statuses a cluster
 * writes: a terminated container with its exit code and reason, then the Job's `Complete` or `Failed`
 * condition.
 *
 * @module
 */
import type { FakeKubernetes, KubeObject } from "./fake_kubernetes.ts";

/** How a container ended. */
export interface ContainerEnd {
  readonly exitCode: number;
  /** `Completed`, `Error`, `OOMKilled`... */
  readonly reason?: string;
  readonly message?: string;
}

/** Runs a Job's container; the Job object is given as the API server holds it. */
export type ContainerRunner = (job: KubeObject) => Promise<ContainerEnd>;

/** The stand-in kubelet. */
export interface FakeKubelet extends AsyncDisposable {
  /** Names of the Jobs it started, in order. */
  readonly started: readonly string[];
  /** Waits until every Job it started has ended. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

const jobs = (namespace: string) => ({ group: "batch", version: "v1", plural: "jobs", namespace });
const pods = (namespace: string) => ({ group: "", version: "v1", plural: "pods", namespace });

/** Starts watching `namespace` for Jobs (polling the fake's store every 50 ms). */
export function startFakeKubelet(
  api: FakeKubernetes,
  namespace: string,
  run: ContainerRunner,
): FakeKubelet {
  const started: string[] = [];
  const running = new Set<Promise<void>>();
  let stopped = false;

  async function execute(job: KubeObject): Promise<void> {
    const name = job.metadata.name as string;
    const podName = `${name}-${crypto.randomUUID().slice(0, 5)}`;
    const container = job.spec.template.spec.containers[0].name as string;
    api.put({ ...pods(namespace), name: podName }, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: podName,
        labels: { "job-name": name, ...job.spec.template.metadata?.labels },
      },
      spec: job.spec.template.spec,
      status: { phase: "Running" },
    });
    let end: ContainerEnd;
    try {
      end = await run(job);
    } catch (e) {
      end = { exitCode: 128, reason: "ContainerCannotRun", message: (e as Error).message };
    }
    const ok = end.exitCode === 0;
    const pod = api.get({ ...pods(namespace), name: podName })!;
    api.put({ ...pods(namespace), name: podName }, {
      ...pod,
      status: {
        phase: ok ? "Succeeded" : "Failed",
        containerStatuses: [{
          name: container,
          state: {
            terminated: {
              exitCode: end.exitCode,
              reason: end.reason ?? (ok ? "Completed" : "Error"),
              ...(end.message === undefined ? {} : { message: end.message }),
            },
          },
        }],
      },
    });
    const current = api.get({ ...jobs(namespace), name });
    if (current === undefined) return; // deleted meanwhile
    const at = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    api.put({ ...jobs(namespace), name }, {
      ...current,
      status: ok
        ? {
          succeeded: 1,
          conditions: [{ type: "Complete", status: "True", lastTransitionTime: at }],
        }
        : {
          failed: 1,
          conditions: [{
            type: "Failed",
            status: "True",
            reason: "BackoffLimitExceeded",
            message: "Job has reached the specified backoff limit",
            lastTransitionTime: at,
          }],
        },
    });
  }

  const poller = setInterval(() => {
    if (stopped) return;
    for (const job of api.list(jobs(namespace))) {
      const name = job.metadata.name as string;
      if (started.includes(name) || job.status?.conditions !== undefined) continue;
      started.push(name);
      const task = execute(job).finally(() => running.delete(task));
      running.add(task);
    }
  }, 50);

  const kubelet: FakeKubelet = {
    started,
    idle: async () => {
      while (running.size > 0) await Promise.allSettled([...running]);
    },
    stop: async () => {
      stopped = true;
      clearInterval(poller);
      await kubelet.idle();
    },
    async [Symbol.asyncDispose]() {
      await kubelet.stop();
    },
  };
  return kubelet;
}

/**
 * A {@link ContainerRunner} that runs the Job's first container as a real local process: its command and
 * arguments, its literal environment (plus `PATH`, `HOME` and Deno's cache), every PersistentVolumeClaim mounted at a
 * local folder (`volumeDir(claimName)`, a `subPath` below it; values of variables that equal a mount
 * path, or the folder of a volume's sub-path mounts, point there), and
 * the exit code as the container's. Init containers are not run: the sub-path folders they would make
 * are made here.
 */
export function processRunner(volumeDir: (claim: string) => Promise<string>): ContainerRunner {
  return async (job) => {
    const pod = job.spec.template.spec;
    const container = pod.containers[0];
    const mounts = new Map<string, string>();
    for (const mount of container.volumeMounts ?? []) {
      const volume = (pod.volumes ?? []).find((v: KubeObject) => v.name === mount.name);
      const claim = volume?.persistentVolumeClaim?.claimName;
      if (claim === undefined) continue;
      const root = await volumeDir(claim);
      const local = mount.subPath === undefined ? root : `${root}/${mount.subPath}`;
      await Deno.mkdir(local, { recursive: true });
      mounts.set(mount.mountPath, local);
      // The folder holding sub-path mounts of one volume stands for the volume's root.
      if (mount.subPath !== undefined && mount.mountPath.endsWith(`/${mount.subPath}`)) {
        mounts.set(mount.mountPath.slice(0, -mount.subPath.length - 1), root);
      }
    }
    const env: Record<string, string> = { NO_COLOR: "1" };
    for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
      const value = Deno.env.get(name);
      if (value !== undefined) env[name] = value;
    }
    for (const entry of container.env ?? []) {
      if (typeof entry.value === "string") env[entry.name] = mounts.get(entry.value) ?? entry.value;
    }
    const [command, ...args] = [...container.command, ...(container.args ?? [])];
    const out = await new Deno.Command(command, {
      args,
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stderr).trim();
    return {
      exitCode: out.code,
      ...(out.code === 0 ? {} : { reason: "Error", message: text.slice(-500) }),
    };
  };
}
