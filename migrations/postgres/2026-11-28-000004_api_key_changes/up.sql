-- Announce every change to an API key (created, revoked, deleted) on the
-- channel `stowage_api_keys`, payload the key's hash, when it commits, so
-- servers caching key lookups forget the changed key at once (LISTEN).
CREATE FUNCTION stowage_api_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('stowage_api_keys', OLD.key_hash);
    ELSE
        PERFORM pg_notify('stowage_api_keys', NEW.key_hash);
        IF TG_OP = 'UPDATE' AND OLD.key_hash <> NEW.key_hash THEN
            PERFORM pg_notify('stowage_api_keys', OLD.key_hash);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_changed
    AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION stowage_api_key_changed();

-- TRUNCATE changes every key: payload `*`.
CREATE FUNCTION stowage_api_keys_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stowage_api_keys', '*');
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_truncated
    AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION stowage_api_keys_truncated();
