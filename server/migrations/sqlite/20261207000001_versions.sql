-- Document versions (the document API's /versions): the whole state at a moment, with who made
-- it. A version belongs to its document's generation; a DELETE removes them with the document.
CREATE TABLE IF NOT EXISTS document_versions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    generation INTEGER NOT NULL,
    label      TEXT,
    author     TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    content    BLOB NOT NULL
);

CREATE INDEX IF NOT EXISTS document_versions_name ON document_versions (name, id);
