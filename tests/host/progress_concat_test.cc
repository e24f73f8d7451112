// ProgressConcat: reads that each count from zero become one rising sequence.
#include "host/io/progress_concat.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace ckptio::host {
namespace {

using Calls = std::vector<std::pair<uint64_t, uint64_t>>;

TEST(ProgressConcat, ReadsThatEachCountFromZeroAddUp) {
  Calls seen;
  auto concat =
      std::make_shared<ProgressConcat>([&](uint64_t d, uint64_t t) { seen.emplace_back(d, t); }, 0);
  ProgressFn fn = ProgressConcat::forwarder(concat);
  concat->set_total(100);
  fn(10, 40), fn(40, 40), fn(40, 40);  // a read repeats its last report
  fn(5, 50), fn(50, 50);               // the next: another total
  fn(3, 50), fn(10, 50);               // the next: the same total, a lower count
  concat->finish();
  EXPECT_EQ(seen, (Calls{{10, 100},
                         {40, 100},
                         {40, 100},
                         {45, 100},
                         {90, 100},
                         {93, 100},
                         {100, 100},
                         {100, 100}}));
}

TEST(ProgressConcat, NeverRunsBackwardsOrPastTheTotalAndPassesThroughOnceFinished) {
  Calls seen;
  auto concat = std::make_shared<ProgressConcat>(
      [&](uint64_t d, uint64_t t) { seen.emplace_back(d, t); }, 30);
  ProgressFn fn = ProgressConcat::forwarder(concat);
  fn(20, 20), fn(25, 25);  // reads that cover more than the total
  concat->finish();
  fn(7, 9);  // a lazy checkpoint's later read: its own sequence
  EXPECT_EQ(seen, (Calls{{20, 30}, {30, 30}, {30, 30}, {7, 9}}));
}

TEST(ProgressConcat, NoUserFunctionMeansNoForwarder) {
  auto concat = std::make_shared<ProgressConcat>(ProgressFn{}, 10);
  EXPECT_FALSE(ProgressConcat::forwarder(concat));
  concat->finish();  // harmless
}

}  // namespace
}  // namespace ckptio::host
