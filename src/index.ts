/**
 * The Worker: HTTP through the router, the KeyService entrypoints for service bindings, and the Cron
 * Trigger that purges long-dead keys (PURGE_AFTER_DAYS; off by default).
 */
import { createContext } from "./context";
import type { Env } from "./env";
import { createApp } from "./http/app";
import { routes } from "./http/routes";
import { describeError, log, withRequestId } from "./log";

export { KeyService, KeyVerifier } from "./rpc";

const app = createApp(routes);

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
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
