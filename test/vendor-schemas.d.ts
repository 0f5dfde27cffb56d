/** The validators test/setup/vendor-schemas.mjs compiles from the vendors' OpenAPI fragments before the tests run. */
declare module "*/vendor-schemas.mjs" {
  /** "<vendor> <METHOD> <path> <status|request>" -> the export that validates it. */
  export const VENDOR_SCHEMAS_INDEX: Record<string, string>;
}
