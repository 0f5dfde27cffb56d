/**
 * What an edit changes: the PATCH body holding only the fields whose value differs from the key's,
 * so an unchanged field is never sent (a refusal then names only what the person changed). Pure.
 */
import type { ApiKey, CreditsInput, RateLimit, UpdateKeyInput } from "@latchkey/client/types";

/** The edit form's values; `expires_at` undefined keeps the key's expiry. */
export interface EditValues {
  readonly name: string;
  readonly scopes: string[];
  readonly resources: string[] | null;
  readonly expires_at: string | null | undefined;
  readonly allowed_ips: string[] | null;
  readonly ratelimits: RateLimit[];
  readonly credits: CreditsInput | null;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

export function patchFor(key: ApiKey, values: EditValues): UpdateKeyInput {
  const body: UpdateKeyInput = {};
  if (values.name !== key.name) body.name = values.name;
  if (!same(values.scopes, key.scopes)) body.scopes = values.scopes;
  if (!same(values.resources, key.resources)) body.resources = values.resources;
  if (values.expires_at !== undefined && values.expires_at !== key.expires_at) body.expires_at = values.expires_at;
  if (!same(values.allowed_ips, key.allowed_ips)) body.allowed_ips = values.allowed_ips;
  const limits = (list: readonly RateLimit[]) =>
    list.map(({ name, limit, duration_ms }) => ({ name, limit, duration_ms }));
  if (!same(limits(values.ratelimits), limits(key.ratelimits ?? []))) body.ratelimits = values.ratelimits;
  const credits = (c: CreditsInput | ApiKey["credits"] | undefined) =>
    c
      ? { remaining: c.remaining, refill: c.refill ? { amount: c.refill.amount, interval: c.refill.interval } : null }
      : null;
  if (!same(credits(values.credits), credits(key.credits))) body.credits = values.credits;
  return body;
}
