/**
 * Webhooks' settings (read by config.ts, once per env object): the key that encrypts signing secrets
 * at rest, local development's loopback exception, the DNS-over-HTTPS resolver checked before each
 * delivery, and the timeout of one attempt. A bad value is reported and never weakens a check.
 */
import type { Env } from "./env";

export interface WebhookConfig {
  /** WEBHOOK_SECRET_KEY (a secret, at least 32 characters); null: endpoints cannot be registered (503). */
  readonly secretKey: string | null;
  /** WEBHOOK_ALLOW_LOOPBACK: `http://127.0.0.1:<port>` endpoints (set by `npm start` only). */
  readonly allowLoopback: boolean;
  /** WEBHOOK_DNS_RESOLVER: a DNS-over-HTTPS JSON endpoint (default Cloudflare's 1.1.1.1). */
  readonly dnsResolver: URL;
  /** WEBHOOK_TIMEOUT_SECONDS (1-30, default 10) in milliseconds. */
  readonly timeoutMs: number;
}

export const DEFAULT_DNS_RESOLVER = "https://cloudflare-dns.com/dns-query";
const DEFAULT_TIMEOUT_SECONDS = 10;
const MIN_SECRET_KEY_LENGTH = 32;

export function readWebhookConfig(env: Env, errors: string[]): WebhookConfig {
  const key = env.WEBHOOK_SECRET_KEY?.trim() || null;
  if (key !== null && key.length < MIN_SECRET_KEY_LENGTH) {
    errors.push(
      `WEBHOOK_SECRET_KEY must be at least ${MIN_SECRET_KEY_LENGTH} characters; webhooks cannot be registered`,
    );
  }
  const allow = env.WEBHOOK_ALLOW_LOOPBACK?.trim() ?? "";
  if (allow !== "" && allow !== "true" && allow !== "false") {
    errors.push("WEBHOOK_ALLOW_LOOPBACK must be true or false; using false");
  }
  let dnsResolver = new URL(DEFAULT_DNS_RESOLVER);
  const resolver = env.WEBHOOK_DNS_RESOLVER?.trim();
  if (resolver) {
    if (URL.canParse(resolver) && new URL(resolver).protocol === "https:") dnsResolver = new URL(resolver);
    else errors.push(`WEBHOOK_DNS_RESOLVER must be an https URL; using ${DEFAULT_DNS_RESOLVER}`);
  }
  let timeoutSeconds = DEFAULT_TIMEOUT_SECONDS;
  const timeout = env.WEBHOOK_TIMEOUT_SECONDS?.trim();
  if (timeout) {
    const n = Number(timeout);
    if (Number.isInteger(n) && n >= 1 && n <= 30) timeoutSeconds = n;
    else errors.push(`WEBHOOK_TIMEOUT_SECONDS must be a whole number from 1 to 30; using ${DEFAULT_TIMEOUT_SECONDS}`);
  }
  return {
    secretKey: key !== null && key.length >= MIN_SECRET_KEY_LENGTH ? key : null,
    allowLoopback: allow === "true",
    dnsResolver,
    timeoutMs: timeoutSeconds * 1000,
  };
}
