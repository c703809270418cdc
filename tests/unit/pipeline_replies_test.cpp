// The Pipeline's replies (include/hookvault/pipeline.hpp) without a socket:
// real signed deliveries and real RSA-OAEP + AES-GCM envelopes, a real
// WorkPool, and the in-memory FakeStore (support/fake_store.hpp) whose knobs
// make the store fail, hold its completions or throw. Every test ends by
// checking that each request was answered exactly once, after the pool
// stopped and the store closed (nothing can answer later).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fake_store.hpp"
#include "handler_support.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/work_pool.hpp"
#include "test_support.hpp"

namespace hookvault::testing {
namespace {

class PipelineReplies : public ::testing::Test {
 protected:
  void SetUp() override { start(/*pool_queue=*/64); }

  void TearDown() override {
    pool_->stop();
    store_.close();
    answers_.expect_each_answered_once();
  }

  // A pipeline over the dynamic and nodit sources, with a pool of two
  // threads that queues at most `pool_queue` jobs.
  void start(std::size_t pool_queue) {
    if (pool_) pool_->stop();
    pipeline_.reset();
    pool_ = std::make_unique<WorkPool>(2, pool_queue, &metrics_);
    dynamic_ = make_source(Provider::dynamic, rsa_.private_pem);
    pipeline_ = std::make_unique<Pipeline>(
        std::vector<std::shared_ptr<const Source>>{dynamic_, make_source(Provider::nodit)}, store_,
        *pool_, metrics_);
  }

  // Hands `request` to the pipeline; its index in answers_.
  std::size_t send(const Request& request) {
    std::size_t index = 0;
    auto done = answers_.next(index);
    pipeline_->handle(request.delivery(), std::move(done));
    return index;
  }
  Reply deliver(const Request& request) { return answers_.wait(send(request)).value_or(Reply{}); }

  double metric(const std::string& sample) { return metric_sample(metrics_.render(), sample); }

  std::string stored_payload(const std::string& event_id) {
    auto id = store_.find_event("dynamic", event_id);
    if (!id || !*id) return "<not stored>";
    auto payload = store_.event_payload(**id);
    return payload && *payload ? std::string((*payload)->reveal_string()) : "<none>";
  }

