// Faults: the store on a full filesystem, on a filesystem
// turned read-only, or locked by another process, and key files that cannot
// be read at a reload. The real daemon over real TLS on loopback, real SQLite
// files on real filesystems (a tmpfs, an ext4 image on a loop device, mounted
// for the test), a real second process (the sqlite3 shell) holding the
// database's write lock.
//
// What each store fault must show (README.md, "Behind a load balancer", store faults):
// - every delivery the store cannot commit answers 503 {"error":
//   "store_unavailable"} with Retry-After, and nothing is acknowledged that
//   is not stored (a 503'd event, sent again later, is "accepted", not a
//   "duplicate": the failed attempt stored nothing);
// - /readyz answers 503 once a write has failed and for as long as writes
//   fail (a repeat of a stored event, answered without a write, does not
//   make it ready), /healthz stays 200, and the log says why;
// - once the fault clears, /readyz returns to 200 without a restart and
//   without traffic (the idle writer's probe), and the same deliveries,
//   retried as a provider would, are stored once;
// - at the end every acknowledged event is stored exactly once, under the id
//   its answer named, and opens to the bytes that were sent; delegations'
//   materials open to what was encrypted; PRAGMA integrity_check is ok.
//
// A full filesystem is noticed by the first write that fails, not while the
// daemon is idle: an idle store writes nothing.
//
// Read-only: Linux refuses `mount -o remount,ro` (EBUSY) while a process
// holds files on the filesystem open for writing, and the daemon always holds
// its database, -wal and -shm files open: an operator cannot make the store
// read-only under a running daemon (checked). The kernel can: ext4 mounted
// with errors=remount-ro turns read-only on the first error it detects (the
// test raises one through ext4's sysfs hook). That fault does not clear
// under a running daemon (ext4 stays read-only until unmounted and checked),
// so the test checks the 503s and readiness, then the operator's way back:
// stop, e2fsck, mount; a daemon started while it is read-only refuses to
// start and says why (the packaged unit restarts it: Restart=on-failure).
//
// Mounts need root (and loop devices for ext4): without them those tests are
// skipped and say so. The process moves into a mount namespace of its own
// first, so a mount left behind by a crash disappears with the process;
// TearDown also unmounts (lazily when busy) on every path.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "raw_db.hpp"

extern char** environ;

namespace hookvault::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kNoditKey[] = "nodit-signing-key-for-the-fault-test";
// The daemon's SQLite busy timeout (src/ops/commands.cpp, kDaemonBusyTimeout).
constexpr auto kBusyTimeout = 5s;

std::string errno_name(int e) { return e == 0 ? "success" : std::strerror(e); }

// Mounts made from here on live in a mount namespace of this process's own
// (the daemon and other children inherit it), so none outlives the process,
// even one that crashed before its TearDown. Best effort: without it the
// fixture still unmounts.
void enter_private_mount_namespace() {
  static const bool entered = [] {
    if (::unshare(CLONE_NEWNS) != 0) return false;
    // Nothing mounted here may propagate back to the parent namespace.
    return ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
  }();
  static_cast<void>(entered);
}

