/**
 * The OpenAPI document is the contract, and every test checks it: `call` (helpers.ts) passes each
 * response the suite receives through `checkContract`, which validates it against the document the
 * Worker serves at /openapi.json (ajv, JSON Schema draft 2020-12, as OpenAPI 3.1 uses):
 *
 * - the status is one the operation declares (a path or method the document does not have may only
 *   answer 404 or 405);
 * - the content type is the declared one, and the body matches its schema (a HEAD response has none);
 * - every declared required header is present, and every header the response carries is declared
 *   (CORS machinery and framing headers aside); responses and headers declared once under
 *   `components` and referenced are resolved;
 * - a request served without a body is to an operation whose request body is optional;
 * - a problem's `status` is the response's and its `type` is its `code`'s URI (a dialect's problem
 *   document without a `code`, FastAPI's, is checked against its own schema only).
 *
 * The document depends on the configuration (DIALECTS mounts routes), so a response is checked
 * against the document served with the env that answered it. The mounted dialects' routes are in it (with their pages' error schemas) and checked
 * like any other; a dialect path's 405 is checked against that path's declared 405. The keys page
 * (/ui/) and CORS preflights are deliberately outside the document, so they are not checked.
 *
 * A mismatch throws, so the test that received the response fails, naming the operation and why.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import Ajv2020, { type ValidateFunction } from "ajv/dist/2020";
import type { Env } from "../src/env";
import worker from "../src/index";
import { type ProblemCode, problemType } from "../src/problems";

interface HeaderObject {
  required?: boolean;
}
/** A component used in place (`#/components/<section>/<name>`). */
interface Reference {
  $ref: string;
}
interface ResponseObject {
  headers?: Record<string, HeaderObject | Reference>;
  content?: Record<string, unknown>;
}
interface Operation {
  requestBody?: { required?: boolean };
  responses: Record<string, ResponseObject | Reference>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components?: Record<string, Record<string, unknown>>;
}

/** `object`, or the component it references, with the JSON pointer it was found at. */
function deref<T extends object>(document: Document, object: T | Reference, at: string): [T, string] {
  if (!("$ref" in object)) return [object, at];
  const [, section = "", name = ""] = /^#\/components\/([^/]+)\/(.+)$/.exec(object.$ref) ?? [];
  const component = document.components?.[section]?.[name];
  if (component === undefined) throw new Error(`The OpenAPI document has no ${object.$ref}`);
  return [component as T, `/components/${section}/${pointer(name)}`];
}

/** A CORS preflight: OPTIONS with an Origin and Access-Control-Request-Method (cors.ts answers it). */
function isPreflight(request: Request): boolean {
  return (
    request.method === "OPTIONS" &&
    request.headers.has("Origin") &&
    request.headers.has("Access-Control-Request-Method")
  );
}

/**
 * Headers no document declares: framing, CORS (answered for any route, documented in
 * docs/keys-page.md), and Server-Timing (diagnostics for load tests, off unless SERVER_TIMING is set:
 * docs/configuration.md).
 */
const UNDECLARED = /^(?:content-type|content-length|vary|access-control-[a-z-]+|server-timing)$/;

interface Contract {
  readonly document: Document;
  readonly routes: readonly { readonly path: string; readonly pattern: RegExp }[];
  readonly ajv: Ajv2020;
  readonly validators: Map<string, ValidateFunction>;
}

/** One contract per DIALECTS value: the only setting that changes the document. */
const loaded = new Map<string, Promise<Contract>>();

