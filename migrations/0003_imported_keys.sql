-- Imported keys (POST /v1/keys/import) keep working in their own format: `format` says how a
-- presented credential was hashed into `hash` (see src/keys/legacy.ts). NULL: a latchkey key.
ALTER TABLE api_keys ADD COLUMN format TEXT CHECK (format IN ('sanctum', 'opaque'));
