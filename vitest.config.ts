import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { CONSUMER_BUNDLE } from "./test/setup/paths";

/** The HS256 secret the tests sign their JWTs with (tests only; never a deployment's). */
export const TEST_JWT_SECRET = "test-only-secret-0123456789abcdef0123456789";

/**
 * The plugin runs the Worker under test (latchkey) as its runner, named `vitest-plugin-runner-<project
 * name>` (this project has none): an auxiliary Worker reaches latchkey's entrypoints by binding to
 * that name, as a deployed one binds to "latchkey".
 */
const RUNNER = "vitest-plugin-runner-";

export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            JWT_SECRET: TEST_JWT_SECRET,
            TEST_MIGRATIONS: migrations,
            // The suite runs with both kinds of imported key enabled (test/features/import.test.ts).
            LEGACY_KEY_FORMATS: "sanctum,opaque:sk_live_",
            // DEV_UI_TOKENS: a developer's .dev.vars turns it on; the tests start from it off.
            DEV_UI_TOKENS: "",
            // Webhook signing secrets are encrypted with this (tests only). WEBHOOK_ALLOW_LOOPBACK: a
            // developer's .dev.vars turns it on; the tests start from it off.
            WEBHOOK_SECRET_KEY: "test-only-webhook-key-0123456789abcdef",
            WEBHOOK_ALLOW_LOOPBACK: "",
          },
          // The example consumer (examples/consumer), for test/clients/consumer.test.ts: the tests call it
          // through CONSUMER; it calls latchkey through a real service binding to KeyVerifier (which
          // only verifies: the consumer cannot manage keys).
          serviceBindings: { CONSUMER: "latchkey-consumer" },
          workers: [
            {
              name: "latchkey-consumer",
              modules: true,
              scriptPath: CONSUMER_BUNDLE,
              compatibilityDate: "2026-11-01",
              serviceBindings: { KEYS: { name: RUNNER, entrypoint: "KeyVerifier" } },
            },
          ],
        },
      }),
    ],
    test: {
      globalSetup: [
        "./test/setup/build-consumer.ts",
        "./test/setup/vendor-schemas.mjs",
        "./test/setup/build-ui.ts",
        "./test/setup/quiet-rpc.ts",
        "./test/setup/deploy-config.ts",
        "./test/setup/docs.ts",
      ],
      setupFiles: ["./test/setup/apply-migrations.ts", "./test/setup/last-use.ts", "./test/setup/usage-tally.ts"],
      // test/rules/model.test.ts: how many sequences, from which seed (`npm run model -- --runs N --seed S`).
      provide: {
        modelRun: {
          runs: process.env.MODEL_RUNS ?? "",
          seed: process.env.MODEL_SEED ?? "",
          commands: process.env.MODEL_COMMANDS ?? "",
          only: process.env.MODEL_ONLY ?? "",
        },
      },
      include: ["test/**/*.test.ts"],
      // The machine running the suite may be shared and busy: a slow test is not a failing one (speed is
      // measured by the benchmarks, never by the tests).
      testTimeout: 30_000,
    },
  };
});
