/**
 * What the dialects share: the key-name field (latchkey's own rules, so a dialect validates a name as
 * POST /v1/keys does) and the one-line rendering of field errors for pages whose errors carry a
 * single message.
 */
import { CreateKeyRequest } from "../../schemas";

/** A key name: 1-100 characters after trimming, no control characters. */
export const KeyNameField = CreateKeyRequest.shape.name;

/** `name: Required; scopes.0: ...` from latchkey's field errors. */
export function describeFields(errors: Readonly<Record<string, string[]>>): string {
  return Object.entries(errors)
    .map(([field, messages]) => `${field}: ${messages.join("; ")}`)
    .join("; ");
}
