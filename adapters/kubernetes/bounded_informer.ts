/**
 * An informer (`ListWatch` of `@kubernetes/client-node`) whose watches cannot go silent.
 *
 * On Deno the client's watch stops for good, without an error, once its 30-second idle timeout fires
 * on a quiet watch, and it does not notice a connection broken off in the middle of a watch until that
 * timeout. So every watch asks the server to end it after `timeoutSeconds` (the API server's own
 * `timeoutSeconds` parameter, well inside the client's 30 s): a quiet watch then ends normally and the
 * informer watches again from its resource version (or lists again after 410 Gone). A watch that has
 * not ended long after that is taken as broken off: the informer is stopped and started again (a new
 * list, then a new watch). An informer that reports an error is started again too.
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";

/** A `Watch` that sends `timeoutSeconds` and remembers when its open watch started. */
class BoundedWatch extends k8s.Watch {
  /** When the open watch started; `undefined` while none is open. */
  openSince: number | undefined;

  constructor(config: k8s.KubeConfig, readonly timeoutSeconds: number) {
    super(config);
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    // deno-lint-ignore no-explicit-any
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    // deno-lint-ignore no-explicit-any
    done: (err: any) => void,
  ): Promise<AbortController> {
    const started = Date.now();
    this.openSince = started;
    return super.watch(
      path,
      { ...queryParams, timeoutSeconds: this.timeoutSeconds },
      callback,
      (err) => {
        // A late end of a watch given up on must not hide the one open now.
        if (this.openSince === started) this.openSince = undefined;
        done(err);
      },
    );
  }
}

/** What {@link boundedInformer} needs. */
export interface BoundedInformerOptions<T extends k8s.KubernetesObject> {
  readonly config: k8s.KubeConfig;
  /** The collection's path, e.g. `/apis/batch/v1/namespaces/ns/jobs`. */
  readonly path: string;
  readonly list: k8s.ListPromise<T>;
  readonly labelSelector?: string;
  /** How long the server keeps each watch open; default 20 s. */
  readonly timeoutSeconds?: number;
  /** Told when the informer is started again (after an error or a broken watch). */
  readonly onRestart?: (why: string) => void;
}

/** An informer that stays watching; `close` stops it for good. */
export interface BoundedInformer<T extends k8s.KubernetesObject> {
  readonly informer: k8s.Informer<T>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** Builds a {@link BoundedInformer} (not started). */
export function boundedInformer<T extends k8s.KubernetesObject>(
  options: BoundedInformerOptions<T>,
): BoundedInformer<T> {
  const timeoutSeconds = options.timeoutSeconds ?? 20;
  const watch = new BoundedWatch(options.config, timeoutSeconds);
  const informer = new k8s.ListWatch<T>(
    options.path,
    watch,
    options.list,
    false,
    options.labelSelector,
  );
  let closed = true;
  let restarting = false;
  const restart = async (why: string) => {
    if (closed || restarting) return;
    restarting = true;
    options.onRestart?.(why);
    try {
      await informer.stop();
      if (!closed) await informer.start();
    } catch {
      // An error event follows, and with it another restart.
    } finally {
      restarting = false;
    }
  };
  informer.on("error", () => setTimeout(() => void restart("error"), 1000));
  // A watch far past its own timeout was broken off without the client noticing.
  const stuckAfterMs = (timeoutSeconds * 2 + 1) * 1000;
  let watchdog: ReturnType<typeof setInterval> | undefined;
  return {
    informer,
    start: async () => {
      closed = false;
      watchdog = setInterval(() => {
        const since = watch.openSince;
        if (since !== undefined && Date.now() - since > stuckAfterMs) {
          watch.openSince = undefined;
          void restart("watch_stuck");
        }
      }, Math.max(250, stuckAfterMs / 4));
      await informer.start();
    },
    close: async () => {
      closed = true;
      clearInterval(watchdog);
      await informer.stop();
    },
  };
}
