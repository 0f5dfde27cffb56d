// What bench/verify.ts needs of `cloudflare:workers` when it runs in Node: the base classes latchkey's
// Durable Object and RPC entrypoints extend. The bench never instantiates them (workerd's bundle uses
// the real module).
export class DurableObject {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}
export class WorkerEntrypoint {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}
