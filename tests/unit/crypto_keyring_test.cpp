// The file KEK's keyring (kek.hpp): legacy files still open as version 1,
// `keys rotate` adds versions without changing the KEK id, retire removes one,
// refresh() and unwrap() pick up what another process wrote, and a malformed
// keyring is an error naming the file and the line, never a key.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/aead.hpp"
#include "hookvault/base64.hpp"
#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/secret.hpp"
#include "test_support.hpp"

namespace hookvault {
namespace {

using testing::read_file;
using testing::TempDir;
using testing::write_file;

using Versions = std::vector<std::uint32_t>;

template <class T>
std::string outcome(const Result<T>& r) {
  return r ? std::string("ok") : std::string(error_name(to_errc(r.error())));
}

std::string id_of(const SecretBytes& key) {
  std::string input = "hookvault-kek-id";
  input.append(key.reveal_string());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha256(), nullptr), 1);
  return "file:" + to_hex(ByteView(digest, 4));
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto nl = text.find('\n', at);
    out.push_back(text.substr(at, nl - at));
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  return out;
}

const Bytes kAd = associated_data({"events", "dynamic", "evt-1", "dek"});

// Wraps a fresh DEK with `kek` and checks that `reader` opens it at the
// version wrap() reported.
void expect_round_trip(const Kek& kek, const Kek& reader, std::uint32_t expected_version) {
  const SecretBytes dek = SecretBytes::random(32);
  auto wrapped = kek.wrap(dek, kAd);
  ASSERT_TRUE(wrapped) << outcome(wrapped);
  EXPECT_EQ(wrapped->version, expected_version);
  auto back = reader.unwrap(wrapped->bytes, wrapped->version, kAd);
  ASSERT_TRUE(back) << outcome(back);
  EXPECT_TRUE(back->equals(dek.reveal()));
}

class KeyringTest : public ::testing::Test {
 protected:
  std::filesystem::path file() const { return dir_ / "kek.key"; }

  TempDir dir_;
  const SecretBytes key1_ = SecretBytes::random(32);
};

TEST_F(KeyringTest, LegacyFilesOpenAsVersionOneAndRotateAddsVersionTwoWithTheSameId) {
  for (const bool raw : {false, true}) {
    SCOPED_TRACE(raw ? "32 raw bytes" : "base64 line");
    write_file(file(),
               raw ? std::string(key1_.reveal_string()) : base64_encode(key1_.reveal()) + "\n");
    const auto legacy = open_file_kek(file());
    EXPECT_EQ(legacy->id(), id_of(key1_));
    EXPECT_EQ(legacy->version(), 1U);
    EXPECT_EQ(legacy->versions(), Versions{1});
    const SecretBytes dek = SecretBytes::random(32);
    auto old_wrap = legacy->wrap(dek, kAd);
    ASSERT_TRUE(old_wrap);
    EXPECT_EQ(old_wrap->version, 1U);

    EXPECT_EQ(rotate_file_kek(file()), 2U);
    struct stat st {};
    ASSERT_EQ(::stat(file().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600U);
    const auto lines = lines_of(read_file(file()));
    ASSERT_EQ(lines.size(), 3U);
    EXPECT_EQ(lines[0], "id " + id_of(key1_));
    EXPECT_EQ(lines[1], "v1 " + base64_encode(key1_.reveal()));
    EXPECT_EQ(lines[2].substr(0, 3), "v2 ");
    // Nothing left behind in the folder but the keyring.
    std::size_t entries = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
      (void)e;
      ++entries;
    }
    EXPECT_EQ(entries, 1U);

    const auto rotated = open_file_kek(file());
    EXPECT_EQ(rotated->id(), legacy->id());  // existing stores keep working
    EXPECT_EQ(rotated->version(), 2U);
    EXPECT_EQ(rotated->versions(), (Versions{1, 2}));
    auto back = rotated->unwrap(old_wrap->bytes, 1, kAd);
    ASSERT_TRUE(back) << outcome(back);
    EXPECT_TRUE(back->equals(dek.reveal()));
    expect_round_trip(*rotated, *rotated, 2);
    // The version is bound into the wrap.
    auto v2 = rotated->wrap(dek, kAd);
    ASSERT_TRUE(v2);
    EXPECT_EQ(outcome(rotated->unwrap(v2->bytes, 1, kAd)), "store_corrupt");
    EXPECT_EQ(outcome(rotated->unwrap(old_wrap->bytes, 2, kAd)), "store_corrupt");

    EXPECT_EQ(rotate_file_kek(file()), 3U);
    EXPECT_EQ(open_file_kek(file())->versions(), (Versions{1, 2, 3}));
  }
}