// Runs `argv` (the program found on PATH) with stdin from /dev/null and its
// output appended to `log`; its exit code, or -1 when it did not run or exit.
int run_command(const std::vector<std::string>& argv, const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<std::string> args = argv;
  std::vector<char*> raw;
  for (auto& a : args) raw.push_back(a.data());
  raw.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, raw[0], &actions, nullptr, raw.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// A filesystem mounted on a folder for the test: a tmpfs of a fixed size, or
// an ext4 image file on a loop device. Unmounted when it goes (lazily when
// something still holds it).
class ScratchMount {
 public:
  explicit ScratchMount(fs::path dir) : dir_(std::move(dir)) {
    enter_private_mount_namespace();
    fs::create_directories(dir_);
  }
  ~ScratchMount() { unmount(); }
  ScratchMount(const ScratchMount&) = delete;
  ScratchMount& operator=(const ScratchMount&) = delete;

  const fs::path& dir() const { return dir_; }

  // mount -t tmpfs -o size=BYTES,mode=0700: 0, or the errno of mount(2).
  int mount_tmpfs(std::size_t bytes) {
    const std::string options = "size=" + std::to_string(bytes) + ",mode=0700";
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
      return errno;
    }
    mounted_ = true;
    return 0;
  }

  // mount -o loop,errors=remount-ro IMAGE: the kernel turns the filesystem
  // read-only itself on the first error it detects. True when mounted; the
  // mount command's output is in `log`.
  bool mount_ext4(const fs::path& image, const fs::path& log) {
    mounted_ = run_command({"mount", "-t", "ext4", "-o", "loop,nosuid,nodev,errors=remount-ro",
                            image, dir_},
                           log) == 0;
    return mounted_;
  }

  // mount -o remount,ro (or rw): 0, or the errno of mount(2).
  int remount(bool read_only) const {
    const unsigned long flags = MS_REMOUNT | MS_NOSUID | MS_NODEV | (read_only ? MS_RDONLY : 0);
    return ::mount(nullptr, dir_.c_str(), nullptr, flags, nullptr) == 0 ? 0 : errno;
  }

  // The mounted device ("/dev/loop3"), from this process's mount table.
  std::string source() const {
    std::istringstream table(read_file("/proc/self/mountinfo"));
    std::string found;
    for (std::string line; std::getline(table, line);) {
      // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTIONS
      std::istringstream fields(line);
      std::string id, parent, dev, root, point, word;
      fields >> id >> parent >> dev >> root >> point;
      while (fields >> word && word != "-") {
      }
      std::string type, source;
      fields >> type >> source;
      if (point == dir_.string()) found = source;  // the last one is on top
    }
    return found;
  }

  // Unmounts; lazily (MNT_DETACH) when something still holds it.
  void unmount() {
    if (!mounted_) return;
    mounted_ = false;
    if (::umount2(dir_.c_str(), 0) == 0) return;
    ADD_FAILURE() << "umount " << dir_ << ": " << errno_name(errno) << "; detaching it lazily";
    ::umount2(dir_.c_str(), MNT_DETACH);
  }

 private:
  fs::path dir_;
  bool mounted_ = false;
};

// Writes `file` in page-sized blocks until the filesystem refuses a block;
// the errno that stopped it (ENOSPC when the filesystem is full).
int fill_until_refused(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  const std::string block(4096, 'F');
  int error = 0;
  while (error == 0) {
    const ssize_t n = ::write(fd, block.data(), block.size());
    if (n < 0 && errno != EINTR) error = errno;
  }
  ::close(fd);
  return error;
}

// 0 when one byte could be written to a new file in `dir` (and synced), else
// the errno of the first step that failed. The file is removed.
int try_write_one_byte(const fs::path& dir) {
  const fs::path file = dir / "one-more-byte";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  int error = 0;
  if (::write(fd, "x", 1) != 1 || ::fsync(fd) != 0) error = errno;
  ::close(fd);
  ::unlink(file.c_str());
  return error;
}

