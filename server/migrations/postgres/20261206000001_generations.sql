-- A document's generation: 0 (no row) until its first deletion; each deletion starts the next.
-- Appends name the generation they belong to and are refused once it is over (under a shared
-- advisory lock that the deletion takes exclusively).
CREATE TABLE IF NOT EXISTS document_generations (
    name       TEXT PRIMARY KEY,
    generation BIGINT NOT NULL
);
