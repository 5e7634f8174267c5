#include "scheduler/constraint.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "scheduler/test_util.h"

namespace shoal::scheduler {
namespace {

using testing::NodeBuilder;

Constraint MustParse(const std::string& expr) {
  absl::StatusOr<Constraint> c = ParseConstraint(expr);
  EXPECT_TRUE(c.ok()) << expr << ": " << c.status();
  return c.ok() ? *c : Constraint();
}

bool Matches(const std::string& expr, const api::Node& node) {
  return MustParse(expr).Matches(node);
}

std::string ParseError(const std::string& expr) {
  absl::StatusOr<Constraint> c = ParseConstraint(expr);
  EXPECT_FALSE(c.ok()) << expr;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(c.status().message());
}

TEST(ParseConstraint, EveryKeyAndBothOperators) {
  struct Case {
    std::string expr;
    Constraint::Field field;
    Constraint::Op op;
    std::string label, value;
  } cases[] = {
      {"node.id==abc", Constraint::Field::kNodeId, Constraint::Op::kEq, "", "abc"},
      {"node.hostname!=web1", Constraint::Field::kNodeHostname, Constraint::Op::kNe, "", "web1"},
      {"node.role==manager", Constraint::Field::kNodeRole, Constraint::Op::kEq, "", "manager"},
      {"node.platform.os==linux", Constraint::Field::kNodePlatformOs, Constraint::Op::kEq, "",
       "linux"},
      {"node.platform.arch!=arm64", Constraint::Field::kNodePlatformArch, Constraint::Op::kNe, "",
       "arm64"},
      {"node.labels.zone==east", Constraint::Field::kNodeLabel, Constraint::Op::kEq, "zone",
       "east"},
      {"engine.labels.ssd!=true", Constraint::Field::kEngineLabel, Constraint::Op::kNe, "ssd",
       "true"},
      {"node.ip==10.0.0.0/8", Constraint::Field::kNodeIp, Constraint::Op::kEq, "", "10.0.0.0/8"},
  };
  for (const Case& c : cases) {
    Constraint got = MustParse(c.expr);
    EXPECT_EQ(got.field, c.field) << c.expr;
    EXPECT_EQ(got.op, c.op) << c.expr;
    EXPECT_EQ(got.label, c.label) << c.expr;
    EXPECT_EQ(got.value, c.value) << c.expr;
    EXPECT_EQ(got.ToString(), c.expr);
  }
}

TEST(ParseConstraint, KeysIgnoreCaseButLabelNamesKeepIt) {
  Constraint c = MustParse("Node.Labels.Zone==East");
  EXPECT_EQ(c.field, Constraint::Field::kNodeLabel);
  EXPECT_EQ(c.label, "Zone");
  EXPECT_EQ(c.value, "East");
  EXPECT_EQ(MustParse("NODE.ROLE==Manager").field, Constraint::Field::kNodeRole);
  EXPECT_EQ(MustParse("ENGINE.labels.x==1").field, Constraint::Field::kEngineLabel);
}

TEST(ParseConstraint, SpacesAroundKeyAndValueAreIgnored) {
  Constraint c = MustParse("  node.labels.zone  ==  east  ");
  EXPECT_EQ(c.label, "zone");
  EXPECT_EQ(c.value, "east");
}

TEST(ParseConstraint, Errors) {
  EXPECT_EQ(ParseError("zone=east"),
            "invalid constraint \"zone=east\": expected KEY==VALUE or KEY!=VALUE");
  EXPECT_EQ(ParseError("node.labels.zone"),
            "invalid constraint \"node.labels.zone\": expected KEY==VALUE or KEY!=VALUE");
  EXPECT_EQ(ParseError("==east"),
            "invalid constraint \"==east\": expected KEY==VALUE or KEY!=VALUE (the key is empty)");
  EXPECT_EQ(ParseError("node.id=="),
            "invalid constraint \"node.id==\": expected KEY==VALUE or KEY!=VALUE (the value is "
            "empty)");
  EXPECT_NE(ParseError("node.labels.zone==ea<st").find("value \"ea<st\" may contain only"),
            std::string::npos);
  EXPECT_NE(ParseError("node.lab@ls.zone==east").find("key \"node.lab@ls.zone\" may contain"),
            std::string::npos);
  EXPECT_NE(ParseError("node.zone==east").find("unknown key \"node.zone\""), std::string::npos);
  // The label prefix alone names no label.
  EXPECT_NE(ParseError("node.labels.==x").find("unknown key"), std::string::npos);
  EXPECT_NE(ParseError("node.role==boss").find("manager or worker"), std::string::npos);
  EXPECT_NE(ParseError("node.ip==10.0.0.300").find("IP address or a CIDR"), std::string::npos);
  EXPECT_NE(ParseError("node.ip==10.0.0.0/33").find("IP address or a CIDR"), std::string::npos);
  // "==" is looked for before "!=", as Docker does.
  EXPECT_NE(ParseError("a!=b==c").find("key \"a!=b\""), std::string::npos);
}

TEST(ParseConstraints, FirstErrorWins) {
  std::vector<std::string> exprs = {"node.role==worker", "bad", "also=bad"};
  absl::StatusOr<std::vector<Constraint>> c = ParseConstraints(absl::MakeConstSpan(exprs));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("\"bad\""), absl::string_view::npos);
  exprs = {"node.role==worker", "node.labels.zone!=west"};
  c = ParseConstraints(absl::MakeConstSpan(exprs));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->size(), 2u);
}

