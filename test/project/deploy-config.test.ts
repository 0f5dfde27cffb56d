/**
 * The deployments wrangler.toml describes ([vars] for local development, [env.staging] and
 * [env.production]) against the configuration table of docs/configuration.md and the Worker's own reading of them
 * (src/config.ts): every variable documented, each environment complete (vars and bindings are not
 * inherited, so a forgotten one silently takes the code's default), production failing closed.
 */
import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { loadConfig } from "../../src/config";
import type { Env } from "../../src/env";

const { vars, topLevel, envs, documented: table } = inject("deployConfig");
const documented = (where: string) => table.filter((row) => row.where === where).map((row) => row.name);

describe("wrangler.toml against the configuration table of docs/configuration.md", () => {
  it("documents every variable of [vars], and [vars] holds every variable the table says is there", () => {
    expect(Object.keys(vars).length).toBeGreaterThan(10); // the table was read
    expect(Object.keys(vars).sort()).toEqual(documented("`[vars]`").sort());
  });

  it("documents every binding, and each documented binding is declared (or, if optional, shown commented)", () => {
    const bindings = table.filter((row) => row.where.startsWith("`[[")).map((row) => row.name);
    expect([...topLevel.bindings, ...topLevel.optional].sort()).toEqual(bindings.sort());
  });

  it("keeps secrets and development-only settings out of every vars table", () => {
    const notVars = [...documented("secret"), ...documented("secret / `.dev.vars`"), ...documented("`.dev.vars` only")];
    expect(notVars).toEqual(
      expect.arrayContaining([
        "JWT_SECRET",
        "VERIFY_TOKEN",
        "DEV_UI_TOKENS",
        "WEBHOOK_SECRET_KEY",
        "WEBHOOK_ALLOW_LOOPBACK",
      ]),
    );
    for (const table of [vars, envs.staging?.vars, envs.production?.vars]) {
      for (const name of notVars) expect(table).not.toHaveProperty(name);
    }
  });
});

describe.each(["staging", "production"] as const)("[env.%s]", (name) => {
  const deployment = envs[name];

  it("sets every variable [vars] sets, and no other", () => {
    expect(deployment).not.toBeNull();
    expect(Object.keys(deployment!.vars).sort()).toEqual(Object.keys(vars).sort());
  });

  it("declares every binding, the optional Analytics Engine dataset included, with its own rate-limiter namespaces", () => {
    // DB_1 is local development's second database for sharding by owner: a deployment adds its own only with D1_SHARDS.
    const needed = [...topLevel.bindings, ...topLevel.optional].filter((name) => !/^DB_\d+$/.test(name));
    expect([...deployment!.bindings].sort()).toEqual(needed.sort());
    const others = [topLevel, ...Object.values(envs).filter((e) => e !== deployment)].flatMap((e) => e!.namespaceIds);
    expect(new Set(deployment!.namespaceIds).size).toBe(deployment!.namespaceIds.length);
    for (const id of deployment!.namespaceIds) expect(others).not.toContain(id);
  });

  it("consumes the queue it produces to (webhook deliveries), a queue of its own", () => {
    expect(topLevel.queues.producers).toEqual(["latchkey-webhooks"]);
    expect(topLevel.queues.consumers).toEqual(topLevel.queues.producers);
    expect(deployment!.queues.producers.length).toBe(topLevel.queues.producers.length);
    expect(deployment!.queues.consumers).toEqual(deployment!.queues.producers);
    const others = [topLevel, ...Object.values(envs).filter((e) => e !== deployment)].flatMap(
      (e) => e!.queues.producers,
    );
    for (const queue of deployment!.queues.producers) expect(others).not.toContain(queue);
  });

  it("fails closed: an identity provider with issuer and audience checked, no HS256, no dev tokens, no errors", () => {
    const deployed = { ...env, ...deployment!.vars, JWT_SECRET: undefined, DEV_UI_TOKENS: undefined } as Env;
    const config = loadConfig(deployed);
    expect(config.errors).toEqual([]);
    expect(config.jwt.jwksUrl?.protocol).toBe("https:");
    expect(config.jwt.secret).toBeNull();
    expect(config.jwt.issuer).toBeTruthy();
    expect(config.jwt.audience).toBeTruthy();
    expect(config.jwt.issuer).not.toBe(vars.JWT_ISSUER); // not the local development issuer
    expect(deployment!.vars.JWT_ALLOW_ANY_ISSUER).toBe("false");
    expect(deployment!.vars.JWT_ALLOW_ANY_AUDIENCE).toBe("false");
    expect(config.ui.devTokens).toBe(false);
    expect(config.keyPrefix).not.toBe(vars.KEY_PREFIX); // its own prefix: a local key is never mistaken for one
    // Webhooks go to public https hosts only: the loopback exception is npm start's alone.
    expect(deployment!.vars).not.toHaveProperty("WEBHOOK_ALLOW_LOOPBACK");
    expect(config.webhooks.allowLoopback).toBe(false);
    expect(config.webhooks.dnsResolver.protocol).toBe("https:");
  });
});