  const RsaPair& rsa_ = shared_rsa(2048);
  Answers answers_;
  Metrics metrics_;
  FakeStore store_;
  std::unique_ptr<WorkPool> pool_;
  std::shared_ptr<const Source> dynamic_;
  std::unique_ptr<Pipeline> pipeline_;
};

TEST_F(PipelineReplies, AnEventIsAccepted200WithItsRowIdOnceStored) {
  const std::string body = dynamic_event("e-1", "user.created");
  const Reply r = deliver(signed_request(Provider::dynamic, body));
  EXPECT_EQ(r.status, 200U);
  EXPECT_EQ(member(r, "status"), "accepted");
  EXPECT_EQ(member(r, "eventId"), "e-1");
  EXPECT_EQ(r.body.find("materials"), std::string::npos) << "only a delegation's reply says";
  auto id = store_.find_event("dynamic", "e-1");
  ASSERT_TRUE(id && *id);
  EXPECT_EQ(member(r, "id"), std::to_string(**id));
  EXPECT_EQ(stored_payload("e-1"), body);  // the signed bytes, as received
  EXPECT_EQ(r.source, "dynamic");
  EXPECT_EQ(r.event_name, "user.created");
  EXPECT_EQ(r.event_id, "e-1");
  EXPECT_EQ(metric(R"(hookvault_events_stored_total{source="dynamic",event="user.created"})"), 1);
  EXPECT_EQ(store_.calls().submits, 1U);
}

TEST_F(PipelineReplies, ADelegationIsAnsweredOnlyAfterTheStoreCompletedIt) {
  store_.hold_completions();
  const std::size_t i = send(signed_request(
      Provider::dynamic, delegation("d-1", "w-1", rsa_.public_pem, "share-1", "api-key-1")));
  // Decrypted on the pool and submitted; the store has not answered yet.
  ASSERT_TRUE(store_.wait_held(1));
  EXPECT_EQ(answers_.count(i), 0U) << "answered before the store's completion";
  store_.release_completions();
  const auto r = answers_.wait(i);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200U);
  EXPECT_EQ(member(*r, "status"), "accepted");
  EXPECT_EQ(member(*r, "materials"), "stored");
  auto m = store_.materials("dynamic", "w-1");
  ASSERT_TRUE(m && *m);
  EXPECT_EQ((*m)->share.reveal_string(), "share-1");
  EXPECT_EQ((*m)->api_key.reveal_string(), "api-key-1");
  EXPECT_EQ((*m)->user_id, "user-w-1");
  EXPECT_EQ((*m)->event_id, "d-1");
}

TEST_F(PipelineReplies, ADuplicateIsAnswered200DuplicateWithTheFirstRowIdAndCounted) {
  const Request event = signed_request(Provider::dynamic, dynamic_event("e-1", "user.created"));
  const Reply first = deliver(event);
  const Reply again = deliver(event);
  EXPECT_EQ(again.status, 200U);
  EXPECT_EQ(member(again, "status"), "duplicate");
  EXPECT_EQ(member(again, "id"), member(first, "id"));
  EXPECT_EQ(metric(R"(hookvault_duplicates_total{source="dynamic"})"), 1);
  EXPECT_EQ(metric(R"(hookvault_events_stored_total{source="dynamic",event="user.created"})"), 1);

  // A delegation already stored is not decrypted again: no RSA work.
  const Request d = signed_request(
      Provider::dynamic, delegation("d-1", "w-1", rsa_.public_pem, "share-1", "api-key-1"));
  const Reply stored = deliver(d);
  ASSERT_EQ(member(stored, "materials"), "stored");
  const auto rsa_before = dynamic_->decryptor->rsa_operations();
  const Reply dup = deliver(d);
  EXPECT_EQ(member(dup, "status"), "duplicate");
  EXPECT_EQ(member(dup, "materials"), "stored");
  EXPECT_EQ(member(dup, "id"), member(stored, "id"));
  EXPECT_EQ(dynamic_->decryptor->rsa_operations(), rsa_before);
  EXPECT_EQ(metric(R"(hookvault_duplicates_total{source="dynamic"})"), 2);
}

TEST_F(PipelineReplies, AStoreFailureIs503StoreUnavailableWithRetryAfterAndLosesNothing) {
  // Whatever the store's error, the provider is told to retry.
  for (const Errc e : {Errc::store_unavailable, Errc::overloaded, Errc::kek_unavailable}) {
    SCOPED_TRACE(error_name(e));
    store_.fail_next_submits(1, e);
    const Reply r =
        deliver(signed_request(Provider::dynamic, dynamic_event("e-1", "user.created")));
    EXPECT_EQ(r.status, 503U);
    EXPECT_EQ(member(r, "error"), "store_unavailable");
    EXPECT_GT(r.retry_after_s, 0U);
    auto id = store_.find_event("dynamic", "e-1");
    ASSERT_TRUE(id);
    EXPECT_FALSE(*id) << "stored although the write failed";
  }
  // The provider's retry is stored.
  const Reply retry =
      deliver(signed_request(Provider::dynamic, dynamic_event("e-1", "user.created")));
  EXPECT_EQ(retry.status, 200U);
  EXPECT_EQ(member(retry, "status"), "accepted");

  // A delegation that fails to store keeps nothing either.
  store_.fail_next_submits(1, Errc::store_unavailable);
  const Reply d = deliver(signed_request(
      Provider::dynamic, delegation("d-1", "w-1", rsa_.public_pem, "share-1", "api-key-1")));
  EXPECT_EQ(d.status, 503U);
  EXPECT_EQ(member(d, "error"), "store_unavailable");
  auto m = store_.materials("dynamic", "w-1");
  ASSERT_TRUE(m);
  EXPECT_FALSE(*m);
}

TEST_F(PipelineReplies, AFullPoolIs503OverloadedWithRetryAfterAndNothingIsStored) {
  start(/*pool_queue=*/0);  // every try_post is refused
  const Reply r = deliver(signed_request(
      Provider::dynamic, delegation("d-1", "w-1", rsa_.public_pem, "share-1", "api-key-1")));
  EXPECT_EQ(r.status, 503U);
  EXPECT_EQ(member(r, "error"), "overloaded");
  EXPECT_GT(r.retry_after_s, 0U);
  EXPECT_EQ(r.event_id, "d-1");
  EXPECT_EQ(metric(R"(hookvault_overloaded_total{source="dynamic"})"), 1);
  EXPECT_EQ(store_.calls().submits, 0U);
  EXPECT_EQ(dynamic_->decryptor->rsa_operations(), 0U);
  // An event that needs no decryption does not need the pool.
  const Reply plain =
      deliver(signed_request(Provider::dynamic, dynamic_event("e-1", "user.created")));
  EXPECT_EQ(plain.status, 200U);
}

TEST_F(PipelineReplies, AFullPoolWhileItsThreadsAreBusyIs503Overloaded) {
  start(/*pool_queue=*/1);
  // Both threads held by jobs of the test's, and the one queue place taken.
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    int running = 0;
    void hold() {
      std::unique_lock lock(mu);
      ++running;
      cv.notify_all();
      cv.wait(lock, [&] { return open; });
    }
    bool wait_running(int n) {
      std::unique_lock lock(mu);
      return cv.wait_for(lock, std::chrono::seconds(10), [&] { return running == n; });
    }
    void release() {
      {
        std::lock_guard lock(mu);
        open = true;
      }
      cv.notify_all();
    }
  };
  auto gate = std::make_shared<Gate>();
  // Never leaves the pool's threads waiting, even when an assertion failed.
  const std::unique_ptr<Gate, void (*)(Gate*)> release(gate.get(), [](Gate* g) { g->release(); });
  for (int n = 1; n <= 2; ++n) {
    ASSERT_TRUE(pool_->try_post([gate] { gate->hold(); }));
    ASSERT_TRUE(gate->wait_running(n));
  }
  ASSERT_TRUE(pool_->try_post([] {}));
  const Reply r = deliver(signed_request(
      Provider::dynamic, delegation("d-1", "w-1", rsa_.public_pem, "share-1", "api-key-1")));
  EXPECT_EQ(r.status, 503U);
  EXPECT_EQ(member(r, "error"), "overloaded");
  gate->release();
  // Once the pool has room, the retry is stored.
  pool_->stop();
  start(/*pool_queue=*/64);
  const Reply retry = deliver(signed_request(
      Provider::dynamic, delegation("d-1", "w-1", rsa_.public_pem, "share-1", "api-key-1")));
  EXPECT_EQ(member(retry, "materials"), "stored");
}

