-- A store file (schema version 2) written by hookvault at commit de02e08, as
-- `sqlite3 hookvault.db .dump` prints it. store_audit_test.cpp loads it to
-- prove that later code still opens, verifies and extends what earlier code
-- wrote (envelope, wrapped keys, audit chain), byte for byte.
--
-- Written through the public Store API with
--   make_memory_kek(SecretBytes::copy_of("hookvault-fixture-kek-0123456789"), "fixture:1"):
--   write   dynamic/p1  user.created               (payload {"eventId":"p1","body":"payload of p1"})
--   write   dynamic/c1  wallet.delegation.created  w1, materials "share of w1" / "api key of w1"
--   write   dynamic/c2  wallet.delegation.created  w2, materials "share of w2" / "api key of w2"
--   write   dynamic/r2  wallet.delegation.revoked  w2 (audit record 1: source:dynamic revoke w2 ok)
--   audit   cli:operator materials.read dynamic/w1 ok
--   audit   admin:signer-<U+00E9> event.read "" not_found
--   audit   cli:operator reprocess 3 'decrypt_failed: no "key"<LF>'
-- Payloads are {"eventId":"<key>","body":"payload of <key>"}; event times
-- 2026-01-01T00:00:0<n>Z.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) STRICT;
INSERT INTO meta VALUES('schema_version','2');
INSERT INTO meta VALUES('audit_key','32a35bc7753af7bb8ea5c80ad1569924c2cc4f700839cff7c1f9bdbd867e36be0a0fa45f33184f3292cb11a190b883dea527e42b78007abd794c972d');
INSERT INTO meta VALUES('audit_key_kek_id','fixture:1');
INSERT INTO meta VALUES('audit_key_kek_version','1');
INSERT INTO meta VALUES('audit_head_seq','4');
INSERT INTO meta VALUES('audit_head_mac','d52242fd3f884ef3b3546139cb9059cb2e511f48ffbdaeade7de29619f8b919e');
INSERT INTO meta VALUES('audit_head_tag','8d4b6025170a6e2416faf4f628caf8c397c3cff8dd8d113bd3493cdf37339d3c');
INSERT INTO meta VALUES('writer_probe_ms','1795382398758');
CREATE TABLE events (
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
INSERT INTO events VALUES(1,'dynamic','p1','user.created','','2026-01-01T00:00:01Z',1000,'','signature',1795382398762,'none',NULL,'fixture:1',1,X'd80d9caa2d2be278eee12090448cd56ea4fcab0c1753946d9e6521844614ff40d890d58b09ae0fbdcd7d3b4bca05f290a6f1fe26d0503a8c7d17df86',X'01f7a66a70160ea91fc4d1aea822a00ede07cd5cadc7795a2945e0941464c4090c4d9effcb689c70ceae7bb57e817fcb5190edf51dfe131ad0a5b3c2330da32413bd2e57eb49ebd036e8194b7e44553406309f43389a739752b08421b75092d3998a2025');
INSERT INTO events VALUES(2,'dynamic','c1','wallet.delegation.created','','2026-01-01T00:00:02Z',2000,'w1','signature',1795382398766,'stored',NULL,'fixture:1',1,X'15461fb6c1539944b0ed560e387481d655a5fa6c00a74df1c8c65f171ab7d4e1e016d2e1d08e215639b493ce454c3c5f19ad2c9f898620d4023af351',X'01fddbea05179de039d5b46113066718077625eea3188068423367df03ea10bf73979f620b8c1041d930e1876fb145e151d241309b842f171a543ce6ed29361e9ce1e5a05221f8fdf9f3cf30f7bc6a195314d04f24d1e4060fb8635fdcdd364b97a67bca');
INSERT INTO events VALUES(3,'dynamic','c2','wallet.delegation.created','','2026-01-01T00:00:03Z',3000,'w2','signature',1795382398770,'stored',NULL,NULL,NULL,NULL,NULL);
INSERT INTO events VALUES(4,'dynamic','r2','wallet.delegation.revoked','','2026-01-01T00:00:04Z',4000,'w2','signature',1795382398772,'none',NULL,'fixture:1',1,X'73550b3c3e8ca80c802ee2b7a00be1c7ea32c15609533bc25beb89a632340213f8174184259529a10f7bccd336acd0e90b8a04d6604b005ccd322695',X'01413ed9257c644871a112698f4ccc587f25f62f79714d79f5c8eb853e2aac0da08e996b7c1db3c2c3e4e94f3fadaf427ce584c2da74eb4a89045b5e7d359458a55a87a49f2efa85f9ac2d0f7ce068def35f4f83bcbd5b6438d91378f019e088304e7f61');
CREATE TABLE materials (
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
INSERT INTO materials VALUES('dynamic','w1','user-w1','EVM',NULL,'c1','2026-01-01T00:00:02Z',2000,'fixture:1',1,X'029e5651ba1747ed7666aad7e489055e9238e59a394965b3b82d08506904accfa7fd1971c3dbcd689a48c9bf48fb2ee34f4f206e4126e26c2717daf4',X'0101fd02aa5ad12905c819ee0b76d66d64d36a5ce5165da996d549d4c2032a16bb233e343fe31a2507c87d292c13250ba8cacdb1c02eb02e156d9b1b17c2d74df382e1fbaa2c54c3',X'0152910cedf8c176ec46699d6544b19fcd0947e95216b8c998714daa5135f6655f02db6ae9901647e98bfc70dd0f30b6f3989cd4846b417632ddb13c10b34c3465e13dd462bc45cec58d');
CREATE TABLE tombstones (
  source        TEXT    NOT NULL,
  wallet_id     TEXT    NOT NULL,
  revoked_at_ms INTEGER NOT NULL,
  revoked_at    TEXT    NOT NULL,
  event_id      TEXT    NOT NULL,
  PRIMARY KEY (source, wallet_id),
  FOREIGN KEY (source, event_id) REFERENCES events (source, idem_key)
) STRICT;
INSERT INTO tombstones VALUES('dynamic','w2',4000,'2026-01-01T00:00:04Z','r2');
CREATE TABLE audit (
  seq     INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 1),
  time_ms INTEGER NOT NULL,
  actor   TEXT    NOT NULL,
  action  TEXT    NOT NULL,
  subject TEXT    NOT NULL,
  outcome TEXT    NOT NULL,
  mac     BLOB    NOT NULL CHECK (length(mac) = 32)
) STRICT;
INSERT INTO audit VALUES(1,1795382398773,'source:dynamic','revoke','w2','ok',X'37b05deada97e8fff7ecb693952dc6eb9120e0f9c50fbe46d9e46241f38f0be0');
INSERT INTO audit VALUES(2,1795382398794,'cli:operator','materials.read','dynamic/w1','ok',X'729ab961867e1ee1f5d65f5eaf311545f9b4cf002e9c44ec9b649d72f85836a2');
INSERT INTO audit VALUES(3,1795382398802,'admin:signer-é','event.read','','not_found',X'902eb42fb4e3ee9d48c4037552f126b390fdf104a031bfd020242e6a5f0ae5f9');
INSERT INTO audit VALUES(4,1795382398810,'cli:operator','reprocess','3',replace('decrypt_failed: no "key"\n','\n',char(10)),X'd52242fd3f884ef3b3546139cb9059cb2e511f48ffbdaeade7de29619f8b919e');
CREATE TABLE sequences (
  source          TEXT    NOT NULL,
  subscription_id TEXT    NOT NULL,
  contiguous      INTEGER NOT NULL,
  highest         INTEGER NOT NULL,
  PRIMARY KEY (source, subscription_id),
  CHECK (contiguous <= highest)
) STRICT;
CREATE TABLE sequence_gaps (
  source          TEXT    NOT NULL,
  subscription_id TEXT    NOT NULL,
  first           INTEGER NOT NULL,
  last            INTEGER NOT NULL,
  detected_at_ms  INTEGER NOT NULL,
  PRIMARY KEY (source, subscription_id, first),
  CHECK (1 <= first AND first <= last)
) STRICT;
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('events',4);
CREATE INDEX events_by_source ON events (source, id);
CREATE INDEX events_by_wallet ON events (source, wallet_id, event_time_ms);
CREATE INDEX events_decrypt_failed ON events (id)
  WHERE materials_state = 'decrypt_failed';
CREATE INDEX events_by_kek ON events (kek_id, kek_version);
CREATE INDEX materials_by_kek ON materials (kek_id, kek_version);
COMMIT;
