// The hookvault database: one SQLite file (plus its -wal and -shm files while
// open), schema version 2.
//
// FILE AND CONNECTIONS
//
//   The file is created with mode 0600 (SQLite gives the -wal and -shm files the
//   same mode). Every open sets, on the write connection:
//     PRAGMA journal_mode = WAL;      readers never wait for the writer
//     PRAGMA synchronous = NORMAL;    a commit does not sync the WAL; the
//                                     syncer thread syncs it before any
//                                     request of the commit is answered
//                                     (syncer.hpp), so a commit is on disk
//                                     before it is reported
//     PRAGMA secure_delete = ON;      freed cells and pages are zero-filled
//     PRAGMA foreign_keys = ON;       the references below are enforced
//     PRAGMA trusted_schema = OFF;    (also on the read connection)
//     SQLITE_DBCONFIG_DEFENSIVE = 1;  no writable_schema / shadow-table tricks
//     busy_timeout = SqliteStoreOptions::busy_timeout (the daemon 5 s, CLI commands
//                    30 s: ops.hpp open_store), so SQLite's busy handler
//                    waits for another process's write transaction; the
//                    writer lowers it per batch to what the batch's oldest
//                    request has left, and to 0 for its retry probe
//   and checks that the file is writable by committing a probe write. Reads use
//   a second connection opened SQLITE_OPEN_READONLY. A third connection, of
//   the checkpointer thread, copies the WAL into the file (checkpointer.hpp):
//   the write connection's automatic checkpoint is replaced by its WAL hook.
//   All tables are STRICT (SQLite 3.37+), so a column never holds a value of
//   another type.
//
// ENVELOPE ENCRYPTION (see envelope.hpp)
//
//   Each events row and each materials row has its own 32-byte data key (DEK),
//   drawn from the CSPRNG for that row only. Secret columns hold
//   aead_seal(DEK, plaintext, AD) (aead.hpp: version byte, nonce, key
//   commitment, AES-256-GCM ciphertext, tag); `wrapped_dek` holds
//   Kek::wrap(DEK, AD) and `kek_id`, `kek_version` name the KEK that wrapped it.
//   The associated data AD = associated_data({...}) (length-prefixed parts):
//
//     events.payload         {"events", source, idem_key, "payload"}
//     events.wrapped_dek     {"events", source, idem_key, "dek"}
//     materials.share        {"materials", source, wallet_id, event_id, "share"}
//     materials.api_key      {"materials", source, wallet_id, event_id, "api_key"}
//     materials.wrapped_dek  {"materials", source, wallet_id, event_id, "dek"}
//
//   (source, idem_key) is unique among events and (source, wallet_id, event_id)
//   names one delegation, so a ciphertext or wrapped key copied into another
//   row, or another column, fails to open with Errc::store_corrupt.
//   Every other column is plaintext metadata: identifiers, names, timestamps,
//   states. No payload byte, share byte or API key byte is stored unsealed.
//
// TABLE meta                         one row per setting
//   key    TEXT PRIMARY KEY          'schema_version' -> '2'
//                                    'writer_probe_ms' -> Unix ms of the last
//                                      probe write (open, and retries while the
//                                      store is not writable)
//                                    'superseded_redacted' -> '1' once an open
//                                      has applied ORDERING RULES rule 3's
//                                      redaction to the whole file (every
//                                      delegation older than its wallet's
//                                      current materials), for payloads a
//                                      version without that rule left whole
//                                    the audit log's key and chain head (TABLE
//                                      audit below):
//                                    'audit_key' -> lowercase hex of
//                                      Kek::wrap(audit_key, "hookvault-audit-key")
//                                      (the bare label as associated data, not
//                                      associated_data({...}))
//                                    'audit_key_kek_id', 'audit_key_kek_version'
//                                      -> the KEK that wrapped it
//                                    'audit_head_seq' -> the newest record's seq
//                                      ('0' while the log is empty)
//                                    'audit_head_mac' -> its mac, hex (32 zero
//                                      bytes while empty)
//                                    'audit_head_tag' -> hex of HMAC-SHA256(
//                                      audit_key, "hookvault-audit-head-v1" ||
//                                      u64be(head seq) || head mac)
//   value  TEXT
//
// TABLE events                       every verified event, once; never deleted,
//                                    but for a history copy (origin 'history')
//                                    that the signed delivery of its key
//                                    replaced (store.hpp): that row is deleted
//                                    (secure_delete zeroes it) and the signed
//                                    event inserted as a new row
//   id               INTEGER PRIMARY KEY AUTOINCREMENT
//                    assigned by the single writer in commit order; never reused
//                    (AUTOINCREMENT keeps the high-water mark in sqlite_sequence
//                    even when the newest rows' transaction rolled back)
//   source           TEXT   configured source name ("dynamic", "nodit", ...)
//   idem_key         TEXT   idempotency key (Dynamic: eventId)
//                    UNIQUE (source, idem_key): the permanent idempotency ledger
//   event_name       TEXT   e.g. "wallet.delegation.created"
//   message_id       TEXT   '' when absent
//   event_time       TEXT   the event's timestamp as sent; '' when absent
//   event_time_ms    INTEGER that timestamp in Unix ms (0 when absent)
//   wallet_id        TEXT   delegation events; '' otherwise
//   origin           TEXT   'signature' (webhook) or 'history' (backfill)
//   received_at_ms   INTEGER Unix ms when the store accepted the request
//   materials_state  TEXT   'none', 'stored', 'superseded', 'revoked',
//                           'decrypt_failed' (MaterialsState, materials_state_name)
//   failure_reason   TEXT   the decryption failure; NOT NULL exactly when
//                           materials_state = 'decrypt_failed'
//   kek_id           TEXT   } the KEK that wrapped this row's DEK
//   kek_version      INTEGER }
//   wrapped_dek      BLOB   Kek::wrap(DEK, AD events.wrapped_dek)
//   payload          BLOB   aead_seal(DEK, body exactly as received, AD events.payload)
//                    The four key/payload columns are all NULL when the payload
//                    was redacted (by a revocation, by a newer delegation of
//                    the wallet, by a reprocess that found the wallet revoked
//                    or a newer delegation stored, by retention: see
//                    ORDERING RULES and RETENTION), else all NOT NULL.
//
// TABLE materials                    the current delegation of each wallet
//   source, wallet_id  TEXT PRIMARY KEY (source, wallet_id)
//   user_id          TEXT
//   chain            TEXT
//   share_set_id     TEXT   NULL when the delegation had none
//   event_id         TEXT   idem_key of the delegation event
//                           REFERENCES events (source, idem_key)
//   created_at       TEXT   that event's timestamp, as sent
//   created_at_ms    INTEGER that timestamp in Unix ms
//   kek_id, kek_version     the KEK that wrapped this row's DEK
//   wrapped_dek      BLOB   Kek::wrap(DEK, AD materials.wrapped_dek)
//   share            BLOB   aead_seal(DEK, share, AD materials.share)
//   api_key          BLOB   aead_seal(DEK, wallet API key, AD materials.api_key)
//
// TABLE tombstones                   one per revoked wallet, never deleted
//   source, wallet_id  TEXT PRIMARY KEY (source, wallet_id)
//   revoked_at_ms    INTEGER the newest revocation time seen (Unix ms)
//   revoked_at       TEXT    that revocation's timestamp, as sent
//   event_id         TEXT    idem_key of that revocation event
//                            REFERENCES events (source, idem_key)
//
// TABLES sequences, sequence_gaps    Nodit sequence tracking: see sequences.hpp,
//                                    created on the same open, updated in the
//                                    same SAVEPOINT as the event they count.
//
// TABLES kek_leases, kek_retired     which open Store wraps new keys under
//                                    which KEK version, and the versions
//                                    `keys retire` took out of use: see
//                                    kek_registry.hpp, created on every open;
//                                    no schema version change (a hookvault
//                                    without them neither registers nor
//                                    refuses keys of a retired version: run
//                                    no older binary on a store whose KEK
//                                    versions are being retired)
//
// TABLE audit                        the hash-chained audit log (contract in
//                                    include/hookvault/audit.hpp, code in
//                                    audit_chain.hpp); never updated or deleted
//   seq       INTEGER PRIMARY KEY    1, 2, 3, ...: the writer inserts the head's
//                                    seq + 1 (no AUTOINCREMENT: a gap is a break)
//   time_ms   INTEGER  Unix ms when the writer appended it
//   actor     TEXT     "admin:<CN>", "cli:<user>", "source:<source name>"
//   action    TEXT     "materials.read", "event.read", "reprocess", "revoke"
//   subject   TEXT     "<source>/<wallet id>", an event id, a wallet id
//   outcome   TEXT     "ok", "not_found", "denied", "error", a reprocess result
//   mac       BLOB     32 bytes: HMAC-SHA256(audit_key, prev mac || u64be(seq)
//                      || u64be(time_ms) || u32be(len) actor || u32be(len) action
//                      || u32be(len) subject || u32be(len) outcome), where prev
//                      mac is record seq - 1's (32 zero bytes for seq 1)
//   audit_key: 32 bytes from the CSPRNG, drawn on the first open of schema 2
//   (new file, or upgrade from 1) in the open's transaction, stored only
//   wrapped (meta above). Each append reads the head, checks its tag, inserts
//   the record and moves the head inside the writer's transaction (and the
//   request's SAVEPOINT), so appends of several processes serialise on the
//   write lock and a rolled-back request leaves no record. A revocation's
//   'revoke' record is appended in the SAVEPOINT of the revocation itself, a
//   resolution's 'reprocess' record in the resolution's. `keys rewrap`
//   rewraps 'audit_key' like every other wrapped key (the audit key itself,
//   hence every mac and the head tag, stays the same), so the writer reads and
//   unwraps it once per write transaction (whose write lock keeps it from
//   changing) and forgets it when the transaction ends, never across two.
//
// KEK ROTATION (kek.hpp, Store::rewrap_batch)
//   kek_version names the KEK version that wrapped the row's DEK. `keys
//   rewrap` replaces wrapped_dek and kek_version (and 'audit_key',
//   'audit_key_kek_version') in place, with the same DEK wrapped under the
//   current version; payload, share and api_key are not touched. Each UPDATE
//   names the old version and the old wrapped bytes in its WHERE clause.
//
// INDEXES
//   events_by_source        events (source, id)       list_events with a source
//   events_by_wallet        events (source, wallet_id, event_time_ms)
//                                                     revocation: redact, settle
//   events_decrypt_failed   events (id) WHERE materials_state = 'decrypt_failed'
//                                                     decrypt_failures()
//   events_payload_by_received
//                           events (received_at_ms) WHERE payload IS NOT NULL
//                                                     retention: the oldest
//                                                     payloads still held
//   events_by_kek           events (kek_id, kek_version)
//   materials_by_kek        materials (kek_id, kek_version)
//                                                     keys status / rewrap: the
//                                                     rows of an old version
//   (events_by_kek, materials_by_kek and events_payload_by_received are created
//   on the first open by a version that has them; no schema version change.)
//   (list_events without a source walks the rowid; (source, idem_key) lookups
//   use the UNIQUE constraint's index; materials and tombstones are read by
//   their primary keys.)
//
// ORDERING RULES (applied by the writer, inside the request's SAVEPOINT)
//   A delegation (materials) for (source, wallet) at event time t:
//     1. a tombstone with revoked_at_ms >= t      -> 'revoked': nothing stored,
//        and the event's payload is stored redacted (NULL), like the payloads
//        the revocation already redacted;
//     2. else current materials that are newer: created_at_ms > t, or
//        created_at_ms = t and event_id >= this event's idem_key (byte order)
//                                                 -> 'superseded': nothing
//        stored, and the event's payload is stored redacted (NULL), like the
//        payloads rule 3 redacted when the newer materials arrived;
//     3. else                                     -> 'stored': the old row's blobs
//        are overwritten with zeroblob()s of the same length, then replaced;
//        and every older 'wallet.delegation.created' event of the wallet
//        (event_time_ms < t, or = t with a smaller idem_key) is redacted as a
//        revocation redacts it (payload and wrapped_dek zero-overwritten, then
//        NULL with kek_id and kek_version), those still 'decrypt_failed'
//        becoming 'superseded': each payload held an older share, sealed to
//        the RSA key on this host, and none can become current again.
//   A decryption failure is 'decrypt_failed' unless rule 1 or 2 applies
//   ('revoked' or 'superseded', payload redacted): only a delegation that
//   could still become the wallet's current one waits for `reprocess`.
//   A revocation of (source, wallet) at time T:
//     - materials with created_at_ms <= T: blobs zero-overwritten, row deleted;
//     - tombstone upserted, keeping the largest revoked_at_ms;
//     - 'wallet.delegation.created' events of the wallet with event_time_ms <= T:
//       payload and wrapped_dek zero-overwritten, then set to NULL with kek_id
//       and kek_version; those still 'decrypt_failed' become 'revoked'.
//   After a commit that zero-overwrote anything (rule 3's replacement and
//   redactions, a revocation, a resolution found 'revoked' or 'superseded'
//   and so redacted, a retention pass), the writer runs
//   `PRAGMA wal_checkpoint(TRUNCATE)`, for a batch of
//   requests before any of them is acknowledged, so the superseded page images
//   leave the WAL; best effort: a reader of an old snapshot that outlives the
//   busy timeout defers it to the next overwrite or close.
//
// RETENTION (SqliteStoreOptions::retention, the daemon only)
//   When [storage] retention is set, the idle writer redacts, in short
//   transactions of at most 500 rows, the payloads of events received
//   (received_at_ms) longer ago than the retention, exactly as a revocation
//   redacts a delegation's payload: payload and wrapped_dek zero-overwritten,
//   then the four key/payload columns set to NULL. Delegations still
//   'decrypt_failed' keep theirs (it is the only copy of the encrypted
//   materials `reprocess` needs). The rows, their metadata and the materials
//   table are kept.
//
// VERSION HISTORY
//   1  first version.
//   2  TABLE audit and the audit_* meta keys. A file of version 1 is upgraded
//      on open (the table is created, the key drawn, the version set to 2 in one
//      transaction); a file of a newer version is refused, untouched.
#pragma once

