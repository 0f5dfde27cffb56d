/** Root keys (/v1/root-keys, operators only): create, list, rotate and the root key views. */
import * as z from "zod/mini";
import { ownerPatternProblem } from "../keys/owner-patterns";
import {
  AllowedIps,
  BooleanQuery,
  FutureTimestamp,
  KeyId,
  KeyName,
  Timestamp,
  described,
  meta,
  pageCursor,
  pageLimit,
  uniqueArray,
} from "./common";

export const OwnerPattern = z
  .string()
  .check(
    z.maxLength(265, "Must be at most 265 characters"),
    z.superRefine((pattern, ctx) => {
      const problem = ownerPatternProblem(pattern);
      if (problem !== null) ctx.addIssue({ code: "custom", message: problem });
    }),
  )
  .apply(meta({ id: "OwnerPattern", example: "workspace:*" }));

const RootScope = z.enum(["keys:read", "keys:write"]);

export const CreateRootKeyRequest = z
  .strictObject({
    name: KeyName.apply(meta({ description: "A label for people, 1-100 characters after trimming." })),
    owners: z.optional(uniqueArray(OwnerPattern, 100)).apply(
      meta({
        description:
          'The owners the root key acts for: `user:*` (every person), `workspace:*` (every workspace), or one owner (`user:cust_42`, `workspace:acme`). Default: ["user:*", "workspace:*"].',
      }),
    ),
    scopes: z.optional(uniqueArray(RootScope, 2)).apply(
      meta({
        description:
          "`keys:read` (list, get, events, usage) and `keys:write` (create, import, change, rotate, revoke, credits); neither implies the other. Default: both.",
      }),
    ),
    expires_at: z.optional(z.nullable(FutureTimestamp)),
    allowed_ips: z.optional(AllowedIps),
  })
  .apply(meta({ id: "CreateRootKeyRequest" }));
export type CreateRootKeyInput = z.output<typeof CreateRootKeyRequest>;

export const RootKey = z
  .object({
    id: described(KeyId, "The root key's id (UUID v4); its audit actor is `root:<id>`."),
    name: z.string(),
    start: described(z.string(), "The root key's prefix and first characters, for display."),
    owners: z.array(z.string()),
    scopes: z.array(RootScope),
    allowed_ips: z.nullable(z.array(z.string())),
    created_by: described(z.string(), "`user:<sub>` of the operator who made it."),
    created_at: Timestamp,
    expires_at: z.nullable(Timestamp),
    revoked_at: z.nullable(Timestamp),
    revoked_by: described(z.nullable(z.string()), "`user:<sub>` of the operator who revoked it."),
    rotated_from: described(z.nullable(KeyId), "The root key this one replaced by rotation."),
    last_used_at: described(z.nullable(Timestamp), "Updated at most once a minute."),
  })
  .apply(meta({ id: "RootKey" }));
export type RootKeyView = z.infer<typeof RootKey>;

export const CreatedRootKey = z
  .extend(RootKey, {
    key: described(z.string(), "The root key itself. Shown only in this response: store it now, as a secret."),
  })
  .apply(meta({ id: "CreatedRootKey" }));
export type CreatedRootKeyView = z.infer<typeof CreatedRootKey>;

export const RootKeyList = z
  .object({ data: z.array(RootKey), next_cursor: z.nullable(z.string()) })
  .apply(meta({ id: "RootKeyList" }));
export type RootKeyListView = z.infer<typeof RootKeyList>;

export const ListRootKeysQuery = z
  .strictObject({
    limit: pageLimit(z.coerce.number()),
    cursor: pageCursor(),
    include_revoked: z._default(BooleanQuery, false),
  })
  .apply(meta({ id: "ListRootKeysQuery" }));
export type ListRootKeysInput = z.output<typeof ListRootKeysQuery>;

export const RootKeyIdParams = z.strictObject({ id: z.string().apply(meta({ description: "The root key's id." })) });
