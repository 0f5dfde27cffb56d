/**
 * One error vocabulary: every error class the service, the store, authentication and the HTTP layer
 * throw is classified once (src/errors/classify.ts) and has a code on every face — the HTTP problem,
 * a dialect's shape and the RPC message — and an unexpected error discloses nothing on any of them.
 */
import { describe, expect, it } from "vitest";
import * as z from "zod/mini";
import { RPC_ERROR_CODES, parseRpcError } from "../../packages/client/src/rpc-errors";
import * as authErrors from "../../src/auth/errors";
import { CLASSIFIED_ERRORS, HttpError, RPC_CODE, classify } from "../../src/errors/classify";
import { failureOf } from "../../src/http/failure";
import { errorToProblem } from "../../src/http/problem";
import { ISSUE_KINDS, PROBLEMS, PROBLEM_CODES } from "../../src/problems";
import { rpcError } from "../../src/rpc";
import { CreateKeyRequest, ListKeysQuery, parseInput } from "../../src/schemas";
import * as serviceErrors from "../../src/service/errors";
import { captureLogs } from "../helpers";

type ErrorClass = abstract new (...args: never[]) => Error;

const usage = {
  code: "RATE_LIMITED" as const,
  credits: null,
  ratelimits: [{ name: "minute", limit: 10, remaining: 0, reset: 61_000 }],
  retryAfterMs: 1_000,
  at: 1_000,
};

/** One instance of each classified class, by class name (a class without one fails the walk). */
const SAMPLES: Record<string, () => Error> = {
  HttpError: () => new HttpError("malformed_body", { detail: "The body is not valid JSON" }),
  AuthenticationError: () => new authErrors.AuthenticationError("Unknown API key", "key_not_found"),
  IdentityProviderUnavailableError: () => new authErrors.IdentityProviderUnavailableError("jwks down"),
  SigningKeysUnavailableError: () => new authErrors.SigningKeysUnavailableError("GitHub's keys are down"),
  CredentialNotLiveError: () => new serviceErrors.CredentialNotLiveError(),
  NotFoundError: () => new serviceErrors.NotFoundError(),
  ConflictError: () => new serviceErrors.ConflictError("The key is revoked"),
  LineageConflictError: () =>
    new serviceErrors.LineageConflictError("Stronger keys in its lineage", [crypto.randomUUID()]),
  UsageLimitedError: () => new serviceErrors.UsageLimitedError(usage),
  ValidationError: () => new serviceErrors.ValidationError([{ field: "name", kind: "required", message: "Required" }]),
  ForbiddenError: () => new serviceErrors.ForbiddenError("scopes", "Beyond your powers"),
  LimitExceededError: () => new serviceErrors.LimitExceededError("MAX_KEYS_PER_OWNER", "Too many keys"),
  IdempotentReplayError: () => new serviceErrors.IdempotentReplayError(crypto.randomUUID()),
  IdempotencyKeyReusedError: () => new serviceErrors.IdempotencyKeyReusedError(),
  StorageMisconfiguredError: () => new serviceErrors.StorageMisconfiguredError("no such table: keys"),
  StorageUnavailableError: () => new serviceErrors.StorageUnavailableError("D1 timed out"),
};

/** The Error classes a module exports. */
function errorClasses(module: Record<string, unknown>): ErrorClass[] {
  return Object.values(module).filter(
    (value): value is ErrorClass => typeof value === "function" && value.prototype instanceof Error,
  );
}

/** Runs `work` with the console captured (a classification may log). */
function quietly<T>(work: () => T): T {
  const logs = captureLogs();
  try {
    return work();
  } finally {
    logs.restore();
  }
}