TEST_F(KeyringTest, AnOpenKekPicksUpANewVersionOnRefreshOrWhenAskedToUnwrapIt) {
  write_file(file(), base64_encode(key1_.reveal()) + "\n");
  const auto daemon = open_file_kek(file());
  const auto other = open_file_kek(file());
  ASSERT_EQ(rotate_file_kek(file()), 2U);
  EXPECT_EQ(daemon->version(), 1U);  // until refreshed
  expect_round_trip(*daemon, *daemon, 1);

  daemon->refresh();
  EXPECT_EQ(daemon->version(), 2U);
  EXPECT_EQ(daemon->versions(), (Versions{1, 2}));
  // `other` was never refreshed: it reads the file once for the unknown
  // version, and from then on wraps under it too.
  expect_round_trip(*daemon, *other, 2);
  EXPECT_EQ(other->version(), 2U);
  expect_round_trip(*other, *daemon, 2);
}

TEST_F(KeyringTest, RetireRemovesAnOldVersionAndTheIdLineKeepsTheId) {
  write_file(file(), base64_encode(key1_.reveal()));
  const auto kek = open_file_kek(file());
  const SecretBytes dek = SecretBytes::random(32);
  auto v1 = kek->wrap(dek, kAd);
  ASSERT_TRUE(v1);
  ASSERT_EQ(rotate_file_kek(file()), 2U);

  const auto expect_refused = [&](std::uint32_t version, const std::string& why) {
    try {
      retire_file_kek_version(file(), version);
      ADD_FAILURE() << "retired " << version;
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(file().string()), std::string::npos) << what;
      EXPECT_NE(what.find(why), std::string::npos) << what;
    }
  };
  expect_refused(2, "current version");
  expect_refused(3, "has no version 3");
  retire_file_kek_version(file(), 1);
  expect_refused(1, "has no version 1");
  EXPECT_EQ(read_file(file()).find("v1 "), std::string::npos);

  const auto after = open_file_kek(file());
  EXPECT_EQ(after->id(), id_of(key1_));
  EXPECT_EQ(after->versions(), Versions{2});
  EXPECT_EQ(outcome(after->unwrap(v1->bytes, 1, kAd)), "kek_unavailable");
  kek->refresh();  // an open Kek drops it too
  EXPECT_EQ(kek->versions(), Versions{2});
  EXPECT_EQ(outcome(kek->unwrap(v1->bytes, 1, kAd)), "kek_unavailable");
  expect_round_trip(*after, *kek, 2);
  // Rotating on after retiring keeps counting up.
  EXPECT_EQ(rotate_file_kek(file()), 3U);
  EXPECT_EQ(open_file_kek(file())->versions(), (Versions{2, 3}));
}

