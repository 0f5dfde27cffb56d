/**
 * A key's id: a UUID v4 in lowercase, as latchkey makes it (crypto.randomUUID). Anything else names
 * no key, so it is answered as not found without a lookup.
 */
export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
