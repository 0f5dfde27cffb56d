/**
 * @latchkey/client carries latchkey's API shapes and RPC entrypoint types as plain TypeScript (so it
 * has no dependency on latchkey, zod or Workers). This file keeps them honest: each assertion fails
 * `npm run typecheck` (which CI runs) as soon as the package and latchkey's own types drift apart —
 * a field added to a schema, a method added to an entrypoint, a parameter changed. The `it` bodies
 * run too, but the assertions are about types (and one value: the audit actions the CLI validates).
 */
import type { WorkerEntrypoint } from "cloudflare:workers";
import { describe, expect, expectTypeOf, it } from "vitest";
import type * as z from "zod/mini";
import type * as client from "../../packages/client/src/index";
import type * as clientRpc from "../../packages/client/src/rpc";
import type * as rpc from "../../src/rpc";
import type * as schemas from "../../src/schemas";
import { AUDIT_ACTIONS as SERVED_AUDIT_ACTIONS } from "../../src/schemas";
import { AUDIT_ACTIONS } from "../../packages/client/src/types";

/** The methods an entrypoint adds to WorkerEntrypoint (fetch and friends excluded). */
type Methods<T> = Omit<T, keyof WorkerEntrypoint | keyof Rpc.WorkerEntrypointBranded>;
type Flat<T> = { [K in keyof T]: T[K] };
/**
 * latchkey types RPC's list `limit` as `unknown` (zod's input type of a defaulted, refined number);
 * the package says `number`, which latchkey accepts. Everything else about the options must match.
 */
type ListOptionsBesidesLimit<T> = Flat<Omit<NonNullable<T>, "limit">>;

describe("@latchkey/client's HTTP types match the schemas behind /openapi.json", () => {
  it("responses", () => {
    expectTypeOf<client.ApiKey>().toEqualTypeOf<z.output<typeof schemas.ApiKey>>();
    expectTypeOf<client.CreatedApiKey>().toEqualTypeOf<z.output<typeof schemas.CreatedApiKey>>();
    expectTypeOf<client.KeyList>().toEqualTypeOf<z.output<typeof schemas.KeyList>>();
    expectTypeOf<client.VerifyResult>().toEqualTypeOf<z.output<typeof schemas.VerifyResult>>();
    // Each side of the union too: a dead key's refusal carries nothing but its code and id.
    expectTypeOf<client.VerifyVerdict>().toEqualTypeOf<schemas.VerifyVerdictView>();
    expectTypeOf<client.VerifyRefusal>().toEqualTypeOf<
      Exclude<z.output<typeof schemas.VerifyResult>, schemas.VerifyVerdictView>
    >();
    expectTypeOf<client.DeadKeyCode>().toEqualTypeOf<schemas.DeadKeyCode>();
    expectTypeOf<client.LiveKeyCode>().toEqualTypeOf<schemas.LiveKeyCode>();
    expectTypeOf<client.WhoAmI>().toEqualTypeOf<z.output<typeof schemas.WhoAmI>>();
    expectTypeOf<client.AuditEvent>().toEqualTypeOf<z.output<typeof schemas.AuditEvent>>();
    expectTypeOf<client.EventList>().toEqualTypeOf<z.output<typeof schemas.EventList>>();
    expectTypeOf<client.CreditsResult>().toEqualTypeOf<z.output<typeof schemas.CreditsResult>>();
    expectTypeOf<client.UsageReport>().toEqualTypeOf<z.output<typeof schemas.UsageReport>>();
    expectTypeOf<client.RootKey>().toEqualTypeOf<z.output<typeof schemas.RootKey>>();
    expectTypeOf<client.CreatedRootKey>().toEqualTypeOf<z.output<typeof schemas.CreatedRootKey>>();
    expectTypeOf<client.RootKeyList>().toEqualTypeOf<z.output<typeof schemas.RootKeyList>>();
    expectTypeOf<client.Webhook>().toEqualTypeOf<z.output<typeof schemas.Webhook>>();
    expectTypeOf<client.CreatedWebhook>().toEqualTypeOf<z.output<typeof schemas.CreatedWebhook>>();
    expectTypeOf<client.WebhookList>().toEqualTypeOf<z.output<typeof schemas.WebhookList>>();
    expectTypeOf<client.WebhookDelivery>().toEqualTypeOf<z.output<typeof schemas.WebhookDelivery>>();
    expectTypeOf<client.WebhookDeliveryList>().toEqualTypeOf<z.output<typeof schemas.WebhookDeliveryList>>();
  });

  it("the audit actions the CLI accepts are latchkey's, in its order", () => {
    expect(AUDIT_ACTIONS).toEqual(SERVED_AUDIT_ACTIONS);
  });

  it("requests", () => {
    expectTypeOf<client.CreateKeyInput>().toEqualTypeOf<z.input<typeof schemas.CreateKeyRequest>>();
    expectTypeOf<client.UpdateKeyInput>().toEqualTypeOf<z.input<typeof schemas.UpdateKeyRequest>>();
    expectTypeOf<client.RotateKeyInput>().toEqualTypeOf<z.input<typeof schemas.RotateKeyRequest>>();
    expectTypeOf<client.CreditsOperation>().toEqualTypeOf<z.input<typeof schemas.CreditsRequest>>();
    expectTypeOf<client.CreateRootKeyInput>().toEqualTypeOf<z.input<typeof schemas.CreateRootKeyRequest>>();
    expectTypeOf<client.UsageQuery>().toEqualTypeOf<z.input<typeof schemas.UsageQuery>>();
    expectTypeOf<client.CreateWebhookInput>().toEqualTypeOf<z.input<typeof schemas.CreateWebhookRequest>>();
    expectTypeOf<client.UpdateWebhookInput>().toEqualTypeOf<z.input<typeof schemas.UpdateWebhookRequest>>();
    expectTypeOf<client.RotateWebhookSecretInput>().toEqualTypeOf<z.input<typeof schemas.RotateWebhookSecretRequest>>();
    expectTypeOf<ListOptionsBesidesLimit<client.ListDeliveriesOptions>>().toEqualTypeOf<
      ListOptionsBesidesLimit<z.input<typeof schemas.ListDeliveriesQuery>>
    >();
    expectTypeOf<ListOptionsBesidesLimit<client.ListEventsOptions>>().toEqualTypeOf<
      ListOptionsBesidesLimit<z.input<typeof schemas.ListEventsOptions>>
    >();
    expectTypeOf<ListOptionsBesidesLimit<client.ListKeysOptions>>().toEqualTypeOf<
      ListOptionsBesidesLimit<z.input<typeof schemas.ListKeysOptions>>
    >();
    expectTypeOf<client.ListKeysOptions["limit"]>().toExtend<z.input<typeof schemas.ListKeysOptions>["limit"]>();
    expectTypeOf<client.RevokeOptions>().toEqualTypeOf<z.input<typeof schemas.RevokeKeyOptions>>();
    expectTypeOf<client.VerifyOptions>().toEqualTypeOf<z.input<typeof schemas.VerifyOptions>>();
    expectTypeOf<Flat<client.VerifyOptions & { key: string }>>().toEqualTypeOf<z.input<typeof schemas.VerifyRequest>>();
  });
});

