/**
 * Leader election through a `coordination.k8s.io/v1` Lease, as client-go does it: a replica holds the
 * lease while it renews it within `leaseDurationSeconds`; another takes it over only once it expired.
 * Every write carries the resource version it read, so of two replicas racing for a free lease the API
 * server lets exactly one win (the other gets 409 Conflict, or 409 AlreadyExists on the first create).
 *
 * @module
 */
import type * as k8s from "@kubernetes/client-node";
import { type KubeApi, statusOf, unlessMissing } from "./kube_api.ts";

/** What {@link LeaseLeader} needs. */
export interface LeaseLeaderOptions {
  readonly api: KubeApi;
  readonly namespace: string;
  readonly name: string;
  /** This replica (its pod name). */
  readonly identity: string;
  /** How long a lease holds without renewal. */
  readonly leaseSeconds: number;
  /** How often the holder renews and the others try; default a third of the lease. */
  readonly retryMs?: number;
  /** Called when this replica becomes leader (`true`) or stops being it (`false`). */
  readonly onChange: (leader: boolean) => void;
  readonly onError?: (error: unknown) => void;
}

/** Holds, or waits for, one Lease. */
export class LeaseLeader {
  readonly #options: LeaseLeaderOptions;
  #leader = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #attempt: Promise<void> = Promise.resolve();

  /** See {@link LeaseLeaderOptions}. */
  constructor(options: LeaseLeaderOptions) {
    this.#options = options;
  }

  /** Whether this replica holds the lease now. */
  get leader(): boolean {
    return this.#leader;
  }

  /** Starts trying (at once, then every retry interval). */
  start(): void {
    this.#stopped = false;
    const loop = () => {
      this.#attempt = this.tryOnce().then(() => {}, (e) => this.#options.onError?.(e)).finally(
        () => {
          if (!this.#stopped) {
            this.#timer = setTimeout(
              loop,
              this.#options.retryMs ?? this.#options.leaseSeconds * 333,
            );
          }
        },
      );
    };
    loop();
  }

  /** One attempt to acquire or renew; resolves to whether this replica leads afterwards. */
  async tryOnce(): Promise<boolean> {
    const { api, namespace, name, identity, leaseSeconds } = this.#options;
    const now = new Date();
    const lease = await unlessMissing(() =>
      api.coordination.readNamespacedLease({ name, namespace })
    );
    const spec: k8s.V1LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: leaseSeconds,
      renewTime: now as unknown as k8s.V1MicroTime,
    };
    let won: boolean;
    try {
      if (lease === undefined) {
        await api.coordination.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: { ...spec, acquireTime: now as unknown as k8s.V1MicroTime, leaseTransitions: 0 },
          },
        });
        won = true;
      } else {
        const holder = lease.spec?.holderIdentity ?? "";
        const renewed = lease.spec?.renewTime === undefined
          ? 0
          : new Date(lease.spec.renewTime as unknown as string).getTime();
        const duration = (lease.spec?.leaseDurationSeconds ?? leaseSeconds) * 1000;
        const ours = holder === identity;
        if (!ours && holder !== "" && renewed + duration > now.getTime()) {
          won = false;
        } else {
          await api.coordination.replaceNamespacedLease({
            name,
            namespace,
            body: {
              metadata: { name, namespace, resourceVersion: lease.metadata?.resourceVersion ?? "" },
              spec: {
                ...spec,
                acquireTime: (ours ? lease.spec?.acquireTime : undefined) ??
                  now as unknown as k8s.V1MicroTime,
                leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + (ours ? 0 : 1),
              },
            },
          });
          won = true;
        }
      }
    } catch (e) {
      if (statusOf(e) !== 409) throw e;
      won = false;
    }
    this.#set(won);
    return won;
  }

  #set(leader: boolean): void {
    if (leader === this.#leader) return;
    this.#leader = leader;
    this.#options.onChange(leader);
  }

  /** Stops renewing; a held lease is released (its holder emptied) so another replica takes over now. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#attempt;
    if (!this.#leader) return;
    const { api, namespace, name } = this.#options;
    try {
      const lease = await api.coordination.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity === this.#options.identity) {
        await api.coordination.replaceNamespacedLease({
          name,
          namespace,
          body: { ...lease, spec: { ...lease.spec, holderIdentity: "" } },
        });
      }
    } catch (e) {
      this.#options.onError?.(e);
    }
    this.#set(false);
  }
}
