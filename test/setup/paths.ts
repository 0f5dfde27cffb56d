/**
 * Where the global setups write what the tests import. A module of its own, not vitest.config.ts:
 * importing the config loads the workers plugin, which costs every test run (and every mutant) seconds.
 */

/** The example consumer, bundled by test/setup/build-consumer.ts. */
export const CONSUMER_BUNDLE = ".wrangler/test/consumer.mjs";
/** The vendors' response and request schemas as validators, compiled by test/setup/vendor-schemas.mjs. */
export const VENDOR_SCHEMAS_MODULE = ".wrangler/test/vendor-schemas.mjs";
