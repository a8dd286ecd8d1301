-- Document versions (the document API's /versions): the whole state at a moment, with who made
-- it. A version belongs to its document's generation; a DELETE removes them with the document.
CREATE TABLE IF NOT EXISTS document_versions (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    generation BIGINT NOT NULL,
    label      TEXT,
    author     TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    size       BIGINT NOT NULL,
    content    BYTEA NOT NULL
);

CREATE INDEX IF NOT EXISTS document_versions_name ON document_versions (name, id);
