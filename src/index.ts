/**
 * The Worker: HTTP through the router, scheduled maintenance, and the KeyService entrypoint for
 * service bindings.
 */
import { loadConfig } from "./config";
import { createContext } from "./context";
import type { Env } from "./env";
import { createApp } from "./http/app";
import { dialectRoutes } from "./http/dialects";
import { routes } from "./http/routes";
import { describeError } from "./log";
import type { Keys } from "./service/keys";

export { KeyService, KeyVerifier } from "./rpc";

/** One router per set of mounted dialects (DIALECTS), built on first use. */
const apps = new Map<string, ReturnType<typeof createApp>>();

function appFor(env: Env): ReturnType<typeof createApp> {
  const dialects = loadConfig(env).dialects;
  const id = dialects.join(",");
  let app = apps.get(id);
  if (!app) {
    app = createApp([...routes, ...dialectRoutes(dialects)]);
    apps.set(id, app);
  }
  return app;
}

/**
 * What every Cron Trigger runs: small service methods, each on its own so one failing does not stop
 * the others (add a task here; the trigger's schedule is in wrangler.toml).
 */
export const scheduledTasks: Readonly<Record<string, (keys: Keys, now: number) => Promise<unknown>>> = {
  "audit retention": (keys, now) => keys.purgeAuditEvents(now),
};

export async function runScheduled(env: Env, ctx: ExecutionContext, now: number): Promise<void> {
  const { keys } = createContext(env, ctx);
  for (const [name, task] of Object.entries(scheduledTasks)) {
    try {
      await task(keys, now);
    } catch (error) {
      console.error(`latchkey: scheduled ${name} failed: ${describeError(error)}`);
    }
  }
}

export default {
  fetch: (request, env, ctx) => appFor(env).fetch(request, env, ctx),
  scheduled: (controller, env, ctx) => ctx.waitUntil(runScheduled(env, ctx, controller.scheduledTime)),
} satisfies ExportedHandler<Env>;
