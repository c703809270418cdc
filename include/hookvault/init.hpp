// `hookvault init`: a complete local setup in one folder, wired together.
//
// run_init(DIR, out) creates DIR (mode 0700 when it is new) with 0700 subfolders
// and writes:
//
//   DIR/hookvault.toml               config using every file below by relative path:
//                                    public listener 127.0.0.1:8443, admin 127.0.0.1:9443,
//                                    sources "dynamic" and "nodit", log text/info
//   DIR/tls/cert.pem, key.pem        self-signed server certificate, ECDSA P-256, 825 days,
//                                    CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
//   DIR/tls/admin-ca.pem             admin CA certificate (ECDSA P-256, CA:TRUE, pathlen 0)
//   DIR/tls/admin-cert.pem, -key.pem admin listener certificate for localhost, signed by the CA
//   DIR/keys/dynamic_rsa.pem         RSA-4096 delegation key (PKCS#8)
//   DIR/keys/dynamic_rsa.pub.pem     its public key, to paste into Dynamic's dashboard
//   DIR/keys/kek.key                 32 random bytes, base64 (the file KEK)
//   DIR/secrets/dynamic_webhook_secret  "dyn_" + 32 random url-safe characters (placeholder)
//   DIR/secrets/nodit_signing_key    64 random hex characters (placeholder)
//   DIR/data/                        the store's folder (hookvault.db is created by `serve`)
//
// and, in the offline folder DIR-offline beside DIR (mode 0700; for DIR
// "./var/dev", "./var/dev-offline"), what the daemon never needs and must
// never be able to read, since with it a compromised daemon could mint admin
// client certificates:
//
//   DIR-offline/admin-ca.key         the admin CA's private key
//   DIR-offline/signer-cert.pem, signer-key.pem
//                                    client certificate CN=signer (clientAuth), signed by the
//                                    CA, and its key: the signing service's, not the daemon's
//
// Nothing in DIR refers to the offline folder; `out` says where it is and to
// move it off the host (README: the CA key offline, the signer's files to the
// signer). An existing CA is used as it is: its key only when it is still in
// the offline folder, and only to sign a certificate that is missing (an
// error names the key when one is needed and it has been moved away). Files
// an older init left in DIR/tls/ (admin-ca.key, signer-cert.pem,
// signer-key.pem) are used where they are and named in a warning with the
// command that moves them. DIR must name a folder below / (not / itself).
//
// Nothing is ever overwritten: an existing file is kept as it is and reported
// as "kept existing ...", so running init twice changes nothing. A certificate
// whose key is missing, or a leaf certificate whose CA is missing, is an error
// (init would otherwise pair it with a key it does not belong to). Private keys
// and secrets are created mode 0600 with O_CREAT|O_EXCL (never readable by
// others, not even briefly), written to a temporary name and linked into place,
// so a crash never leaves a truncated key behind.
//
// `out` receives one line per file (created / kept existing), the RSA public key
// PEM with the instruction to paste it into Dynamic's dashboard (delegated
// access encryption key), and a note that the webhook secrets are placeholders
// to replace with the values the providers' dashboards show. No private key or
// secret is ever printed.
//
// Errors (unwritable folder, OpenSSL failure, inconsistent existing files) throw
// std::runtime_error with one clear line; files already created stay in place.
//
// Thread-safety: stateless; do not run two inits on the same folder at once
// (neither would overwrite a file, but one may report the other's files as kept).
#pragma once

#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

namespace hookvault {

// What run_init() did. It returns only when every file is in place; a
// failure throws (see above).
struct InitResult {
  std::filesystem::path config_file;           // DIR/hookvault.toml
  std::filesystem::path offline_dir;           // DIR-offline, absolute
  std::vector<std::filesystem::path> created;  // files written now, relative to DIR
  std::vector<std::filesystem::path> kept;     // files that already existed, relative to DIR
  // (offline files as "../<DIR name>-offline/admin-ca.key")
  std::string rsa_public_pem;  // the delegation public key (also printed)
};

InitResult run_init(const std::filesystem::path& dir, std::ostream& out);

}  // namespace hookvault
