/** A root key's prefix (ROOT_KEY_PREFIX), checked against every prefix a product key may carry. Pure. */
import { isValidPrefix } from "./format";
import type { LegacyFormats } from "./legacy";

/**
 * ROOT_KEY_PREFIX: a valid prefix, or by default `<KEY_PREFIX>_root` (`lk_root_…`), so scanners and
 * people tell a root key from a customer's at a glance. It must not be, nor extend, a product key's
 * prefix, nor overlap an imported format's: a root key must never be read as a product key. A bad
 * value falls back to the default; a default that collides is reported and disables root keys.
 */
export function readRootKeyPrefix(
  raw: string | undefined,
  keyPrefix: string,
  acceptedPrefixes: readonly string[],
  legacy: LegacyFormats,
  errors: string[],
): string | null {
  const fallback = `${keyPrefix}_root`;
  const collides = (prefix: string) =>
    acceptedPrefixes.some((p) => p === prefix || p.startsWith(`${prefix}_`)) ||
    legacy.prefixes.some((p) => p.startsWith(`${prefix}_`) || `${prefix}_`.startsWith(p));
  const configured = raw?.trim() || null;
  if (configured !== null) {
    if (isValidPrefix(configured) && !collides(configured)) return configured;
    errors.push(
      `ROOT_KEY_PREFIX must be 1-16 lowercase letters, digits and single underscores, starting with a letter, and differ from every key prefix and imported format; using "${fallback}"`,
    );
  }
  if (!collides(fallback)) return fallback;
  errors.push(
    `The root key prefix "${fallback}" collides with a key prefix or an imported format; root keys are refused`,
  );
  return null;
}