TEST_F(PipelineReplies, ADelegationThatDoesNotDecryptIsStoredDecryptFailedAndAnswered200) {
  // Encrypted to a key this host does not have.
  const RsaPair other = generate_rsa(2048);
  const Reply r = deliver(signed_request(
      Provider::dynamic, delegation("d-1", "w-1", other.public_pem, "share-1", "api-key-1")));
  EXPECT_EQ(r.status, 200U);
  EXPECT_EQ(member(r, "status"), "accepted");
  EXPECT_EQ(member(r, "materials"), "decrypt_failed");
  EXPECT_EQ(metric(R"(hookvault_decrypt_failures_total{source="dynamic"})"), 1);
  auto failures = store_.decrypt_failures();
  ASSERT_TRUE(failures);
  ASSERT_EQ(failures->size(), 1U);
  EXPECT_EQ(failures->front().idempotency_key, "d-1");
  EXPECT_EQ(std::to_string(failures->front().row_id), member(r, "id"));
  // The reason names the envelope that failed, and is kept for reprocess.
  EXPECT_NE(failures->front().failure_reason.find("encryptedDelegatedShare"), std::string::npos)
      << failures->front().failure_reason;
  auto m = store_.materials("dynamic", "w-1");
  ASSERT_TRUE(m);
  EXPECT_FALSE(*m);
  EXPECT_NE(stored_payload("d-1"), "<not stored>");
}