namespace hookvault::store::sqlite::schema {

inline constexpr char kVersionText[] = "2";
inline constexpr char kPreviousVersionText[] = "1";  // upgraded on open

// Connection setup of the write connection (see FILE AND CONNECTIONS). WAL is
// set separately, because its answer must be checked.
inline constexpr char kJournalModeWal[] = "PRAGMA journal_mode = WAL";
inline constexpr char kWriterPragmas[] =
    "PRAGMA synchronous = NORMAL;"
    "PRAGMA secure_delete = ON;"
    "PRAGMA foreign_keys = ON;"
    "PRAGMA trusted_schema = OFF;";
inline constexpr char kReaderPragmas[] = "PRAGMA trusted_schema = OFF;";

// Applied inside BEGIN IMMEDIATE on every open; idempotent. The version is
// read and set afterwards (kSelectVersion, kSetVersion).
inline constexpr char kCreateTables[] = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS events (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  source          TEXT    NOT NULL,
  idem_key        TEXT    NOT NULL,
  event_name      TEXT    NOT NULL,
  message_id      TEXT    NOT NULL,
  event_time      TEXT    NOT NULL,
  event_time_ms   INTEGER NOT NULL,
  wallet_id       TEXT    NOT NULL,
  origin          TEXT    NOT NULL CHECK (origin IN ('signature', 'history')),
  received_at_ms  INTEGER NOT NULL,
  materials_state TEXT    NOT NULL CHECK (materials_state IN
                            ('none', 'stored', 'superseded', 'revoked', 'decrypt_failed')),
  failure_reason  TEXT,
  kek_id          TEXT,
  kek_version     INTEGER,
  wrapped_dek     BLOB,
  payload         BLOB,
  UNIQUE (source, idem_key),
  CHECK ((failure_reason IS NOT NULL) = (materials_state = 'decrypt_failed')),
  CHECK ((payload IS NULL) = (wrapped_dek IS NULL)
     AND (payload IS NULL) = (kek_id IS NULL)
     AND (payload IS NULL) = (kek_version IS NULL))
) STRICT;

CREATE INDEX IF NOT EXISTS events_by_source ON events (source, id);
CREATE INDEX IF NOT EXISTS events_by_wallet ON events (source, wallet_id, event_time_ms);
CREATE INDEX IF NOT EXISTS events_decrypt_failed ON events (id)
  WHERE materials_state = 'decrypt_failed';
CREATE INDEX IF NOT EXISTS events_by_kek ON events (kek_id, kek_version);
CREATE INDEX IF NOT EXISTS events_payload_by_received ON events (received_at_ms)
  WHERE payload IS NOT NULL;

CREATE TABLE IF NOT EXISTS materials (
  source        TEXT    NOT NULL,
  wallet_id     TEXT    NOT NULL,
  user_id       TEXT    NOT NULL,
  chain         TEXT    NOT NULL,
  share_set_id  TEXT,
  event_id      TEXT    NOT NULL,
  created_at    TEXT    NOT NULL,
  created_at_ms INTEGER NOT NULL,
  kek_id        TEXT    NOT NULL,
  kek_version   INTEGER NOT NULL,
  wrapped_dek   BLOB    NOT NULL,
  share         BLOB    NOT NULL,
  api_key       BLOB    NOT NULL,
  PRIMARY KEY (source, wallet_id),
  FOREIGN KEY (source, event_id) REFERENCES events (source, idem_key)
) STRICT;

CREATE INDEX IF NOT EXISTS materials_by_kek ON materials (kek_id, kek_version);

CREATE TABLE IF NOT EXISTS tombstones (
  source        TEXT    NOT NULL,
  wallet_id     TEXT    NOT NULL,
  revoked_at_ms INTEGER NOT NULL,
  revoked_at    TEXT    NOT NULL,
  event_id      TEXT    NOT NULL,
  PRIMARY KEY (source, wallet_id),
  FOREIGN KEY (source, event_id) REFERENCES events (source, idem_key)
) STRICT;

CREATE TABLE IF NOT EXISTS audit (
  seq     INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 1),
  time_ms INTEGER NOT NULL,
  actor   TEXT    NOT NULL,
  action  TEXT    NOT NULL,
  subject TEXT    NOT NULL,
  outcome TEXT    NOT NULL,
  mac     BLOB    NOT NULL CHECK (length(mac) = 32)
) STRICT;
)sql";

// '' for a new file.
inline constexpr char kSelectVersion[] = "SELECT value FROM meta WHERE key = 'schema_version'";
// ?1: kVersionText.
inline constexpr char kSetVersion[] =
    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value";

}  // namespace hookvault::store::sqlite::schema