describe("every error has a code on every face", () => {
  // The store's errors reach the faces through the service's vocabulary (service/errors.ts re-exports
  // them); its internal signals (IdempotencyConflict) never leave the service.
  it("the list of classified errors holds every error class the service and auth export", () => {
    const listed = new Set<unknown>(CLASSIFIED_ERRORS);
    const thrown = [...errorClasses(serviceErrors), ...errorClasses(authErrors)];
    expect(thrown.length).toBeGreaterThan(10);
    expect(thrown.filter((c) => !listed.has(c)).map((c) => c.name)).toEqual([]);
  });

  it.each(CLASSIFIED_ERRORS.map((c) => [c.name, c] as const))("%s", async (name) => {
    const make = SAMPLES[name];
    expect(make, `a sample of ${name} in SAMPLES`).toBeDefined();
    const error = make!();
    const classified = quietly(() => classify(error));
    // Its own code: nothing a service throws on purpose is an internal error.
    expect(classified.code).not.toBe("internal_error");
    expect(classified.status).toBe(PROBLEMS[classified.code].status);

    const response = quietly(() => errorToProblem(error));
    expect(response.status).toBe(classified.status);
    expect(await response.json()).toMatchObject({ code: classified.code, status: classified.status });

    const failure = quietly(() => failureOf(error));
    expect(failure.status).toBe(classified.status);

    const rpc = parseRpcError(quietly(() => rpcError(error)));
    expect(rpc).toEqual({ code: classified.rpc, message: classified.message });
    expect(RPC_ERROR_CODES).toContain(rpc!.code);
  });

  it("the RPC codes the server uses are the client package's, every one of them", () => {
    expect(new Set(Object.values(RPC_CODE))).toEqual(new Set(RPC_ERROR_CODES));
    expect(Object.keys(RPC_CODE).sort()).toEqual([...PROBLEM_CODES].sort());
  });

  it("RPC keeps the messages callers already match: the limit, what was exceeded, the argument", () => {
    const message = (error: Error) => quietly(() => rpcError(error)).message;
    expect(message(new serviceErrors.LimitExceededError("MAX_KEYS_PER_OWNER", "Too many keys"))).toBe(
      "[quota_exceeded] MAX_KEYS_PER_OWNER: Too many keys",
    );
    expect(message(new serviceErrors.LimitExceededError("KEY_CREATION_LIMITER", "Slow down", 30))).toBe(
      "[rate_limited] KEY_CREATION_LIMITER: Slow down",
    );
    expect(message(new serviceErrors.ForbiddenError("scopes", "Beyond your powers"))).toBe(
      "[forbidden] scopes: Beyond your powers",
    );
    expect(message(new serviceErrors.StorageUnavailableError("D1 timed out: secret internals"))).toBe(
      "[unavailable] Storage is unavailable; retry shortly",
    );
    expect(message(new serviceErrors.CredentialNotLiveError())).toMatch(/^\[unauthenticated\] /);
    expect(message(new serviceErrors.IdempotentReplayError("k1"))).toMatch(/^\[conflict\] .*id k1/);
    expect(message(new serviceErrors.StorageMisconfiguredError("no such table: keys"))).toBe(
      "[internal] The service is misconfigured; the operator has been told",
    );
  });

  it("an unexpected error is a 500 / [internal] on every face, its message only in the log", async () => {
    const secret = "secret internals lk_live_abc";
    const logs = captureLogs();
    try {
      const response = errorToProblem(new TypeError(secret));
      expect(response.status).toBe(500);
      const text = await response.text();
      expect(JSON.parse(text)).toMatchObject({ code: "internal_error", detail: "Something went wrong on our side" });
      expect(text).not.toContain("secret");

      const failure = failureOf(new Error(secret));
      expect([failure.status, failure.detail]).toEqual([500, "Something went wrong on our side"]);

      const rpc = rpcError(new RangeError(secret));
      expect(rpc.message).toBe("[internal] Something went wrong on our side");
      expect(parseRpcError(rpc)).toEqual({ code: "internal", message: "Something went wrong on our side" });

      expect(logs.events("unexpected_error")).toHaveLength(3);
      expect(logs.events("unexpected_error")[0]!.error).toContain(secret);
    } finally {
      logs.restore();
    }
  });
});

describe("parseRpcError", () => {
  it("reads the code and the words after it", () => {
    expect(parseRpcError(new Error("[not_found] No such key"))).toEqual({ code: "not_found", message: "No such key" });
    expect(parseRpcError({ message: "[invalid] input: name: Required" })).toEqual({
      code: "invalid",
      message: "input: name: Required",
    });
    expect(parseRpcError("[unavailable] Storage is unavailable; retry shortly")?.code).toBe("unavailable");
  });

  it("is null for anything else: no code, an unknown code, not an error", () => {
    expect(parseRpcError(new Error('The RPC receiver does not implement the method "keys".'))).toBeNull();
    expect(parseRpcError(new Error("[teapot] short and stout"))).toBeNull();
    expect(parseRpcError(new Error("not_found No such key"))).toBeNull();
    expect(parseRpcError(null)).toBeNull();
    expect(parseRpcError(42)).toBeNull();
  });
});

describe("validation issues carry a kind, so no face matches English", () => {
  const kinds = (schema: z.ZodMiniType, value: unknown) => {
    const result = parseInput(schema, value);
    return result.success ? [] : result.issues.map((issue) => `${issue.field}:${issue.kind}`);
  };

  it("required, type, too_small, too_big, format, enum, unknown_key", () => {
    expect(kinds(CreateKeyRequest, {})).toEqual(["name:required"]);
    expect(kinds(CreateKeyRequest, { name: null })).toEqual(["name:type"]);
    expect(kinds(CreateKeyRequest, { name: 5 })).toEqual(["name:type"]);
    expect(kinds(CreateKeyRequest, { name: "x", scopes: [] })).toEqual(["scopes:too_small"]);
    expect(kinds(CreateKeyRequest, { name: "x".repeat(101) })).toEqual(["name:too_big"]);
    expect(kinds(CreateKeyRequest, { name: "x", scopes: ["Not A Scope"] })).toEqual(["scopes.0:format"]);
    expect(kinds(CreateKeyRequest, { name: "x", owner: "team" })).toEqual(["owner:enum"]);
    expect(kinds(CreateKeyRequest, { name: "x", nope: 1 })).toEqual(["nope:unknown_key"]);
    expect(kinds(ListKeysQuery, { limit: "0" })).toEqual(["limit:too_small"]);
  });

  it("every kind given is one of the documented kinds", () => {
    const result = parseInput(CreateKeyRequest, { name: 5, scopes: [], owner: "team", nope: 1 });
    expect(result.success).toBe(false);
    for (const issue of result.success ? [] : result.issues) expect(ISSUE_KINDS).toContain(issue.kind);
  });

  it("a problem's `errors` still maps each field to its messages", async () => {
    const error = new serviceErrors.ValidationError([
      { field: "name", kind: "required", message: "Required" },
      { field: "scopes.0", kind: "format", message: "Bad" },
      { field: "name", kind: "invalid", message: "Also" },
    ]);
    expect(error.message).toBe("name: Required; Also, scopes.0: Bad");
    expect(await errorToProblem(error).json()).toMatchObject({
      errors: { name: ["Required", "Also"], "scopes.0": ["Bad"] },
    });
  });
});