describe("@latchkey/client/rpc matches src/rpc.ts", () => {
  it("KeyVerifier: the same methods, with the same signatures", () => {
    expectTypeOf<Methods<clientRpc.KeyVerifier>>().toEqualTypeOf<Methods<rpc.KeyVerifier>>();
  });

  it("KeyService: the same methods, with the same signatures", () => {
    expectTypeOf<Omit<Methods<clientRpc.KeyService>, "list">>().toEqualTypeOf<Omit<Methods<rpc.KeyService>, "list">>();
    expectTypeOf<keyof Methods<clientRpc.KeyService>>().toEqualTypeOf<keyof Methods<rpc.KeyService>>();
    type List<T extends { list(...args: never[]): unknown }> = T["list"];
    type Package = List<clientRpc.KeyService>;
    type Latchkey = List<rpc.KeyService>;
    expectTypeOf<Parameters<Package>[0]>().toEqualTypeOf<Parameters<Latchkey>[0]>();
    expectTypeOf<ListOptionsBesidesLimit<Parameters<Package>[1]>>().toEqualTypeOf<
      ListOptionsBesidesLimit<Parameters<Latchkey>[1]>
    >();
    expectTypeOf<ReturnType<Package>>().toEqualTypeOf<ReturnType<Latchkey>>();
    expectTypeOf<clientRpc.RevokeKeyOptions>().toEqualTypeOf<rpc.RevokeKeyOptions>();
    expectTypeOf<clientRpc.VerifyVerdictView>().toEqualTypeOf<rpc.VerifyVerdictView>();
  });

  it("types a service binding as latchkey's own class would", () => {
    type Verdict = Awaited<ReturnType<Service<clientRpc.KeyVerifier>["verify"]>>;
    expectTypeOf<Verdict>().toEqualTypeOf<Awaited<ReturnType<Service<typeof rpc.KeyVerifier>["verify"]>>>();
    type Created = Awaited<ReturnType<Service<clientRpc.KeyService>["create"]>>;
    expectTypeOf<Created>().toEqualTypeOf<Awaited<ReturnType<Service<typeof rpc.KeyService>["create"]>>>();
  });
});