TEST(ConstraintMatch, NodeFields) {
  api::Node n = NodeBuilder("n1abc").Hostname("web-1").Manager().Platform("linux", "arm64").Build();
  EXPECT_TRUE(Matches("node.id==n1abc", n));
  EXPECT_FALSE(Matches("node.id!=n1abc", n));
  EXPECT_TRUE(Matches("node.hostname==WEB-1", n));  // Values ignore case.
  EXPECT_TRUE(Matches("node.hostname!=web-2", n));
  EXPECT_TRUE(Matches("node.role==manager", n));
  EXPECT_TRUE(Matches("node.role!=worker", n));
  EXPECT_FALSE(Matches("node.role==worker", n));
  EXPECT_TRUE(Matches("node.platform.os==Linux", n));
  EXPECT_TRUE(Matches("node.platform.arch==arm64", n));
  EXPECT_FALSE(Matches("node.platform.arch==amd64", n));
  api::Node w = NodeBuilder("w").Build();
  EXPECT_TRUE(Matches("node.role==worker", w));
}

TEST(ConstraintMatch, LabelValuesIgnoreCaseNamesDoNot) {
  api::Node n = NodeBuilder("n").Label("zone", "East").EngineLabel("ssd", "true").Build();
  EXPECT_TRUE(Matches("node.labels.zone==east", n));
  EXPECT_TRUE(Matches("node.labels.zone==EAST", n));
  EXPECT_FALSE(Matches("node.labels.Zone==east", n));  // No label "Zone".
  EXPECT_TRUE(Matches("node.labels.zone!=west", n));
  EXPECT_TRUE(Matches("engine.labels.ssd==TRUE", n));
  EXPECT_FALSE(Matches("engine.labels.ssd!=true", n));
  // Node labels and engine labels are different maps.
  EXPECT_FALSE(Matches("node.labels.ssd==true", n));
  EXPECT_FALSE(Matches("engine.labels.zone==east", n));
}

TEST(ConstraintMatch, MissingLabelCompareAsEmpty) {
  api::Node n = NodeBuilder("n").Build();
  EXPECT_FALSE(Matches("node.labels.gpu==yes", n));
  EXPECT_TRUE(Matches("node.labels.gpu!=yes", n));
  EXPECT_FALSE(Matches("engine.labels.gpu==yes", n));
  EXPECT_TRUE(Matches("engine.labels.gpu!=yes", n));
  api::Node bare;  // No description at all: hostname and platform read as "".
  bare.set_id("bare");
  EXPECT_FALSE(Matches("node.hostname==x", bare));
  EXPECT_TRUE(Matches("node.platform.os!=linux", bare));
}

TEST(ConstraintMatch, NodeIp) {
  api::Node v4 = NodeBuilder("a").Addr("10.1.2.3").Build();
  api::Node v6 = NodeBuilder("b").Addr("2001:db8::7").Build();
  api::Node none = NodeBuilder("c").Build();
  EXPECT_TRUE(Matches("node.ip==10.1.2.3", v4));
  EXPECT_TRUE(Matches("node.ip==10.0.0.0/8", v4));
  EXPECT_TRUE(Matches("node.ip!=10.2.0.0/16", v4));
  EXPECT_FALSE(Matches("node.ip==10.1.2.4", v4));
  EXPECT_TRUE(Matches("node.ip==::ffff:10.1.2.3", v4));  // IPv4-mapped form is the same.
  EXPECT_TRUE(Matches("node.ip==2001:db8::/32", v6));
  EXPECT_FALSE(Matches("node.ip==10.0.0.0/8", v6));
  EXPECT_FALSE(Matches("node.ip==10.0.0.0/8", none));
  EXPECT_TRUE(Matches("node.ip!=10.0.0.0/8", none));
  EXPECT_TRUE(Matches("node.ip==0.0.0.0/0", v4));
}

TEST(NodeMatches, AllMustHold) {
  api::Node n = NodeBuilder("n").Label("zone", "east").Label("tier", "app").Build();
  std::vector<std::string> exprs = {"node.labels.zone==east", "node.labels.tier==app",
                                    "node.role==worker"};
  auto c = ParseConstraints(absl::MakeConstSpan(exprs));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(NodeMatches(*c, n));
  exprs.push_back("node.labels.tier!=app");
  c = ParseConstraints(absl::MakeConstSpan(exprs));
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(NodeMatches(*c, n));
  EXPECT_TRUE(NodeMatches({}, n));
}

}  // namespace
}  // namespace shoal::scheduler
