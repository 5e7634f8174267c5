// Name resolution against a list of nodes, with the lookups answering as the daemon would.
#include "cli/resolve.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

api::Node MakeNode(const std::string& id, const std::string& hostname) {
  api::Node n;
  n.set_id(id);
  n.mutable_description()->set_hostname(hostname);
  return n;
}

class ResolveTest : public ::testing::Test {
 protected:
  ResolveTest() {
    nodes_ = {MakeNode("abc111", "alpha"), MakeNode("abc222", "beta"), MakeNode("xyz333", "twin"),
              MakeNode("xyz444", "twin"), MakeNode("beta", "gamma")};
    lookup_.kind = "node";
    lookup_.list_command = "shoal node ls";
    lookup_.get = [this](const std::string& id, api::Node* out) {
      ++calls_;
      for (const api::Node& n : nodes_) {
        if (n.id() == id) {
          *out = n;
          return grpc::Status::OK;
        }
      }
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "node " + id + " not found");
    };
    lookup_.list_by_name = [this](const std::string& name, std::vector<api::Node>* out) {
      ++calls_;
      for (const api::Node& n : nodes_) {
        if (n.description().hostname() == name) out->push_back(n);
      }
      return grpc::Status::OK;
    };
    lookup_.list_by_id_prefix = [this](const std::string& prefix, std::vector<api::Node>* out) {
      ++calls_;
      for (const api::Node& n : nodes_) {
        if (absl::StartsWith(n.id(), prefix)) out->push_back(n);
      }
      return grpc::Status::OK;
    };
  }

  grpc::Status Find(const std::string& ref, std::string* id) {
    api::Node node;
    grpc::Status s = Resolve(lookup_, ref, &node);
    *id = node.id();
    return s;
  }

  std::vector<api::Node> nodes_;
  ObjectLookup<api::Node> lookup_;
  int calls_ = 0;
};

TEST_F(ResolveTest, ExactIdFirst) {
  std::string id;
  ASSERT_TRUE(Find("abc222", &id).ok());
  EXPECT_EQ(id, "abc222");
  EXPECT_EQ(calls_, 1);
  // "beta" is both a node's ID and another node's hostname: the ID wins, as in docker.
  ASSERT_TRUE(Find("beta", &id).ok());
  EXPECT_EQ(id, "beta");
}

TEST_F(ResolveTest, ThenExactHostname) {
  std::string id;
  ASSERT_TRUE(Find("alpha", &id).ok());
  EXPECT_EQ(id, "abc111");
  ASSERT_TRUE(Find("gamma", &id).ok());
  EXPECT_EQ(id, "beta");
}

TEST_F(ResolveTest, ThenUniqueIdPrefix) {
  std::string id;
  ASSERT_TRUE(Find("abc1", &id).ok());
  EXPECT_EQ(id, "abc111");
  ASSERT_TRUE(Find("xyz4", &id).ok());
  EXPECT_EQ(id, "xyz444");
}

TEST_F(ResolveTest, AmbiguousHostnameAsksForTheId) {
  std::string id;
  grpc::Status s = Find("twin", &id);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "node name twin is ambiguous (2 matches): use the node ID");
}

TEST_F(ResolveTest, AmbiguousPrefixAsksForMore) {
  std::string id;
  grpc::Status s = Find("abc", &id);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "node ID prefix abc is ambiguous (2 matches): give more of the ID");
}

TEST_F(ResolveTest, MissingSaysHowToList) {
  std::string id;
  grpc::Status s = Find("nope", &id);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "node nope not found (`shoal node ls` lists the nodes)");
  EXPECT_EQ(Find("", &id).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ResolveTest, OtherErrorsPassThrough) {
  lookup_.get = [](const std::string&, api::Node*) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this node is not a swarm manager");
  };
  std::string id;
  grpc::Status s = Find("alpha", &id);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), "this node is not a swarm manager");
}

TEST(RetryOnAbortedTest, RetriesStaleWritesABoundedNumberOfTimes) {
  int attempts = 0;
  grpc::Status s = RetryOnAborted([&] {
    ++attempts;
    return attempts < 3 ? grpc::Status(grpc::StatusCode::ABORTED, "stale") : grpc::Status::OK;
  });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(attempts, 3);

  attempts = 0;
  s = RetryOnAborted([&] {
    ++attempts;
    return grpc::Status(grpc::StatusCode::ABORTED, "update out of sequence");
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(attempts, kUpdateAttempts);
  EXPECT_NE(s.error_message().find("update out of sequence"), std::string::npos);

  attempts = 0;
  s = RetryOnAborted([&] {
    ++attempts;
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "gone");
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(attempts, 1);
}

}  // namespace
}  // namespace shoal::cli