TEST_F(PipelineReplies, APoolJobThatThrowsIsAnswered500OnceAndStoresNothing) {
  store_.throw_in_find_event(true);
  const Reply r = deliver(signed_request(
      Provider::dynamic, delegation("d-1", "w-1", rsa_.public_pem, "share-1", "api-key-1")));
  EXPECT_EQ(r.status, 500U);
  EXPECT_EQ(member(r, "error"), "internal");
  EXPECT_EQ(store_.calls().submits, 0U);
  pool_->stop();
  EXPECT_EQ(pool_->failures(), 1U);
}

TEST_F(PipelineReplies, AJobThatThrowsAfterItsRequestReachedTheStoreIsAnsweredOnce) {
  // The pool job hands the request to the store, then throws: the failure
  // handler answers 500; the store's completion, released afterwards, must
  // not answer a second time.
  store_.hold_completions();
  store_.throw_after_submit(true);
  const std::size_t i = send(signed_request(
      Provider::dynamic, delegation("d-1", "w-1", rsa_.public_pem, "share-1", "api-key-1")));
  const auto first = answers_.wait(i);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 500U);
  ASSERT_TRUE(store_.wait_held(1));
  store_.throw_after_submit(false);
  store_.release_completions();
  pool_->stop();
  store_.close();
  EXPECT_EQ(answers_.count(i), 1U);
}

TEST_F(PipelineReplies, RefusalsAreAnsweredAtOnceWithoutTouchingTheStore) {
  Request unsigned_request = signed_request(Provider::dynamic, dynamic_event("e-1", "x"));
  unsigned_request.headers.clear();
  const Reply r = deliver(unsigned_request);
  EXPECT_EQ(r.status, 401U);
  EXPECT_EQ(member(r, "error"), "invalid_signature");
  EXPECT_EQ(metric(R"(hookvault_signature_failures_total{source="dynamic"})"), 1);
  Request unknown = signed_request(Provider::dynamic, dynamic_event("e-1", "x"));
  unknown.target = "/webhooks/other";
  EXPECT_EQ(deliver(unknown).status, 404U);
  Request get = signed_request(Provider::dynamic, dynamic_event("e-1", "x"));
  get.method = "GET";
  EXPECT_EQ(deliver(get).status, 405U);
  const auto calls = store_.calls();
  EXPECT_EQ(calls.submits, 0U);
  EXPECT_EQ(calls.find_event, 0U);
}

TEST_F(PipelineReplies, ReadyzFollowsTheStoresWritability) {
  Request readyz;
  readyz.method = "GET";
  readyz.target = "/readyz";
  EXPECT_EQ(deliver(readyz).status, 200U);
  store_.set_writable(false);
  EXPECT_FALSE(pipeline_->ready());
  EXPECT_EQ(deliver(readyz).status, 503U);
  store_.set_writable(true);
  EXPECT_EQ(deliver(readyz).status, 200U);
}

TEST_F(PipelineReplies, ManyConcurrentDeliveriesAreEachAnsweredOnceAndEachKeyStoredOnce) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20;
  std::vector<Request> requests;
  for (int k = 0; k < kPerThread; ++k) {
    requests.push_back(
        k % 4 == 0 ? signed_request(Provider::dynamic,
                                    delegation("d-" + std::to_string(k), "w-" + std::to_string(k),
                                               rsa_.public_pem, "s", "a"))
                   : signed_request(Provider::dynamic,
                                    dynamic_event("e-" + std::to_string(k), "user.created")));
  }
  std::vector<std::thread> threads;
  std::vector<std::vector<std::size_t>> sent(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (const Request& r : requests) sent[t].push_back(send(r));  // every key from every thread
    });
  }
  for (auto& th : threads) th.join();
  int accepted = 0;
  int duplicates = 0;
  for (const auto& indexes : sent) {
    for (const std::size_t i : indexes) {
      const auto r = answers_.wait(i);
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200U) << r->body;
      (member(*r, "status") == "accepted" ? accepted : duplicates) += 1;
    }
  }
  EXPECT_EQ(accepted, kPerThread);
  EXPECT_EQ(duplicates, kPerThread * (kThreads - 1));
  auto page = store_.list_events(EventQuery{std::nullopt, "", 1000});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->events.size(), static_cast<std::size_t>(kPerThread));
}

}  // namespace
}  // namespace hookvault::testing
