/** Vite's raw imports: test/http/errors.test.ts reads the problem table of docs/api.md. */
declare module "*.md?raw" {
  const text: string;
  export default text;
}
/** test/http/contract.test.ts reads the OpenAPI lint exceptions. */
declare module "*.yaml?raw" {
  const text: string;
  export default text;
}
