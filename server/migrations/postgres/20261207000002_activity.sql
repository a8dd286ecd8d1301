-- Document activity (GET /api/documents/{name}/activity): stored updates per author per minute,
-- kept apart from the log (which compaction folds away) and deleted with the document.
CREATE TABLE IF NOT EXISTS document_activity (
    name    TEXT NOT NULL,
    author  TEXT NOT NULL,
    minute  BIGINT NOT NULL,
    updates BIGINT NOT NULL,
    bytes   BIGINT NOT NULL,
    PRIMARY KEY (name, minute, author)
);
