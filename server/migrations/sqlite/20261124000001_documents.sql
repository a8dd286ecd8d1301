-- The snapshot of record: one row per document, `content` = the full Yjs state as one v1 update
-- (the same layout as the Node server's `documents(name, content, updated_at)` table).
CREATE TABLE IF NOT EXISTS documents (
    name       TEXT PRIMARY KEY NOT NULL,
    content    BLOB NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Append-only log of updates not yet folded into `documents.content`.
CREATE TABLE IF NOT EXISTS document_updates (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    content    BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX IF NOT EXISTS document_updates_name_id ON document_updates (name, id);
