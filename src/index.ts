/**
 * The Worker: HTTP through the router, scheduled maintenance, and the KeyService entrypoint for
 * service bindings.
 */
import { createContext } from "./context";
import type { Env } from "./env";
import { createApp } from "./http/app";
import { routes } from "./http/routes";
import { describeError } from "./log";
import type { Keys } from "./service/keys";

export { KeyService, KeyVerifier } from "./rpc";

const app = createApp(routes);

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
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
  scheduled: (controller, env, ctx) => ctx.waitUntil(runScheduled(env, ctx, controller.scheduledTime)),
} satisfies ExportedHandler<Env>;
