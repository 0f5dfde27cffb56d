#!/usr/bin/env node
// The `latchkey` command. A committed file, so npm links it at install time; it runs the built CLI.
try {
  await import("../dist/cli/main.js");
} catch (error) {
  if (error?.code !== "ERR_MODULE_NOT_FOUND" || !String(error.message).includes("dist/cli/main.js")) throw error;
  console.error("latchkey: the CLI is not built yet: run `npm run build -w @latchkey/client` in the repository");
  process.exitCode = 1;
}
