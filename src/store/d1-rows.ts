/** D1's rows and the records they hold: the columns, row to record and back, and how an update's fields are stored. */
import { formatColumns, formatFromColumns } from "./legacy-columns";
import type { KeyLimits } from "../keys/limit-arithmetic";
import type { AuditAction, AuditEvent, KeyRecord, OwnerType } from "../model";
import type { KeyChange, KeyChanges } from "./store";

export interface KeyRow {
  id: string;
  hash: string;
  start: string;
  name: string;
  owner_type: string;
  owner_id: string;
  scopes: string;
  resources: string | null;
  created_by: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
  metadata: string | null;
  format: string | null;
  parent_id: string | null;
  enabled: number;
  updated_at: number | null;
  allowed_ips: string | null;
  rotated_from: string | null;
  limits: string | null;
  usage_id: string | null;
  /** Only in reads that ask for it (OWNER_RULES). */
  owner_rules?: string | null;
  legacy_format: string | null;
  legacy_hash: string | null;
}

export const COLUMNS =
  "id, hash, start, name, owner_type, owner_id, scopes, resources, created_by, created_at, expires_at, revoked_at, last_used_at, metadata, format, parent_id, enabled, updated_at, allowed_ips, rotated_from, limits, usage_id, legacy_format, legacy_hash";

export interface ChangeRow {
  seq: number;
  hash: string;
  key_id: string;
  kind: KeyChange["kind"];
}

export const fromChangeRow = (row: ChangeRow): KeyChange => ({
  seq: row.seq,
  hash: row.hash,
  keyId: row.key_id,
  kind: row.kind,
});

/** A row of an audit log: owner_events' columns, and key_events' but for key_id. */
export interface LogRow {
  id: string;
  owner_type: string;
  owner_id: string;
  action: string;
  actor: string;
  at: number;
  changes: string;
  ip: string | null;
  user_agent: string | null;
}

/** A row of key_events, the keys' audit log. */
export interface EventRow extends LogRow {
  key_id: string;
}

export const EVENT_COLUMNS = "id, key_id, owner_type, owner_id, action, actor, at, changes, ip, user_agent";
/** The columns of owner_events, the owners' audit log (owner-limits.ts). */
export const OWNER_EVENT_COLUMNS = "id, owner_type, owner_id, action, actor, at, changes, ip, user_agent";

export const jsonOrNull = (value: unknown) => (value === null ? null : JSON.stringify(value));

/** An audit log's row as an event, its `action` one of that log's (`A`). */
export function fromLogRow<A extends string>(row: LogRow) {
  return {
    id: row.id,
    owner: { type: row.owner_type as OwnerType, id: row.owner_id },
    action: row.action as A,
    actor: row.actor,
    at: row.at,
    changes: JSON.parse(row.changes) as AuditEvent["changes"],
    ip: row.ip,
    userAgent: row.user_agent,
  };
}

export function fromEventRow(row: EventRow): AuditEvent {
  const { id, ...event } = fromLogRow<AuditAction>(row);
  return { id, keyId: row.key_id, ...event };
}

/** What an update may set, by record field: the column and how the value is stored. */
export const UPDATABLE: {
  [F in keyof Required<KeyChanges>]: [column: string, toColumn: (value: KeyChanges[F]) => unknown];
} = {
  name: ["name", (v) => v],
  metadata: ["metadata", jsonOrNull],
  enabled: ["enabled", (v) => (v ? 1 : 0)],
  expiresAt: ["expires_at", (v) => v],
  scopes: ["scopes", (v) => JSON.stringify(v)],
  resources: ["resources", jsonOrNull],
  allowedIps: ["allowed_ips", jsonOrNull],
  limits: ["limits", jsonOrNull],
};

export function fromRow(row: KeyRow): KeyRecord {
  return {
    id: row.id,
    hash: row.hash,
    start: row.start,
    name: row.name,
    owner: { type: row.owner_type as OwnerType, id: row.owner_id },
    scopes: JSON.parse(row.scopes) as string[],
    resources: row.resources === null ? null : (JSON.parse(row.resources) as string[]),
    createdBy: row.created_by,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as Record<string, unknown>),
    ...(row.format === null ? {} : { format: formatFromColumns(row.format, row.legacy_format) }),
    ...(row.legacy_hash === null ? {} : { legacyHash: row.legacy_hash }),
    parentId: row.parent_id,
    enabled: row.enabled !== 0,
    updatedAt: row.updated_at,
    allowedIps: row.allowed_ips === null ? null : (JSON.parse(row.allowed_ips) as string[]),
    rotatedFrom: row.rotated_from,
    ...(row.limits === null ? {} : { limits: JSON.parse(row.limits) as KeyLimits }),
    ...(row.usage_id === null ? {} : { usageId: row.usage_id }),
    ...(row.owner_rules ? { ownerLimits: JSON.parse(row.owner_rules) as KeyLimits } : {}),
  };
}

export const PLACEHOLDERS = COLUMNS.split(",")
  .map(() => "?")
  .join(", ");

/** The conditional insert binds ?1 (parent id) and ?2 (now) first, then the row's values, then the quota. */
export const VALUE_PARAMS_FROM_3 = COLUMNS.split(",")
  .map((_, i) => `?${i + 3}`)
  .join(", ");
export const MAX_KEYS_PARAM = COLUMNS.split(",").length + 3;

export function values(r: KeyRecord): (string | number | null)[] {
  return [
    r.id,
    r.hash,
    r.start,
    r.name,
    r.owner.type,
    r.owner.id,
    JSON.stringify(r.scopes),
    jsonOrNull(r.resources),
    r.createdBy,
    r.createdAt,
    r.expiresAt,
    r.revokedAt,
    r.lastUsedAt,
    jsonOrNull(r.metadata),
    formatColumns(r.format)[0],
    r.parentId,
    r.enabled ? 1 : 0,
    r.updatedAt,
    jsonOrNull(r.allowedIps),
    r.rotatedFrom,
    r.limits ? JSON.stringify(r.limits) : null,
    r.usageId ?? null,
    formatColumns(r.format)[1],
    r.legacyHash ?? null,
  ];
}
