/**
 * The one Node API latchkey uses (workerd provides it under nodejs_compat): typed here rather than
 * pulling in all of @types/node, whose globals would clash with the Workers types.
 */
declare module "node:async_hooks" {
  export class AsyncLocalStorage<T> {
    getStore(): T | undefined;
    run<R>(store: T, callback: () => R): R;
  }
}
