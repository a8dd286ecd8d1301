-- The snapshot of record. The Node server (seed design) created exactly this table and upserts
-- `content` = Y.encodeStateAsUpdate(doc) on every store; an existing table is adopted unchanged.
CREATE TABLE IF NOT EXISTS documents (
    name       TEXT PRIMARY KEY,
    content    BYTEA,
    updated_at TIMESTAMPTZ DEFAULT now()
);

-- Append-only log of acknowledged updates not yet folded into `documents.content`.
CREATE TABLE IF NOT EXISTS document_updates (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    content    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS document_updates_name_id ON document_updates (name, id);
