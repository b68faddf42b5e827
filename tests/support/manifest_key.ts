/**
 * The staging manifest key tests sign with: one fixed key, so a filestore built again (a restarted
 * service, a crash worker in another process) verifies what an earlier one staged.
 *
 * @module
 */
import { stagingManifestKey } from "../../domain/staging_manifest.ts";

/** The material {@link TEST_MANIFEST_KEY} is derived from (a stand-in for the publish service's key). */
export const TEST_MANIFEST_KEY_MATERIAL = "test-staging-manifest-key-0123456789abcdef";

/** The key every test filestore signs its staging manifests with. */
export const TEST_MANIFEST_KEY: CryptoKey = await stagingManifestKey(TEST_MANIFEST_KEY_MATERIAL);