// New versions are always the highest + 1, so an unknown version at or below
// the current one was retired: unwrap answers kek_unavailable without reading
// the file again (refresh() still reads it).
TEST_F(KeyringTest, UnwrapReadsTheFileOnlyForAVersionAboveTheCurrentOne) {
  write_file(file(), base64_encode(key1_.reveal()) + "\n");
  const auto v1 = open_file_kek(file())->wrap(SecretBytes::random(32), kAd);
  ASSERT_TRUE(v1);
  ASSERT_EQ(v1->version, 1U);
  ASSERT_EQ(rotate_file_kek(file()), 2U);
  const std::string both = read_file(file());
  retire_file_kek_version(file(), 1);
  const auto kek = open_file_kek(file());
  ASSERT_EQ(kek->versions(), Versions{2});
  write_file(file(), both);  // version 1 back (a restore from backup)
  EXPECT_EQ(outcome(kek->unwrap(v1->bytes, 1, kAd)), "kek_unavailable");
  EXPECT_EQ(kek->versions(), Versions{2});
  kek->refresh();
  EXPECT_EQ(kek->versions(), (Versions{1, 2}));
  EXPECT_EQ(outcome(kek->unwrap(v1->bytes, 1, kAd)), "ok");

  // A wrapped key of the wrong size is corrupt whatever its version, and
  // checked before any read of the file.
  ASSERT_EQ(rotate_file_kek(file()), 3U);
  EXPECT_EQ(outcome(kek->unwrap(Bytes(59, 0), 3, kAd)), "store_corrupt");
  EXPECT_EQ(outcome(kek->unwrap(Bytes(61, 0), 3, kAd)), "store_corrupt");
  EXPECT_EQ(kek->version(), 2U);  // not read
  EXPECT_EQ(outcome(kek->unwrap(Bytes(60, 0), 3, kAd)), "store_corrupt");
  EXPECT_EQ(kek->version(), 3U);  // read, and found version 3
}

// read_secret_file() (crypto/secret_file.hpp) refuses what is not a regular
// file, a FIFO included, without blocking on it.
TEST_F(KeyringTest, AFifoOrAFolderIsNotAKeyringAndDoesNotHang) {
  ASSERT_EQ(::mkfifo(file().c_str(), 0600), 0);
  try {
    (void)open_file_kek(file());
    ADD_FAILURE() << "opened a FIFO";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(
        std::string(e.what()).find("KEK file \"" + file().string() + "\": not a regular file"),
        std::string::npos)
        << e.what();
  }
  std::filesystem::remove(file());
  std::filesystem::create_directory(file());
  EXPECT_THROW((void)open_file_kek(file()), std::runtime_error);
  std::filesystem::remove(file());
  write_file(file(), std::string(16385, 'v'));
  try {
    (void)open_file_kek(file());
    ADD_FAILURE() << "opened a file of 16385 bytes";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("larger than 16384 bytes"), std::string::npos) << e.what();
  }
}

TEST_F(KeyringTest, HandWrittenKeyringsWithCrlfBlankLinesAndNoIdLineOpen) {
  const SecretBytes key2 = SecretBytes::random(32);
  write_file(file(), "v2 " + base64url_encode(key2.reveal()) + "\r\n\r\nv1 " +
                         base64_encode(key1_.reveal()) + "\r\n");
  const auto kek = open_file_kek(file());
  EXPECT_EQ(kek->id(), id_of(key1_));
  EXPECT_EQ(kek->version(), 2U);
  // The same keys as memory KEKs: the wrap layout is the one of kek.hpp.
  const auto mem1 = make_memory_kek(key1_.clone(), "memory:1");
  const SecretBytes dek = SecretBytes::random(32);
  auto w = mem1->wrap(dek, kAd);
  ASSERT_TRUE(w);
  EXPECT_EQ(outcome(kek->unwrap(w->bytes, 1, kAd)), "ok");
}

void expect_bad_keyring(const std::filesystem::path& file, const std::string& content,
                        const std::string& expected) {
  write_file(file, content);
  try {
    (void)open_file_kek(file);
    ADD_FAILURE() << "opened: " << expected;
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("KEK file \"" + file.string() + "\""), std::string::npos) << what;
    EXPECT_NE(what.find(expected), std::string::npos) << what;
    // No key text in the message (each key below is at least 16 characters).
    for (const auto& line : lines_of(content)) {
      const auto space = line.find(' ');
      if (space == std::string::npos || line.size() - space < 17) continue;
      EXPECT_EQ(what.find(line.substr(space + 1, 16)), std::string::npos) << what;
    }
  }
}

