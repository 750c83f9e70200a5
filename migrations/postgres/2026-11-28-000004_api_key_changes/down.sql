DROP TRIGGER IF EXISTS api_keys_truncated ON api_keys;
DROP FUNCTION IF EXISTS stowage_api_keys_truncated();
DROP TRIGGER IF EXISTS api_keys_changed ON api_keys;
DROP FUNCTION IF EXISTS stowage_api_key_changed();
