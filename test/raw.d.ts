/** Vite's raw imports: test/errors.test.ts reads the problem table of docs/api.md. */
declare module "*.md?raw" {
  const text: string;
  export default text;
}
