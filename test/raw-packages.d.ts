/** Vite's raw imports of the Python and PHP packages' sources: test/clients/guard-ports.test.ts reads their tables. */
declare module "*.py?raw" {
  const text: string;
  export default text;
}
declare module "*.php?raw" {
  const text: string;
  export default text;
}
