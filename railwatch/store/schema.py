"""The store's schema: its tables, and the step-by-step migrations of older stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from railwatch.store.records import StoreError

__all__ = ["SCHEMA_VERSION", "create_or_migrate"]

SCHEMA_VERSION = "4"

#: How to bring an older store up to date, one version at a time: version -> (the next
#: version, its statements). Columns added this way are NULL (unknown) in the old rows.
_MIGRATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "1": ("2", ("ALTER TABLE detections ADD COLUMN class_confidence REAL",)),  # the namer's
    "2": ("3", ("ALTER TABLE scenes ADD COLUMN simulated INTEGER",)),  # simulated imagery
    # Rejections moved out of scenes, where they were keyed by content (byte-identical bad
    # files hid each other), into their own table keyed by path.
    "3": ("4", (
        "INSERT OR REPLACE INTO rejections SELECT path, model_sha256, site, name, content_sha256, "
        "COALESCE(reason, 'unusable'), COALESCE(message, ''), run_id, recorded FROM scenes "
        "WHERE status = 'rejected'",
        "DELETE FROM scenes WHERE status = 'rejected'",
    )),
}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sites (
    name TEXT PRIMARY KEY, crs_wkt TEXT NOT NULL, geojson TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, class_metrics TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL, finished TEXT,
    model_sha256 TEXT NOT NULL REFERENCES models(sha256),
    site TEXT NOT NULL REFERENCES sites(name),
    parameters TEXT NOT NULL, versions TEXT NOT NULL, summary TEXT, pid INTEGER
);
CREATE TABLE IF NOT EXISTS scenes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    content_sha256 TEXT NOT NULL, model_sha256 TEXT NOT NULL, site TEXT NOT NULL,
    name TEXT NOT NULL, path TEXT NOT NULL,
    acquired TEXT, crs TEXT, gsd REAL, footprint_wkt TEXT,
    simulated INTEGER,
    status TEXT NOT NULL CHECK (status IN ('counted', 'rejected')),
    reason TEXT, message TEXT,
    run_id INTEGER REFERENCES runs(id), recorded TEXT NOT NULL,
    UNIQUE (content_sha256, model_sha256, site)
);
CREATE TABLE IF NOT EXISTS rejections (
    path TEXT NOT NULL, model_sha256 TEXT NOT NULL, site TEXT NOT NULL,
    name TEXT NOT NULL, content_sha256 TEXT, reason TEXT NOT NULL, message TEXT NOT NULL,
    run_id INTEGER REFERENCES runs(id), recorded TEXT NOT NULL,
    PRIMARY KEY (path, model_sha256, site)
);
CREATE TABLE IF NOT EXISTS detections (
    scene_id INTEGER NOT NULL REFERENCES scenes(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL, class TEXT NOT NULL, confidence REAL NOT NULL, zone TEXT,
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    x2 REAL NOT NULL, y2 REAL NOT NULL, x3 REAL NOT NULL, y3 REAL NOT NULL,
    class_confidence REAL,
    PRIMARY KEY (scene_id, idx)
);
CREATE TABLE IF NOT EXISTS counts (
    scene_id INTEGER NOT NULL REFERENCES scenes(id) ON DELETE CASCADE,
    zone TEXT NOT NULL, class TEXT NOT NULL, count INTEGER NOT NULL, coverage REAL NOT NULL,
    PRIMARY KEY (scene_id, zone, class)
);
"""


def create_or_migrate(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables of an empty store, or bring an older one up to date, inside the
    caller's transaction; refuse a store of another schema."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is None:
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
    elif row[0] in _MIGRATIONS:
        version = row[0]
        while version in _MIGRATIONS:
            version, statements = _MIGRATIONS[version]
            for statement in statements:
                db.execute(statement)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
    elif row[0] != SCHEMA_VERSION:
        raise StoreError(f"{path}: store schema {row[0]} is not railwatch's {SCHEMA_VERSION}; "
                         "use a new --db file")