// The sqlite3 shell as a separate process holding `BEGIN EXCLUSIVE` on a
// database (in WAL mode: the write lock; readers go on) until release().
class LockHolder {
 public:
  explicit LockHolder(const fs::path& db, const fs::path& log) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::string program = "sqlite3";
    std::string batch = "-batch";
    std::string path = db.string();
    char* argv[] = {program.data(), batch.data(), path.data(), nullptr};
    const int rc = posix_spawnp(&pid_, "sqlite3", &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[0]);
    stdin_ = fds[1];
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error("cannot run the sqlite3 shell (scripts/install-deps installs it): " +
                               errno_name(rc));
    }
    say("PRAGMA busy_timeout = 10000;\nBEGIN EXCLUSIVE;\n");
  }
  ~LockHolder() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdin_ >= 0) ::close(stdin_);
  }
  LockHolder(const LockHolder&) = delete;
  LockHolder& operator=(const LockHolder&) = delete;

  // Ends the shell's input (it rolls back and exits) and waits for it: the
  // lock is gone then. Its exit status.
  int release() {
    ::close(stdin_);
    stdin_ = -1;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  void say(const std::string& text) const {
    ASSERT_EQ(::write(stdin_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }

  pid_t pid_ = -1;
  int stdin_ = -1;
};

// True when another connection holds the write lock of `db`: a write
// transaction cannot start at once.
bool write_locked(const fs::path& db) {
  sqlite3* h = nullptr;
  bool locked = false;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    const int rc = sqlite3_exec(h, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    locked = rc == SQLITE_BUSY;
    if (rc == SQLITE_OK) sqlite3_exec(h, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  sqlite3_close(h);
  return locked;
}

class FaultTest : public E2E {
 protected:
  // A delivery as sent: where, the exact bytes, and the event id its answer names.
  struct Sent {
    std::string path;
    std::string body;
    std::string key;
  };
  struct Acked {
    std::int64_t id = 0;
    std::string body;
  };

  void TearDown() override {
    client_.reset();
    daemon_.reset();  // SIGTERM and wait: nothing holds the mount after this
    if (mount_) mount_->unmount();
  }

  fs::path data_dir() const { return dir_.path() / "data"; }
  fs::path db_path() const { return data_dir() / "hookvault.db"; }

  // A 4 MiB tmpfs on the store's folder; false when mounting is not permitted
  // here (the caller skips), a failure for any other error.
  bool mount_data_tmpfs() {
    mount_ = std::make_unique<ScratchMount>(data_dir());
    const int error = mount_->mount_tmpfs(4U << 20U);
    if (error == EPERM) return false;
    EXPECT_EQ(error, 0) << "mount tmpfs: " << errno_name(error);
    return error == 0;
  }

  fs::path config_with_nodit() {
    ConfigOptions o;
    add_nodit_source(o, kNoditKey);
    return write_config(o);
  }

  Sent nodit(const std::string& sub, std::uint64_t seq) {
    return Sent{"/webhooks/nodit", nodit_message(sub, seq), sub + ":" + std::to_string(seq)};
  }
  Sent ping() {
    const std::string id = uuid();
    return Sent{"/webhooks/dynamic", ping_event(id), id};
  }
  Sent delegation() {
    const Delegation d = random_delegation();
    delegations_[d.event_id] = d;
    return Sent{"/webhooks/dynamic", compact(created_event(d, setup().rsa_public_pem)), d.event_id};
  }

  HttpResponse send(HttpsClient& c, const Sent& s) {
    if (s.path == "/webhooks/nodit") return post_nodit(c, kNoditKey, s.body);
    return c.request(
        "POST", s.path,
        {{"Content-Type", "application/json"}, {"x-dynamic-signature-256", sign(s.body)}}, s.body);
  }
  HttpResponse send(const Sent& s) { return send(client(), s); }

  // `r`, the answer to `s`, is 200 with `status`; the acknowledgement is recorded.
  void expect_stored(const Sent& s, const HttpResponse& r, const std::string& status) {
    ASSERT_EQ(r.status, 200U) << s.key << ": " << r.body;
    const Json answer = Json::parse(r.body);
    EXPECT_EQ(answer["status"], status) << s.key << ": " << r.body;
    EXPECT_EQ(answer["eventId"], s.key) << r.body;
    if (delegations_.count(s.key) != 0) {
      EXPECT_EQ(answer["materials"], "stored") << r.body;
    }
    const std::int64_t id = std::stoll(answer["id"].get<std::string>());
    auto [it, first] = acked_.emplace(s.key, Acked{id, s.body});
    if (!first) {
      EXPECT_EQ(it->second.id, id) << s.key << ": another id than before";
    }
  }
  void expect_stored(const Sent& s, const std::string& status = "accepted") {
    expect_stored(s, send(s), status);
  }

  // `r` is the documented answer of a store that cannot commit.
  static void expect_unavailable(const Sent& s, const HttpResponse& r) {
    EXPECT_EQ(r.status, 503U) << s.key << ": " << r.body;
    EXPECT_EQ(r.body, R"({"error":"store_unavailable"})") << s.key;
    const auto retry = r.headers.find("retry-after");
    EXPECT_TRUE(retry != r.headers.end() && retry->second == "5") << s.key;
  }
  void expect_unavailable(const Sent& s) { expect_unavailable(s, send(s)); }

  unsigned get(const std::string& target) { return client().request("GET", target).status; }

  // The "error" of the daemon's last "reload failed" log line ("" when none).
  std::string last_reload_failure() const {
    std::string why;
    std::istringstream lines(daemon_->log());
    for (std::string line; std::getline(lines, line);) {
      const Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() &&
          j.value("msg", "") == "reload failed; keeping the running configuration") {
        why = j.value("error", "");
      }
    }
    return why;
  }

  // /readyz does not answer 200 during `window`, polled throughout: the idle
  // writer's probes (one a second) keep failing. A window, not a deadline:
  // a slow run only makes it check fewer probes.
  void expect_not_ready_during(Clock::duration window) {
    const auto until = Clock::now() + window;
    int polls = 0;
    while (Clock::now() < until) {
      ASSERT_EQ(get("/readyz"), 503U) << "ready again while the fault persists, poll " << polls;
      ++polls;
      std::this_thread::sleep_for(100ms);
    }
  }

  // The daemon stopped cleanly; every acknowledged event stored exactly once,
  // under the id its answer named, opening to the bytes that were sent;
  // nothing else stored; delegations' materials as encrypted; the file intact.
  void expect_store_holds_exactly_what_was_acknowledged() {
    client_.reset();
    ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();
    SqliteStoreOptions options;
    options.path = db_path();
    auto store = open_sqlite_store(options, open_file_kek(setup().root / "keys/kek.key"));
    ASSERT_TRUE(store) << store.error().message();
    std::string error;
    const auto stored = open_all_events(**store, error);
    ASSERT_TRUE(error.empty()) << error;
    EXPECT_EQ(stored.size(), acked_.size());
    for (const auto& [key, acked] : acked_) {
      auto it = stored.find(key);
      if (it == stored.end()) {
        ADD_FAILURE() << "acknowledged but not stored: " << key;
        continue;
      }
      EXPECT_EQ(it->second.id, acked.id) << key;
      EXPECT_EQ(it->second.payload, acked.body) << key;
    }
    for (const auto& [key, event] : stored) {
      EXPECT_EQ(acked_.count(key), 1U) << "stored but never acknowledged: " << key;
    }
    for (const auto& [event_id, d] : delegations_) {
      if (acked_.count(event_id) == 0) continue;
      auto m = (*store)->materials("dynamic", d.wallet_id);
      ASSERT_TRUE(m) << m.error().message();
      ASSERT_TRUE(m->has_value()) << d.wallet_id;
      EXPECT_EQ((**m).share.reveal_string(), d.share);
      EXPECT_EQ((**m).api_key.reveal_string(), d.api_key);
    }
    store->reset();
    RawDb db(options.path, RawDb::Mode::read_only);
    EXPECT_EQ(db.text("PRAGMA integrity_check"), "ok");
  }

  std::unique_ptr<ScratchMount> mount_;
  std::map<std::string, Acked> acked_;
  std::map<std::string, Delegation> delegations_;
};

TEST_F(FaultTest, FullFilesystemAnswers503AndResumesWhenSpaceIsFreed) {
  if (!mount_data_tmpfs()) GTEST_SKIP() << "mount(2) is not permitted here (needs root)";
  start(config_with_nodit());
  const Sent acked_nodit = nodit("701", 1);
  for (const Sent& s : {acked_nodit, nodit("701", 2), ping(), delegation()}) expect_stored(s);
  ASSERT_FALSE(HasFailure());

  // Fill the filesystem: a block refused with ENOSPC, and then not one more
  // byte fits anywhere on it (no space the daemon's files could still grow into).
  const fs::path filler = data_dir() / "filler";
  ASSERT_EQ(fill_until_refused(filler), ENOSPC);
  ASSERT_EQ(try_write_one_byte(data_dir()), ENOSPC);
  struct statvfs st {};
  ASSERT_EQ(::statvfs(data_dir().c_str(), &st), 0);
  ASSERT_EQ(st.f_bavail, 0U);
  // Idle, the daemon writes nothing, so it cannot know yet (not asserted).
  std::cout << "[ full     ] /readyz on the full filesystem before any write: " << get("/readyz")
            << "\n";

  // Each delivery that needs a write is refused, and stores nothing.
  const std::vector<Sent> refused = {nodit("701", 3), ping(), delegation()};
  for (const Sent& s : refused) expect_unavailable(s);
  EXPECT_EQ(get("/readyz"), 503U);
  EXPECT_EQ(get("/healthz"), 200U);
  EXPECT_TRUE(daemon_->wait_for_log("database or disk is full", 1)) << daemon_->log();

  // A repeat of an event stored before is answered from the store, which
  // writes nothing; that proves nothing about the disk, so not ready still.
  expect_stored(acked_nodit, "duplicate");
  EXPECT_EQ(get("/readyz"), 503U) << "a commit that wrote nothing made the store look writable";
  expect_not_ready_during(2500ms);
  expect_unavailable(refused.front());

  // Space again: ready without a restart and without a delivery, and the
  // provider's retries are stored (accepted, so the 503s stored nothing).
  ASSERT_TRUE(fs::remove(filler));
  ASSERT_TRUE(eventually([&] { return get("/readyz") == 200; })) << daemon_->log();
  EXPECT_TRUE(daemon_->wait_for_log("store writable again", 1)) << daemon_->log();
  for (const Sent& s : refused) expect_stored(s);
  expect_stored(nodit("701", 4));
  expect_stored(refused.front(), "duplicate");
  expect_store_holds_exactly_what_was_acknowledged();
}

TEST_F(FaultTest, FilesystemTurnedReadOnlyAnswers503AndLosesNothingAcknowledged) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a loop device needs root";
  if (!fs::exists("/dev/loop-control")) GTEST_SKIP() << "no loop devices here (/dev/loop-control)";
  const fs::path image = dir_.path() / "ext4.img";
  const fs::path tools_log = dir_.path() / "tools.log";
  {
    std::ofstream(image).close();
    fs::resize_file(image, 32U << 20U);
  }
  ASSERT_EQ(run_command({"mkfs.ext4", "-q", "-F", image}, tools_log), 0) << read_file(tools_log);
  mount_ = std::make_unique<ScratchMount>(data_dir());
  ASSERT_TRUE(mount_->mount_ext4(image, tools_log)) << read_file(tools_log);
  ASSERT_EQ(::chmod(data_dir().c_str(), 0700), 0);
  const fs::path trigger =
      fs::path("/sys/fs/ext4") / fs::path(mount_->source()).filename() / "trigger_fs_error";
  if (!fs::exists(trigger)) GTEST_SKIP() << "this kernel has no " << trigger;
  const fs::path config = config_with_nodit();
  start(config);
  const Sent acked_nodit = nodit("702", 1);
  for (const Sent& s : {acked_nodit, ping(), delegation()}) expect_stored(s);

  // An operator cannot make it read-only under the daemon: the kernel
  // refuses while the database is open for writing, and nothing changes.
  EXPECT_EQ(mount_->remount(true), EBUSY);
  expect_stored(nodit("702", 2));
  EXPECT_EQ(get("/readyz"), 200U);

  // The kernel can: an error ext4 detects (here raised through its sysfs
  // test hook) makes it read-only at once, open files included.
  write_file(trigger, "hookvault fault test");
  ASSERT_EQ(try_write_one_byte(data_dir()), EROFS);

  const std::vector<Sent> refused = {nodit("702", 3), ping(), delegation()};
  for (const Sent& s : refused) expect_unavailable(s);
  EXPECT_EQ(get("/readyz"), 503U);
  EXPECT_EQ(get("/healthz"), 200U);
  // SQLite reports a write the kernel refused with EROFS as an I/O error.
  EXPECT_TRUE(daemon_->wait_for_log("\"error\":\"disk I/O error\"", 1)) << daemon_->log();
  expect_stored(acked_nodit, "duplicate");  // reads still work
  expect_not_ready_during(2500ms);

  // This fault does not clear under a running daemon: ext4 stays read-only
  // until it is unmounted and checked (a remount "succeeds" and changes
  // nothing). The operator's way out: stop, check, mount, start. A daemon
  // started while the filesystem is still read-only refuses to start and
  // says why.
  static_cast<void>(mount_->remount(false));
  EXPECT_EQ(try_write_one_byte(data_dir()), EROFS);
  client_.reset();
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
  mount_->unmount();
  const int fsck = run_command({"e2fsck", "-f", "-y", image}, tools_log);
  ASSERT_TRUE(fsck == 0 || fsck == 1) << "e2fsck exit " << fsck << ": " << read_file(tools_log);
  ASSERT_TRUE(mount_->mount_ext4(image, tools_log)) << read_file(tools_log);
  ASSERT_EQ(mount_->remount(true), 0);
  const auto refused_start = run_hookvault({"serve", "--config", config.string()});
  EXPECT_EQ(refused_start.exit_code, 1);
  EXPECT_NE(refused_start.err.find("refusing to start"), std::string::npos) << refused_start.err;
  EXPECT_NE(refused_start.err.find(db_path().string() + " is not writable"), std::string::npos)
      << refused_start.err;

  // Writable again: everything acknowledged is there, the retries are stored.
  ASSERT_EQ(mount_->remount(false), 0);
  start(config);
  EXPECT_EQ(get("/readyz"), 200U);
  for (const Sent& s : refused) expect_stored(s);
  expect_stored(acked_nodit, "duplicate");
  expect_store_holds_exactly_what_was_acknowledged();
}

TEST_F(FaultTest, DatabaseLockedByAnotherProcessAnswers503InBoundedTimeAndResumes) {
  start(config_with_nodit());
  for (const Sent& s : {nodit("703", 1), ping()}) expect_stored(s);

  LockHolder lock(db_path(), dir_.path() / "sqlite3.log");
  ASSERT_TRUE(eventually([&] { return write_locked(db_path()); }))
      << read_file(dir_ / "sqlite3.log");

  // Three deliveries at once, each on its own connection: refused once the
  // busy timeout has passed, none kept much longer (a request waits for the
  // lock at most the busy timeout in all, also when queued behind a batch
  // that was already waiting).
  const std::vector<Sent> refused = {nodit("703", 2), ping(), delegation()};
  std::vector<std::future<std::pair<HttpResponse, Clock::duration>>> answers;
  for (const Sent& s : refused) {
    answers.push_back(std::async(std::launch::async, [this, s] {
      HttpsClient c(daemon_->port(), setup().root / "tls/cert.pem");
      const auto started = Clock::now();
      HttpResponse r = send(c, s);
      return std::make_pair(std::move(r), Clock::now() - started);
    }));
  }
  Clock::duration slowest{};
  for (std::size_t i = 0; i < refused.size(); ++i) {
    auto [r, took] = answers[i].get();
    expect_unavailable(refused[i], r);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
    std::cout << "[ locked   ] " << refused[i].key << ": 503 after " << ms << " ms\n";
    EXPECT_LT(took, kBusyTimeout + 2s) << refused[i].key;
    slowest = std::max(slowest, took);
  }
  EXPECT_GE(slowest, kBusyTimeout - 100ms) << "refused before the busy timeout";
  EXPECT_EQ(get("/readyz"), 503U);
  EXPECT_EQ(get("/healthz"), 200U);
  EXPECT_TRUE(daemon_->wait_for_log("database is locked", 1)) << daemon_->log();

  // The lock released: ready without a delivery, then the retries are stored.
  ASSERT_EQ(lock.release(), 0) << read_file(dir_ / "sqlite3.log");
  ASSERT_TRUE(eventually([&] { return get("/readyz") == 200; })) << daemon_->log();
  for (const Sent& s : refused) expect_stored(s);
  expect_stored(nodit("703", 3));
  expect_store_holds_exactly_what_was_acknowledged();
}

// --- Key files that cannot be read at a reload --------------------------------

// The ways a key file can be unreadable to root (file modes do not stop root).
struct Unreadable {
  const char* name;
  const char* reason;  // the error the log must give
  std::function<void(const fs::path&)> make;
};

const std::vector<Unreadable>& unreadable_kinds() {
  static const std::vector<Unreadable> kinds = {
      {"missing", "No such file or directory", [](const fs::path&) {}},
      {"a directory", "not a regular file",
       [](const fs::path& p) { ASSERT_EQ(::mkdir(p.c_str(), 0700), 0); }},
      {"a dangling symlink", "No such file or directory",
       [](const fs::path& p) { fs::create_symlink(p.string() + ".gone", p); }},
      {"a symlink loop", "Too many levels of symbolic links",
       [](const fs::path& p) { fs::create_symlink(p.filename(), p); }},
      // Opening a FIFO nobody writes to must not hang the reload.
      {"a FIFO", "not a regular file",
       [](const fs::path& p) { ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0); }},
  };
  return kinds;
}

TEST_F(FaultTest, UnreadableKeyFilesAtReloadKeepTheOldKeysAndSayWhy) {
  // A private copy of the init setup's keys, so they can be broken.
  const fs::path keys = dir_.path() / "keys";
  fs::copy(setup().root, keys, fs::copy_options::recursive);
  std::string text = read_file(config_with_nodit());
  for (std::size_t at; (at = text.find(setup().root.string())) != std::string::npos;) {
    text.replace(at, setup().root.string().size(), keys.string());
  }
  write_file(config_, text, 0600);
  start(config_);

  // Every key file a SIGHUP reads (TLS files are checked, not reloaded, and a
  // reload goes ahead only when all are readable).
  std::vector<std::pair<std::string, fs::path>> files = {
      {"dynamic webhook secret", keys / "secrets/dynamic_webhook_secret"},
      {"nodit signing key", dir_.path() / "nodit_key"},
      {"RSA private key", keys / "keys/dynamic_rsa.pem"},
      {"TLS certificate", keys / "tls/cert.pem"},
      {"TLS private key", keys / "tls/key.pem"},
  };
  if (text.find("keys/kek.key") != std::string::npos) {
    files.emplace_back("KEK file", keys / "keys/kek.key");
  }
  // What must never reach the log: every secret's bytes.
  std::vector<std::string> secrets = {setup().dynamic_secret, kNoditKey};
  for (const char* file : {"keys/dynamic_rsa.pem", "tls/key.pem", "keys/kek.key"}) {
    std::istringstream lines(read_file(keys / file));
    for (std::string line; std::getline(lines, line);) {
      if (line.size() >= 16 && line.rfind("-----", 0) != 0) {
        secrets.push_back(
            line.substr(line.find(' ') == std::string::npos ? 0 : line.find(' ') + 1));
      }
    }
  }

  // The old keys serve: a ping signed with the Dynamic secret, a Nodit
  // message signed with Nodit's key, a delegation encrypted to the RSA key.
  std::uint64_t seq = 0;
  const auto old_keys_serve = [&] {
    expect_stored(ping());
    expect_stored(nodit("704", ++seq));
    expect_stored(delegation());
    EXPECT_EQ(get("/readyz"), 200U);
  };
  old_keys_serve();

  std::size_t failed_reloads = 0;
  for (const auto& [what, file] : files) {
    for (const Unreadable& kind : unreadable_kinds()) {
      SCOPED_TRACE(what + " " + file.string() + " is " + kind.name);
      const fs::path saved = file.string() + ".saved";
      fs::rename(file, saved);
      kind.make(file);

      daemon_->hangup();
      ASSERT_TRUE(daemon_->wait_for_log("reload failed; keeping the running configuration",
                                        ++failed_reloads))
          << daemon_->log();
      const std::string why = last_reload_failure();
      EXPECT_NE(why.find(file.string()), std::string::npos) << why;
      EXPECT_NE(why.find(kind.reason), std::string::npos) << why;
      old_keys_serve();

      fs::remove(file);
      fs::rename(saved, file);
    }
  }
  // Everything readable again: the next reload succeeds.
  daemon_->hangup();
  ASSERT_TRUE(daemon_->wait_for_log("\"msg\":\"reloaded\"", 1)) << daemon_->log();
  old_keys_serve();

  const std::string log = daemon_->log();
  for (const std::string& secret : secrets) {
    EXPECT_EQ(log.find(secret), std::string::npos) << "a secret's bytes are in the log";
  }
  expect_store_holds_exactly_what_was_acknowledged();
}

}  // namespace
}  // namespace hookvault::testing
