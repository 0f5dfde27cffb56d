/** The Worker: HTTP through the router, and the KeyService entrypoint for service bindings. */
import { loadConfig } from "./config";
import type { Env } from "./env";
import { createApp } from "./http/app";
import { dialectRoutes } from "./http/dialects";
import { routes } from "./http/routes";

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

export default {
  fetch: (request, env, ctx) => appFor(env).fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
