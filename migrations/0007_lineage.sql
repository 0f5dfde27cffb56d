-- Lineage: a cascading revocation follows parent_id and the key that received each key's secret.
-- `created_by` already records it (`key:<id>` for a key created, imported or rotated at a key's request),
-- so the cascade also follows `created_by = 'key:' || id`; this index serves that step.
CREATE INDEX api_keys_created_by ON api_keys (created_by);

-- A rotated-away key's replacement, found by rotated_from: its expiry may be shortened, never extended.
CREATE INDEX api_keys_rotated_from ON api_keys (rotated_from) WHERE rotated_from IS NOT NULL;

-- A write guard: a batch whose first statement inserts a non-NULL refusal here aborts whole (a batch is one
-- transaction). Writes that depend on more rows than the one they name (a usage chain, a lineage) insert
-- the comparison of those rows with what was read, so a concurrent change cannot slip between check and write.
CREATE VIEW write_guard (refusal) AS SELECT NULL;
CREATE TRIGGER write_guard_refuses INSTEAD OF INSERT ON write_guard WHEN NEW.refusal IS NOT NULL
BEGIN
  SELECT RAISE(ABORT, 'write_guard: the rows changed since they were read');
END;
