/**
 * What a release's provenance records (`docs/provenance.md`): where the data came from, who asked, who
 * approved, which checks were applied, and what this service did, as plain data. The publish service
 * gathers it from the run store, the staging manifest and the release the gateway forwards;
 * `releaseCrate` (`domain/release_crate.ts`) turns it into the release's RO-Crate. Credentials are never
 * part of it.
 *
 * @module
 */
import type { DatasetDisclosure, DisclosureThresholds } from "./disclosure.ts";
import type { Decision } from "./release.ts";

/** Who did something: a service key (its id), a person (their id at their issuer), or the service itself. */
export interface ProvenanceAgent {
  readonly kind: "key" | "person" | "system";
  readonly id: string;
  readonly issuer?: string | undefined;
}

/** One run of this service (a package or this publish): its agent, times and how it ended. */
export interface ProvenanceRun {
  readonly run_id: string;
  readonly agent: ProvenanceAgent;
  /** ISO 8601 with milliseconds and `Z`. */
  readonly started_at: string;
  readonly ended_at: string;
  readonly status: "completed" | "failed";
}

/** A column as the source described it. */
export interface ProvenanceColumn {
  readonly name: string;
  /** The source's type name, as the metadata service reports it. */
  readonly datatype: string;
  readonly description: string | null;
}

/** A table as released: only the approved columns. */
export interface ProvenanceTable {
  readonly name: string;
  readonly description: string | null;
  readonly columns: readonly ProvenanceColumn[];
}

/** One dataset (source schema) of the release. */
export interface ProvenanceDataset {
  readonly schema_name: string;
  readonly name: string | null;
  readonly description: string | null;
  readonly tables: readonly ProvenanceTable[];
  /** The dataset's disclosure pre-checks; `null` when they were off. */
  readonly disclosure: DatasetDisclosure | null;
}

/** A payload file of a filestore release, relative to the bag root (`data/outputs/...`). */
export interface ProvenanceFile {
  readonly path: string;
  readonly bytes: number;
  readonly sha512: string;
}

/** A table of a PostgreSQL release, and the OPAL resource that serves it. */
export interface ProvenanceDestinationTable {
  readonly schema: string;
  readonly table: string;
  readonly opal_resource: string | null;
}

/** Everything a release's crate says, gathered at publish. */
export interface ReleaseProvenance {
  /** The gateway's release id; `null` when the publish service was called without the gateway. */
  readonly release_id: string | null;
  readonly project_name: string;
  readonly project_start_time: string;
  /** The release's licence: an SPDX id or a URL, and a name people read. */
  readonly license: { readonly id: string; readonly name: string };
  /** This service: its name and version (the instrument of every action). */
  readonly service: { readonly name: string; readonly version: string };
  readonly destination: {
    readonly type: "filestore" | "postgresql";
    readonly name: string;
    readonly format: "csv" | "duckdb" | null;
  };
  /** Where the data was read: never how to sign in. `null` when no package run is known. */
  readonly source: {
    readonly engine: string;
    /** A host name, or a Databricks workspace URL. */
    readonly host: string;
    readonly port: number;
    /** The database, or a Databricks catalog. */
    readonly database: string;
  } | null;
  readonly datasets: readonly ProvenanceDataset[];
  /** A filestore release's payload files (empty for PostgreSQL). */
  readonly files: readonly ProvenanceFile[];
  /** A PostgreSQL release's tables (empty for a filestore). */
  readonly destination_tables: readonly ProvenanceDestinationTable[];
  /** The package runs whose staging this release publishes, oldest first. */
  readonly packages: readonly ProvenanceRun[];
  /** This publish; `ended_at` is when the release was assembled. */
  readonly publish: ProvenanceRun;
  /** Every decision recorded on the release, oldest first (from the gateway). */
  readonly decisions: readonly Decision[];
  /** The thresholds the disclosure pre-checks applied; `null` when no dataset was checked. */
  readonly disclosure_thresholds: DisclosureThresholds | null;
}
