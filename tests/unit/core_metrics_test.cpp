// Metrics text exposition and the per-client rate limiter.
#include <gtest/gtest.h>

#include <thread>

#include "hookvault/metrics.hpp"
#include "hookvault/rate_limit.hpp"

namespace hookvault {
namespace {

using namespace std::chrono_literals;

TEST(Metrics, CountersAndGaugesRenderInTextFormat) {
  Metrics m;
  auto& requests = m.counter("app_requests_total", "Requests", {"path", "status"});
  requests.with({"/a", "200"}).inc();
  requests.with({"/a", "200"}).inc(2);
  requests.with({"/b", "404"}).inc();
  m.gauge("app_open", "Open things").with({}).set(7);
  EXPECT_EQ(m.render(),
            "# HELP app_open Open things\n"
            "# TYPE app_open gauge\n"
            "app_open 7\n"
            "# HELP app_requests_total Requests\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total{path=\"/a\",status=\"200\"} 3\n"
            "app_requests_total{path=\"/b\",status=\"404\"} 1\n");
}

TEST(Metrics, LabelValuesAndHelpAreEscaped) {
  Metrics m;
  m.counter("x_total", "line\\one\ntwo", {"v"}).with({"a\"b\\c\nd"}).inc();
  EXPECT_EQ(m.render(),
            "# HELP x_total line\\\\one\\ntwo\n"
            "# TYPE x_total counter\n"
            "x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(Metrics, HistogramBucketsAreCumulativeWithSumAndCount) {
  Metrics m;
  auto& h = m.histogram("lat_seconds", "Latency", {}, {0.1, 1}).with({});
  h.observe(0.05);
  h.observe(0.1);  // le is inclusive
  h.observe(0.5);
  h.observe(3);
  EXPECT_EQ(m.render(),
            "# HELP lat_seconds Latency\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{le=\"0.1\"} 2\n"
            "lat_seconds_bucket{le=\"1\"} 3\n"
            "lat_seconds_bucket{le=\"+Inf\"} 4\n"
            "lat_seconds_sum 3.65\n"
            "lat_seconds_count 4\n");
}

TEST(Metrics, CollectorsRunAtEachRenderAndTheirFamiliesSortWithTheOthers) {
  Metrics m;
  int calls = 0;
  double gap = 2;
  m.collector([&calls, &gap] {
    ++calls;
    CollectedFamily b{"b_gap", "Gaps", MetricType::gauge, {"sub"}, {{{"s1"}, gap}, {{"s2"}, 0}}};
    CollectedFamily d{"d_total", "D", MetricType::counter, {}, {{{}, 5}}};
    return std::vector<CollectedFamily>{b, d};
  });
  m.counter("a_total", "A").with({}).inc();
  m.counter("c_total", "C").with({}).inc();
  const std::string text = m.render();
  EXPECT_EQ(calls, 1);
  const auto a = text.find("a_total 1");
  const auto b1 = text.find("b_gap{sub=\"s1\"} 2\n");
  const auto b2 = text.find("b_gap{sub=\"s2\"} 0\n");
  const auto c = text.find("c_total 1");
  const auto d = text.find("# TYPE d_total counter\nd_total 5\n");
  for (auto at : {a, b1, b2, c, d}) EXPECT_NE(at, std::string::npos) << text;
  EXPECT_LT(a, b1);
  EXPECT_LT(b2, c);
  EXPECT_LT(c, d);
  // Computed again at the next scrape, not cached.
  gap = 7;
  const std::string again = m.render();
  EXPECT_EQ(calls, 2);
  EXPECT_NE(again.find("b_gap{sub=\"s1\"} 7\n"), std::string::npos) << again;
}

TEST(Metrics, SeriesAreFoundAgainByTheirLabelValues) {
  Metrics m;
  auto& f = m.counter("x_total", "X", {"a", "b"});
  auto& s = f.with({"1", "2"});
  std::string one = "1";
  EXPECT_EQ(&s, &f.with({std::string_view(one), "2"}));
  EXPECT_NE(&s, &f.with({"1", "3"}));
  EXPECT_NE(&s, &f.with({"12", ""}));
  // Values not given are empty.
  EXPECT_EQ(&f.with({"9"}), &f.with({"9", ""}));
}

TEST(Metrics, RedefiningAFamilyReturnsItUnlessTheShapeDiffers) {
  Metrics m;
  auto& a = m.counter("x_total", "X", {"l"});
  EXPECT_EQ(&a, &m.counter("x_total", "X", {"l"}));
  EXPECT_THROW(m.gauge("x_total", "X", {"l"}), std::logic_error);
  EXPECT_THROW(m.counter("x_total", "X", {"other"}), std::logic_error);
}

TEST(Metrics, ConcurrentIncrementsAreAllCounted) {
  Metrics m;
  auto& f = m.counter("n_total", "N", {"k"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&f, t] {
      for (int i = 0; i < 10000; ++i) f.with({t % 2 == 0 ? "even" : "odd"}).inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(f.with({"even"}).value(), 20000);
  EXPECT_EQ(f.with({"odd"}).value(), 20000);
}

struct FakeClock {
  std::chrono::steady_clock::time_point now{std::chrono::steady_clock::time_point{} + 1h};
  RateLimiter::Clock fn() {
    return [this] { return now; };
  }
};

TEST(RateLimiter, BurstThenRefusedWithRetryAfterThenRefilled) {
  FakeClock clock;
  RateLimiter limiter(2, 3, clock.fn());  // 2/s, burst 3
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.try_acquire("a").allowed);
  auto refused = limiter.try_acquire("a");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_s, 1U);
  clock.now += 500ms;  // one token back
  EXPECT_TRUE(limiter.try_acquire("a").allowed);
  EXPECT_FALSE(limiter.try_acquire("a").allowed);
  clock.now += 10s;  // never more than the burst
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.try_acquire("a").allowed);
  EXPECT_FALSE(limiter.try_acquire("a").allowed);
}

TEST(RateLimiter, KeysHaveTheirOwnBuckets) {
  FakeClock clock;
  RateLimiter limiter(1, 1, clock.fn());
  EXPECT_TRUE(limiter.try_acquire("a").allowed);
  EXPECT_FALSE(limiter.try_acquire("a").allowed);
  EXPECT_TRUE(limiter.try_acquire("b").allowed);
}

TEST(RateLimiter, SlowRatesAskForLongerWaits) {
  FakeClock clock;
  RateLimiter limiter(0.1, 1, clock.fn());  // one per 10 s
  EXPECT_TRUE(limiter.try_acquire("a").allowed);
  EXPECT_EQ(limiter.try_acquire("a").retry_after_s, 10U);
}

TEST(RateLimiter, ZeroRateMeansUnlimited) {
  RateLimiter limiter(0, 1);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.try_acquire("a").allowed);
}

}  // namespace
}  // namespace hookvault
