/**
 * The release's RO-Crate (RO-Crate 1.1): a minimal builder — the metadata descriptor, the root Dataset
 * and one File entity per payload file. The crate builder branch replaces it with the full crate.
 *
 * @module
 */
import type { ReleaseProvenance } from "./provenance.ts";

/** The RO-Crate 1.1 JSON-LD of a release, as a plain JSON object. */
export function releaseCrate(p: ReleaseProvenance): Record<string, unknown> {
  const files = p.files.map((f) => ({
    "@id": f.path,
    "@type": "File",
    contentSize: String(f.bytes),
    sha512: f.sha512,
  }));
  return {
    "@context": "https://w3id.org/ro/crate/1.1/context",
    "@graph": [
      {
        "@id": "ro-crate-metadata.json",
        "@type": "CreativeWork",
        conformsTo: { "@id": "https://w3id.org/ro/crate/1.1" },
        about: { "@id": "./" },
      },
      {
        "@id": "./",
        "@type": "Dataset",
        name: `${p.project_name} ${p.project_start_time}`,
        datePublished: p.publish.ended_at,
        license: { "@id": p.license.id },
        hasPart: files.map((f) => ({ "@id": f["@id"] })),
      },
      ...files,
    ],
  };
}
