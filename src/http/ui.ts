/**
 * The keys page and its files under /ui/ (not part of the API document):
 * - `/ui/` the standalone page, with a strict Content-Security-Policy (scripts and styles from this
 *   origin only, no inline code, Trusted Types, no framing unless UI_FRAME_ANCESTORS allows it);
 * - `/ui/<name>.<hash>.<ext>` the built files (ui-assets.generated.ts), immutable for a year, and
 *   `/ui/<name>.<ext>` the same under a stable name for embedding hosts: 5 minutes plus an ETag. Both
 *   may be loaded from any origin (public code, no secret);
 * - `POST /ui/dev-token` mints a JWT for a typed subject, only in HS256 mode with DEV_UI_TOKENS=true
 *   and only for requests to a loopback host; otherwise it does not exist (404).
 */
import type { IRequest, RouterType } from "itty-router";
import { mintDevToken } from "../auth/dev-token";
import { isLoopback, loadConfig } from "../config";
import type { Env } from "../env";
import { DevTokenRequest, parseInput } from "../schemas";
import { ValidationError } from "../service/errors";
import { readJsonBody } from "./body";
import { HttpError } from "./problem";
import { json } from "./route";
import { UI_ASSETS, type UiAsset } from "./ui-assets.generated";

const IMMUTABLE = "public, max-age=31536000, immutable";
const STABLE = "public, max-age=300";

/** Each asset under its versioned name and its stable name. */
const files = new Map<string, { asset: UiAsset; versioned: boolean }>();
for (const asset of UI_ASSETS) {
  const dot = asset.name.lastIndexOf(".");
  files.set(`${asset.name.slice(0, dot)}.${asset.hash}${asset.name.slice(dot)}`, { asset, versioned: true });
  files.set(asset.name, { asset, versioned: false });
}

/** The versioned URL of a built file. */
export function assetPath(name: string): string {
  const asset = UI_ASSETS.find((a) => a.name === name);
  if (!asset) throw new Error(`no UI asset ${name}`);
  const dot = name.lastIndexOf(".");
  return `/ui/${name.slice(0, dot)}.${asset.hash}${name.slice(dot)}`;
}

function serveAsset(request: IRequest): Response {
  const file = files.get(request.params.file ?? "");
  if (!file) throw new HttpError("not_found", { detail: "No such file" });
  const etag = `"${file.asset.hash}"`;
  const headers = {
    "Content-Type": file.asset.type,
    "Cache-Control": file.versioned ? IMMUTABLE : STABLE,
    ETag: etag,
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
  };
  if (request.headers.get("If-None-Match") === etag) return new Response(null, { status: 304, headers });
  return new Response(file.asset.body, { headers });
}

/** The page's security headers; `frameAncestors` is a checked CSP source list (config.ts). */
export function pageSecurityHeaders(frameAncestors: string): Record<string, string> {
  const csp = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'self'",
    `frame-ancestors ${frameAncestors}`,
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
  ].join("; ");
  const frameOptions = frameAncestors === "'none'" ? "DENY" : frameAncestors === "'self'" ? "SAMEORIGIN" : null;
  return {
    "Content-Security-Policy": csp,
    ...(frameOptions ? { "X-Frame-Options": frameOptions } : {}),
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
  };
}

function page(devTokens: boolean): string {
  const signIn = devTokens
    ? `<form id="sign-in" data-mode="dev">
<h2>Sign in (local development)</h2>
<label for="sub">Subject (user id)</label><input id="sub" required autocomplete="off" value="">
<label for="org">Workspace (optional)</label><input id="org" autocomplete="off">
<button type="submit">Sign in with a dev token</button>
<p class="hint">This server mints tokens for any subject (DEV_UI_TOKENS=true, HS256 mode). Never enable it in production.</p>
<p id="sign-in-error" class="error" role="alert" hidden></p>
</form>`
    : `<form id="sign-in" data-mode="token">
<h2>Sign in</h2>
<label for="jwt">Access token (JWT from your identity provider)</label><input id="jwt" type="password" required autocomplete="off">
<button type="submit">Sign in</button>
<p class="hint">The token stays in this tab's memory: it is never stored, and reloading the page signs you out.</p>
<p id="sign-in-error" class="error" role="alert" hidden></p>
</form>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>API keys · latchkey</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${assetPath("keys-page.css")}">
<script type="module" src="${assetPath("latchkey-keys.js")}"></script>
<script type="module" src="${assetPath("keys-page.js")}"></script>
</head>
<body>
<main>
<h1>latchkey</h1>
${signIn}
<div id="signed-in" hidden>
<p class="signed-in-bar"><span>Signed in as <strong id="who"></strong><span id="workspace"></span></span> <button type="button" id="sign-out">Sign out</button></p>
<latchkey-keys id="keys"></latchkey-keys>
</div>
</main>
</body>
</html>
`;
}

function servePage(_request: IRequest, env: Env): Response {
  const { ui } = loadConfig(env);
  return new Response(page(ui.devTokens), {
    headers: { "Content-Type": "text/html; charset=utf-8", ...pageSecurityHeaders(ui.frameAncestors) },
  });
}

async function devToken(request: IRequest, env: Env): Promise<Response> {
  const config = loadConfig(env);
  if (!config.ui.devTokens || !isLoopback(new URL(request.url))) {
    throw new HttpError("not_found", { detail: `No route for ${new URL(request.url).pathname}` });
  }
  const parsed = parseInput(DevTokenRequest, await readJsonBody(request));
  if (!parsed.success) throw new ValidationError(parsed.issues, "body");
  const token = await mintDevToken(config, parsed.data.sub, parsed.data.org ?? null);
  return json({ token, token_type: "Bearer" }, 200, { "Cache-Control": "no-store" });
}

/** Adds the /ui/ routes to the app's router. */
export function mountUi(router: RouterType<IRequest, [Env, ExecutionContext]>): void {
  router.get("/ui", servePage);
  router.get("/ui/:file", serveAsset);
  router.post("/ui/dev-token", devToken);
}
