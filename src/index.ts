/**
 * The Worker: HTTP through the router, the KeyService entrypoints for service bindings, and the Cron
 * Trigger's maintenance: the purge of long-dead keys (PURGE_AFTER_DAYS; off by default), the audit
 * log's retention (AUDIT_RETENTION_DAYS) and the expiry warnings (EXPIRY_WARNING_DAYS).
 */
import { loadConfig } from "./config";
import { type AppContext, createContext } from "./context";
import type { Env, WebhookMessage } from "./env";
import { createApp } from "./http/app";
import { dialectRoutes } from "./http/dialects";
import { routes } from "./http/routes";
import { describeError, log, withRequestId } from "./log";
import { handleWebhookBatch } from "./webhook-queue";

export { KeyService, KeyVerifier } from "./rpc";
export { UsageCounter } from "./store/counter";

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
export const scheduledTasks: Readonly<Record<string, (context: AppContext, now: number) => Promise<unknown>>> = {
  purge: (context, now) => context.purge(now),
  "audit retention": (context, now) => context.keys.purgeAuditEvents(now),
  "expiry warnings": (context, now) => context.expiryWarnings(now),
  // Last, so events other tasks wrote are dispatched in the same run.
  webhooks: (context, now) => context.dispatchWebhooks(now),
};

export async function runScheduled(env: Env, ctx: ExecutionContext, now: number): Promise<void> {
  const context = createContext(env, ctx);
  for (const [name, task] of Object.entries(scheduledTasks)) {
    try {
      await task(context, now);
    } catch (error) {
      log("error", "scheduled_task_failed", { task: name, error: describeError(error) });
    }
  }
}

export default {
  fetch: (request, env, ctx) => appFor(env).fetch(request, env, ctx),
  scheduled: (controller, env, ctx) =>
    ctx.waitUntil(
      withRequestId(`cron:${controller.cron}:${controller.scheduledTime}`, () =>
        runScheduled(env, ctx, controller.scheduledTime),
      ),
    ),
  queue: (batch, env) => handleWebhookBatch(batch, env),
} satisfies ExportedHandler<Env, WebhookMessage>;
