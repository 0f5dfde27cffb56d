#!/usr/bin/env node
// The `latchkey` command. A committed file, so npm links it at install time; it runs the built CLI
// (npm run build -w @latchkey/client).
await import("../dist/cli/main.js");
