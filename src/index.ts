/**
 * The Worker: HTTP through the router, the KeyService entrypoints for service bindings, and the Cron
 * Trigger that purges long-dead keys (PURGE_AFTER_DAYS; off by default).
 */
import { loadConfig } from "./config";
import { createContext } from "./context";
import type { Env } from "./env";
import { createApp } from "./http/app";
import { dialectRoutes } from "./http/dialects";
import { routes } from "./http/routes";
import { describeError, log, withRequestId } from "./log";

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

export default {
  fetch: (request, env, ctx) => appFor(env).fetch(request, env, ctx),
  scheduled: (controller, env, ctx) =>
    withRequestId(`cron:${controller.cron}:${controller.scheduledTime}`, async () => {
      try {
        await createContext(env, ctx).purge(controller.scheduledTime);
      } catch (error) {
        log("error", "purge_failed", { error: describeError(error) });
        throw error;
      }
    }),
} satisfies ExportedHandler<Env>;