async function load(served: Env): Promise<Contract> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request("https://contract.test/openapi.json"), served, ctx);
  await waitOnExecutionContext(ctx);
  if (response.status !== 200) throw new Error(`GET /openapi.json answered ${response.status}`);
  const document = (await response.json()) as Document;
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema(document as object, "openapi");
  const routes = Object.keys(document.paths).map((path) => ({
    path,
    // Trailing slashes reach the same operation, as in the router (itty-router's patterns end in `/*$`).
    pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, "[^/]+")}/*$`),
  }));
  return { document, routes, ajv, validators: new Map() };
}

/** A JSON pointer fragment for one segment (RFC 6901). */
const pointer = (segment: string) => segment.replace(/~/g, "~0").replace(/\//g, "~1");

function validator(contract: Contract, ref: string): ValidateFunction {
  let validate = contract.validators.get(ref);
  if (!validate) {
    validate = contract.ajv.compile({ $ref: `openapi#${ref}` });
    contract.validators.set(ref, validate);
  }
  return validate;
}

/** Throws, naming the operation, when `response` (to `request`) breaks the served document. */
export async function checkContract(request: Request, response: Response, served: Env = env): Promise<void> {
  const dialects = served.DIALECTS ?? "(default)";
  let contract = loaded.get(dialects);
  if (!contract) {
    contract = load(served);
    loaded.set(dialects, contract);
  }
  const current = await contract;
  const { pathname } = new URL(request.url);
  if (pathname === "/ui" || pathname.startsWith("/ui/") || isPreflight(request)) return;
  const method = request.method === "HEAD" ? "get" : request.method.toLowerCase();
  const where = `${request.method} ${pathname} -> ${response.status}`;
  const fail = (why: string): never => {
    throw new Error(`Response breaks the OpenAPI document (${where}): ${why}`);
  };

  const route = current.routes.find((r) => r.pattern.test(pathname));
  const operations = route ? current.document.paths[route.path] : undefined;
  // A method the path does not have: its 405 is the one every operation of the path declares.
  const operationMethod =
    operations?.[method] || response.status !== 405
      ? method
      : Object.keys(operations ?? {}).find((m) => operations?.[m]?.responses["405"]);
  const operation = operationMethod ? operations?.[operationMethod] : undefined;
  let declared: ResponseObject = { content: { "application/problem+json": {} } };
  let base = "";
  if (operation && route) {
    const found = operation.responses[String(response.status)];
    if (!found) return fail(`status ${response.status} is not declared for ${method.toUpperCase()} ${route.path}`);
    [declared, base] = deref<ResponseObject>(
      current.document,
      found,
      `/paths/${pointer(route.path)}/${operationMethod}/responses/${response.status}`,
    );
  } else if (response.status !== 404 && response.status !== 405) {
    // No such operation: only the router's own answers (well-formed problems) may come back.
    fail("no such operation, yet not 404 or 405");
  }

  // A request sent without a body and served must not need one, or generated clients would send one.
  if (operation?.requestBody?.required === true && request.body === null && response.status < 300)
    fail("served without a body, yet the request body is documented as required");

  for (const [name, header] of Object.entries(declared.headers ?? {})) {
    const [{ required }] = deref<HeaderObject>(current.document, header, "");
    if (required && !response.headers.has(name)) fail(`required header ${name} is missing`);
  }
  const declaredHeaders = new Set(Object.keys(declared.headers ?? {}).map((name) => name.toLowerCase()));
  for (const [name] of response.headers) {
    if (operation && !UNDECLARED.test(name) && !declaredHeaders.has(name)) fail(`header ${name} is not declared`);
  }

  const text = await response.clone().text();
  const contentTypes = Object.keys(declared.content ?? {});
  if (contentTypes.length === 0 || request.method === "HEAD") {
    if (text !== "") fail("a body where none is declared");
    return;
  }
  const type = response.headers.get("content-type")?.split(";")[0]?.trim() ?? "";
  if (!contentTypes.includes(type)) fail(`content type "${type}" is not one of ${contentTypes.join(", ")}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    fail("the body is not JSON");
  }
  const schemaRef = operation ? `${base}/content/${pointer(type)}/schema` : "/components/schemas/Problem";
  const hasSchema = operation ? (declared.content?.[type] as { schema?: unknown }).schema !== undefined : true;
  if (hasSchema) {
    const validate = validator(current, schemaRef);
    if (!validate(body)) fail(`body: ${current.ajv.errorsText(validate.errors)}; got ${text.slice(0, 500)}`);
  }
  if (type === "application/problem+json" && (hasSchema ? (body as { code?: unknown }).code !== undefined : true)) {
    const problem = body as { status: number; type: string; code: ProblemCode };
    if (problem.status !== response.status) fail(`problem status ${problem.status}`);
    if (problem.type !== problemType(problem.code)) fail(`problem type ${problem.type} for code ${problem.code}`);
  }
}
