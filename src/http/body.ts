/**
 * Reads a JSON request body defensively: JSON content type required (415), at most 16 KB (or what
 * the route allows) whatever Content-Length claims (413), valid UTF-8 and JSON (400). The body is never echoed back: it may hold
 * a key. A route whose body is optional reads no body, or an empty one, as `{}`.
 */
import type { AppContext } from "../context";
import { reservedKeyPath } from "../schemas";
import { ValidationError } from "../service/errors";
import { HttpError } from "./problem";

const MAX_BODY_BYTES = 16 * 1024;

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
const FORM_TYPE = /^application\/x-www-form-urlencoded\s*(?:;|$)/i;

export interface BodyOptions {
  /** The largest body accepted (default 16 KB). */
  readonly maxBytes?: number;
  /**
   * Also read JSON sent as application/x-www-form-urlencoded, as `curl --data '{...}'` without a
   * Content-Type sends it (for a dialect whose page shows that request).
   */
  readonly formEncodedJson?: boolean;
  /**
   * The body may be left out: no body, or an empty one (whatever its Content-Type), reads as `{}`,
   * and the OpenAPI document marks the request body optional. A body that is sent is read as usual.
   */
  readonly optional?: boolean;
  /**
   * A signed body (POST /v1/leaks/github): checks the exact bytes received, before they are decoded,
   * and throws to refuse them; a body it refuses is never parsed.
   */
  readonly signed?: (bytes: Uint8Array, request: Request, app: AppContext) => Promise<void>;
}

export async function readJsonBody(
  request: Request,
  options: BodyOptions = {},
  checkBytes?: (bytes: Uint8Array) => Promise<void>,
): Promise<unknown> {
  const type = request.headers.get("content-type");
  const isJson = type !== null && (JSON_TYPE.test(type) || (options.formEncodedJson === true && FORM_TYPE.test(type)));
  // An optional body's type matters only once there is a body.
  if (!isJson && options.optional !== true) throw unsupportedMediaType();
  const maxBytes = options.maxBytes ?? MAX_BODY_BYTES;
  const declared = Number(request.headers.get("content-length"));
  if (declared > maxBytes) throw tooLarge(maxBytes);

  const bytes = await readAtMost(request, maxBytes);
  if (checkBytes) await checkBytes(bytes);
  if (bytes.byteLength === 0 && options.optional === true) return {};
  if (!isJson) throw unsupportedMediaType();
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new HttpError("malformed_body", { detail: "The body is not valid UTF-8" });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError("malformed_body", { detail: "The body is not valid JSON" });
  }
  const reserved = reservedKeyPath(value);
  if (reserved !== null)
    throw new ValidationError([{ field: reserved, kind: "reserved", message: 'The key "__proto__" is reserved' }]);
  return value;
}

function unsupportedMediaType(): HttpError {
  return new HttpError("unsupported_media_type", { detail: "Send the body as application/json" });
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError("body_too_large", { detail: `The body must be at most ${maxBytes} bytes` });
}

async function readAtMost(request: Request, limit: number): Promise<Uint8Array> {
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
