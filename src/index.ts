/** The Worker: HTTP through the router, and the KeyService entrypoint for service bindings. */
import type { Env } from "./env";
import { createApp } from "./http/app";
import { routes } from "./http/routes";

export { KeyService, KeyVerifier } from "./rpc";

const app = createApp(routes);

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
