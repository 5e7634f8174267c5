#include "manager/store/wire_check.h"

#include <string>

#include "gtest/gtest.h"
#include "objects.pb.h"

namespace shoal::manager::store {
namespace {

api::Task SampleTask() {
  api::Task t;
  t.set_id("t1");
  t.set_service_id("svc");
  t.set_slot(3);
  t.set_node_id("n1");
  t.mutable_annotations()->set_name("web.3.t1");
  (*t.mutable_spec()->mutable_container_spec()->mutable_labels())["k"] = "v";
  t.mutable_spec()->mutable_container_spec()->set_image("busybox:latest");
  t.mutable_spec()->mutable_container_spec()->add_env("A=\xc3\xa9t\xc3\xa9");  // "été"
  t.mutable_status()->set_state(api::TASK_STATE_RUNNING);
  t.mutable_status()->set_message("started");
  return t;
}

// WouldParse must agree with the parser: true only where ParseFromString succeeds.
void ExpectAgreesWithParser(const api::StoreObject& o) {
  const std::string bytes = o.SerializeAsString();
  api::StoreObject parsed;
  const bool parses = parsed.ParseFromString(bytes);
  const bool would = WouldParse(api::StoreObject::descriptor(), bytes);
  if (would) EXPECT_TRUE(parses) << "WouldParse said yes to bytes the parser refuses";
}

TEST(WireCheckTest, WellFormedObjectsPass) {
  api::StoreObject o;
  *o.mutable_task() = SampleTask();
  EXPECT_TRUE(WouldParse(api::StoreObject::descriptor(), o.SerializeAsString()));
  ExpectAgreesWithParser(o);
  api::StoreObject empty;
  EXPECT_TRUE(WouldParse(api::StoreObject::descriptor(), empty.SerializeAsString()));
}

TEST(WireCheckTest, InvalidUtf8InAStringFieldIsRefusedLikeTheParserDoes) {
  for (const std::string bad : {std::string("\xff"), std::string("a\xc3"),
                                std::string("\xed\xa0\x80"), std::string("\xc0\xaf")}) {
    api::StoreObject o;
    *o.mutable_task() = SampleTask();
    o.mutable_task()->mutable_status()->set_message(bad);
    const std::string bytes = o.SerializeAsString();  // the serializer only logs
    EXPECT_FALSE(WouldParse(api::StoreObject::descriptor(), bytes));
    api::StoreObject parsed;
    EXPECT_FALSE(parsed.ParseFromString(bytes));
    // In a map value too.
    api::StoreObject m;
    *m.mutable_task() = SampleTask();
    (*m.mutable_task()->mutable_spec()->mutable_container_spec()->mutable_labels())["x"] = bad;
    EXPECT_FALSE(WouldParse(api::StoreObject::descriptor(), m.SerializeAsString()));
  }
}

TEST(WireCheckTest, TruncatedOrGarbledBytesAreRefused) {
  api::StoreObject o;
  *o.mutable_task() = SampleTask();
  const std::string bytes = o.SerializeAsString();
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    const std::string truncated = bytes.substr(0, cut);
    if (WouldParse(api::StoreObject::descriptor(), truncated)) {
      api::StoreObject parsed;
      EXPECT_TRUE(parsed.ParseFromString(truncated)) << "cut at " << cut;
    }
  }
  EXPECT_FALSE(
      WouldParse(api::StoreObject::descriptor(), std::string("\x0a\xff\xff\xff\xff\x0f", 6)));
}

TEST(WireCheckTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));  // é € 😀
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc0\x80"));          // overlong NUL
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
}

}  // namespace
}  // namespace shoal::manager::store
