/**
 * @latchkey/client: latchkey's HTTP API as a typed client for any JavaScript runtime. The route guard
 * is `@latchkey/client/guard`; the service-binding types are `@latchkey/client/rpc`.
 */
export { BOOKMARK_HEADER, CLIENT_OPERATIONS, LatchkeyClient, createClient } from "./client.js";
export type { CallOptions, ClientOptions, CreateOptions } from "./client.js";
export { NO_KEY_PROBLEM, PROBLEM_TYPE_BASE, VERDICT_PROBLEMS, problemType } from "./codes.js";
export type { ProblemKind } from "./codes.js";
export { LatchkeyError } from "./errors.js";
export { RPC_ERROR_CODES, parseRpcError } from "./rpc-errors.js";
export type { RpcError, RpcErrorCode } from "./rpc-errors.js";
export { VERIFY_CACHE_MAX_TTL_MS } from "./verdict-cache.js";
export { AUDIT_ACTIONS } from "./types.js";
export type * from "./types.js";
