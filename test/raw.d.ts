/** Vite's raw imports: test/errors.test.ts reads the README's problem table. */
declare module "*.md?raw" {
  const text: string;
  export default text;
}
