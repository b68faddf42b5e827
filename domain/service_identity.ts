/**
 * What this software calls itself, in one place: the BagIt `Bag-Software-Agent`, the OpenAPI documents'
 * version and the instrument named in every release's RO-Crate (`docs/provenance.md`).
 *
 * @module
 */

/** The software's name. */
export const SOFTWARE_NAME = "cr8tor-publisher-ts";

/** The software's version; raise it with every release of the services. */
export const SOFTWARE_VERSION = "1.0.0";