TEST_F(KeyringTest, ABadKeyringLineIsAClearErrorNamingTheFileAndTheLine) {
  const std::string k1 = base64_encode(key1_.reveal());
  const std::string k2 = base64_encode(SecretBytes::random(32).reveal());
  const std::string id1 = id_of(key1_);
  struct Case {
    std::string content;
    std::string expected;
  };
  const Case cases[] = {
      {"v1 " + k1 + "\nv2 not-base64-at-all!!\n", "line 2: the key of version 2 is not base64"},
      {"v1 " + k1 + "\nv2 " + base64_encode(SecretBytes::random(16).reveal()) + "\n",
       "line 2: the key of version 2 is not base64 text of 32 bytes"},
      {"v0 " + k1 + "\n", "line 1: expected \"v<N> <base64 key>\""},
      {"v01 " + k1 + "\n", "line 1: expected"},
      {"v4294967296 " + k1 + "\n", "line 1: expected"},
      {"key1 " + k1 + "\n", "line 1: expected"},
      {"v1  " + k1 + "\n", "line 1: expected"},
      {"v1 " + k1 + " trailing\n", "line 1: expected"},
      {"v1 " + k1 + "\nv1 " + k2 + "\n", "line 2: version 1 appears twice"},
      {"id " + id1 + "\nid " + id1 + "\nv1 " + k1 + "\n", "line 2: a second \"id\" line"},
      {"id file:00000000\nv1 " + k1 + "\n", "does not match version 1's key"},
      {"v2 " + k2 + "\n", "no version 1 and no \"id\" line"},
      {"id " + id1 + "\n", "no key version"},
      {"\n\n \n", "line 3: expected"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.expected);
    expect_bad_keyring(file(), c.content, c.expected);
  }
}

TEST_F(KeyringTest, RefreshRefusesAnotherKekOrAChangedKeyAndKeepsWorking) {
  write_file(file(), base64_encode(key1_.reveal()) + "\n");
  ASSERT_EQ(rotate_file_kek(file()), 2U);
  const auto kek = open_file_kek(file());
  const std::string keyring = read_file(file());

  // Another KEK altogether.
  write_file(file(), base64_encode(SecretBytes::random(32).reveal()) + "\n");
  try {
    kek->refresh();
    ADD_FAILURE() << "refreshed to another KEK";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("now holds KEK"), std::string::npos) << e.what();
  }
  // Version 2's key replaced.
  auto lines = lines_of(keyring);
  lines[2] = "v2 " + base64_encode(SecretBytes::random(32).reveal());
  write_file(file(), lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n");
  try {
    kek->refresh();
    ADD_FAILURE() << "refreshed to a changed key";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("the key of version 2 changed"), std::string::npos)
        << e.what();
  }
  // A file that cannot be read.
  std::filesystem::remove(file());
  EXPECT_THROW(kek->refresh(), std::runtime_error);
  // Through all of it the Kek kept what it had.
  EXPECT_EQ(kek->versions(), (Versions{1, 2}));
  expect_round_trip(*kek, *kek, 2);
}

TEST_F(KeyringTest, WrapsAndUnwrapsRaceARotationAndRefreshes) {
  write_file(file(), base64_encode(key1_.reveal()) + "\n");
  const auto kek = open_file_kek(file());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int> round_trips{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        const SecretBytes dek = SecretBytes::random(32);
        auto w = kek->wrap(dek, kAd);
        if (!w) {
          ++failures;
          continue;
        }
        auto back = kek->unwrap(w->bytes, w->version, kAd);
        if (!back || !back->equals(dek.reveal())) {
          ++failures;
        } else {
          ++round_trips;
        }
      }
    });
  }
  // EXPECT, not ASSERT: returning with the threads running would terminate.
  for (std::uint32_t v = 2; v <= 6; ++v) {
    EXPECT_EQ(rotate_file_kek(file()), v);
    kek->refresh();
    EXPECT_EQ(kek->version(), v);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Round trips after the last refresh too (a loaded machine may have run
  // none meanwhile: wait for one, up to 10 s).
  const int before_stop = round_trips.load();
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (round_trips.load() == before_stop && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(round_trips.load(), before_stop) << "no wrap/unwrap ran after the last refresh";
}

}  // namespace
}  // namespace hookvault
