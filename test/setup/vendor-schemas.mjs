/**
 * The vendors' own OpenAPI fragments (../shared/reference/openapi/*.yaml, beside the clone; or
 * $LATCHKEY_SHARED_DIR), compiled in Node into standalone JSON Schema (draft 2020-12) validators that
 * test/clients/dialects.test.ts imports: the tests run inside workerd, which can neither read files nor
 * compile code at run time. One validator per documented request body and per response with a JSON
 * schema, named in VENDOR_SCHEMAS_INDEX as "<vendor> <METHOD> <path> <status|request>".
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import standaloneCode from "ajv/dist/standalone/index.js";
import { parse } from "yaml";
import { VENDOR_SCHEMAS_MODULE } from "./paths";

const VENDORS = ["replicas", "baseten"];

function referenceDir() {
  const dir = resolve(process.env.LATCHKEY_SHARED_DIR ?? "../shared", "reference/openapi");
  if (!existsSync(dir)) {
    throw new Error(
      `The vendors' OpenAPI fragments are missing: ${dir} does not exist. Put the shared reference beside the clone (../shared) or set LATCHKEY_SHARED_DIR.`,
    );
  }
  return dir;
}

export default function compileVendorSchemas() {
  const dir = referenceDir();
  const ajv = new Ajv2020({ strict: false, allErrors: true, code: { source: true, esm: true } });
  const exports = {};
  const index = {};
  for (const vendor of VENDORS) {
    const document = parse(readFileSync(resolve(dir, `${vendor}.yaml`), "utf8"));
    ajv.addSchema(document, vendor);
    const resolveRef = (node) => {
      const ref = node.$ref;
      if (typeof ref !== "string") return node;
      return ref
        .slice(2)
        .split("/")
        .reduce((at, part) => at[part], document);
    };
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        const pointer = `${vendor}#/paths/${path.replace(/~/g, "~0").replace(/\//g, "~1")}/${method}`;
        const add = (what, ref) => {
          const name = `v${Object.keys(exports).length}`;
          exports[name] = ref;
          index[`${vendor} ${method.toUpperCase()} ${path} ${what}`] = name;
        };
        if (op.requestBody?.content?.["application/json"]?.schema)
          add("request", `${pointer}/requestBody/content/application~1json/schema`);
        for (const [status, response] of Object.entries(op.responses)) {
          if (!resolveRef(response).content?.["application/json"]?.schema) continue;
          const base =
            typeof response.$ref === "string" ? `${vendor}${response.$ref}` : `${pointer}/responses/${status}`;
          add(status, `${base}/content/application~1json/schema`);
        }
      }
    }
  }
  const code = standaloneCode(ajv, exports);
  mkdirSync(dirname(VENDOR_SCHEMAS_MODULE), { recursive: true });
  writeFileSync(
    VENDOR_SCHEMAS_MODULE,
    `${code}\nexport const VENDOR_SCHEMAS_INDEX = ${JSON.stringify(index, null, 2)};\n`,
  );
}
