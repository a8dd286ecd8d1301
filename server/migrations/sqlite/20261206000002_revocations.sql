-- Live revocations (the document API's POST /api/revocations): kept until they expire, so a
-- replica that starts later refuses the same tokens.
CREATE TABLE IF NOT EXISTS revocations (
    subject         TEXT NOT NULL,
    documents TEXT,
    mode            TEXT NOT NULL,
    issued_before   INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS revocations_expires_at ON revocations (expires_at);
