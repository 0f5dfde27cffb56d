/**
 * The D1 schema this build needs: the newest file in migrations/. /readyz reports "not ready" until
 * D1's d1_migrations table lists it, so a deploy whose migrations were not applied is visible at once.
 * test/http/readiness.test.ts fails if this is not the newest migration, so adding one means updating it.
 */
export const LATEST_MIGRATION = "0015_webhook_relay.sql";
