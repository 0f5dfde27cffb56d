/** Vite's raw imports: test/errors.test.ts reads the problem table of docs/api.md. */
declare module "*.md?raw" {
  const text: string;
  export default text;
}
/** test/contract.test.ts reads the OpenAPI lint exceptions. */
declare module "*.yaml?raw" {
  const text: string;
  export default text;
}
