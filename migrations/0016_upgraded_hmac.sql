-- HMAC-imported keys are upgraded on first use (src/service/hmac-upgrade.ts): `hash` becomes the SHA-256
-- of the whole token, and `legacy_hash` keeps the HMAC digest the key was imported under. No lookup is
-- made by that digest but one: an import of the same digest is a conflict, never a second key
-- (src/store/d1-writes.ts). This index makes that check one index probe per item.
CREATE INDEX api_keys_upgraded_hmac ON api_keys (legacy_hash)
  WHERE legacy_format = 'hmac-sha256' AND legacy_hash IS NOT NULL;
