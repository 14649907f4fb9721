-- Fillfactor for the families table (room on each page for rotations to
-- stay heap-only updates) is a PostgreSQL storage parameter; SQLite has no
-- equivalent, so this migration is a no-op here and exists only to keep
-- both dialects' migrations numbered alike.
SELECT 1;
