/**
 * The OpenAPI document is the contract, and every test checks it: `call` (helpers.ts) passes each
 * response the suite receives through `checkContract`, which validates it against the document the
 * Worker serves at /openapi.json (ajv, JSON Schema draft 2020-12, as OpenAPI 3.1 uses):
 *
 * - the status is one the operation declares (a path or method the document does not have may only
 *   answer 404 or 405);
 * - the content type is the declared one, and the body matches its schema (a HEAD response has none);
 * - every declared required header is present, and every header the response carries is declared
 *   (CORS machinery and framing headers aside);
 * - a problem's `status` is the response's and its `type` is its `code`'s URI.
 *
 * A mismatch throws, so the test that received the response fails, naming the operation and why.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import Ajv2020, { type ValidateFunction } from "ajv/dist/2020";
import worker from "../src/index";
import { type ProblemCode, problemType } from "../src/problems";

interface HeaderObject {
  required?: boolean;
}
interface ResponseObject {
  headers?: Record<string, HeaderObject>;
  content?: Record<string, unknown>;
}
interface Operation {
  responses: Record<string, ResponseObject>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
}

/** Headers no document declares: framing, and CORS (answered for any route, documented in the README). */
const UNDECLARED = /^(?:content-type|content-length|vary|access-control-[a-z-]+)$/;

interface Contract {
  readonly document: Document;
  readonly routes: readonly { readonly path: string; readonly pattern: RegExp }[];
  readonly ajv: Ajv2020;
  readonly validators: Map<string, ValidateFunction>;
}

let loaded: Promise<Contract> | undefined;

async function load(): Promise<Contract> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request("https://contract.test/openapi.json"), env, ctx);
  await waitOnExecutionContext(ctx);
  if (response.status !== 200) throw new Error(`GET /openapi.json answered ${response.status}`);
  const document = (await response.json()) as Document;
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema(document as object, "openapi");
  const routes = Object.keys(document.paths).map((path) => ({
    path,
    pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, "[^/]+")}$`),
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
export async function checkContract(request: Request, response: Response): Promise<void> {
  loaded ??= load();
  const contract = await loaded;
  const { pathname } = new URL(request.url);
  const method = request.method === "HEAD" ? "get" : request.method.toLowerCase();
  const where = `${request.method} ${pathname} -> ${response.status}`;
  const fail = (why: string): never => {
    throw new Error(`Response breaks the OpenAPI document (${where}): ${why}`);
  };

  const route = contract.routes.find((r) => r.pattern.test(pathname));
  const operation = route ? contract.document.paths[route.path]?.[method] : undefined;
  let declared: ResponseObject = { content: { "application/problem+json": {} } };
  let base = "";
  if (operation && route) {
    const found = operation.responses[String(response.status)];
    if (!found) return fail(`status ${response.status} is not declared for ${method.toUpperCase()} ${route.path}`);
    declared = found;
    base = `/paths/${pointer(route.path)}/${method}/responses/${response.status}`;
  } else if (response.status !== 404 && response.status !== 405) {
    // No such operation: only the router's own answers (well-formed problems) may come back.
    fail("no such operation, yet not 404 or 405");
  }

  for (const [name, header] of Object.entries(declared.headers ?? {})) {
    if (header.required && !response.headers.has(name)) fail(`required header ${name} is missing`);
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
    const validate = validator(contract, schemaRef);
    if (!validate(body)) fail(`body: ${contract.ajv.errorsText(validate.errors)}; got ${text.slice(0, 500)}`);
  }
  if (type === "application/problem+json") {
    const problem = body as { status: number; type: string; code: ProblemCode };
    if (problem.status !== response.status) fail(`problem status ${problem.status}`);
    if (problem.type !== problemType(problem.code)) fail(`problem type ${problem.type} for code ${problem.code}`);
  }
}
