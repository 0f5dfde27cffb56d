-- Sharding by owner (docs/scaling.md, D1_SHARDS > 1; unused with one database). Applied to every
-- database alike; each table is read only where its comment says.
--
-- shard_map (read in the first database, DB): where a bucket lives when not at its default
-- (bucket % D1_SHARDS), and whether it is being moved. `moving_since` set: writes to the bucket's
-- owners are refused (503, Retry-After) while an operator's move copies it (scripts/move-bucket.mjs).
CREATE TABLE shard_map (
  bucket       INTEGER PRIMARY KEY CHECK (bucket BETWEEN 0 AND 255),
  shard        INTEGER NOT NULL CHECK (shard BETWEEN 0 AND 255),
  moving_since INTEGER
);

-- key_homes (read in the first database): the keys whose hash does not carry their owner's bucket
-- (imported keys, keys made before sharding), so verification finds them: hash -> the owner's bucket.
CREATE TABLE key_homes (
  hash   TEXT PRIMARY KEY,
  bucket INTEGER NOT NULL CHECK (bucket BETWEEN 0 AND 255)
);
