// The OCI spec rules, one group per rule, and an end-to-end check that runc runs what
// BuildOciSpec produces.
#include "agent/exec/containerd/oci_spec.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/harness/prerequisite.h"

namespace shoal::agent::exec::containerd {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

api::Task MakeTask() {
  api::Task task;
  task.set_id("x1y2z3w4v5u6t7s8r9q0");
  task.set_service_id("svc123");
  task.set_slot(2);
  task.set_node_id("node9");
  task.mutable_service_annotations()->set_name("web");
  (*task.mutable_service_annotations()->mutable_labels())["tier"] = "front";
  (*task.mutable_service_annotations()->mutable_labels())["com.example.zone"] = "a";
  task.mutable_spec()->mutable_container_spec()->set_image("busybox:1");
  return task;
}

api::ContainerSpec& Spec(OciSpecInputs& in) {
  return *in.task.mutable_spec()->mutable_container_spec();
}

OciSpecInputs MakeInputs() {
  OciSpecInputs in;
  in.task = MakeTask();
  in.image.cmd = {"sh"};
  in.rootfs_path = "/var/lib/shoal/rootfs";
  in.hostname = "web-2";
  in.secrets_dir = "/run/shoal/secrets/x1";
  in.state_dir_volumes = "/var/lib/shoal/volumes";
  return in;
}

json Build(const OciSpecInputs& in) {
  auto s = BuildOciSpecJson(in);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : json();
}

absl::Status BuildError(const OciSpecInputs& in) { return BuildOciSpecJson(in).status(); }

// The spec's mount at `dest`, or null.
json MountAt(const json& spec, const std::string& dest) {
  for (const json& m : spec["mounts"]) {
    if (m["destination"] == dest) return m;
  }
  return json();
}

std::vector<std::string> Destinations(const json& spec) {
  std::vector<std::string> out;
  for (const json& m : spec["mounts"]) out.push_back(m["destination"].get<std::string>());
  return out;
}

std::vector<std::string> Strings(const json& j) { return j.get<std::vector<std::string>>(); }

google::protobuf::Duration Proto(int64_t seconds) {
  google::protobuf::Duration d;
  d.set_seconds(seconds);
  return d;
}

// ----- image config --------------------------------------------------------------------------

TEST(ParseImageConfig, ReadsEveryField) {
  auto c = ParseImageConfig(R"({
    "architecture": "amd64", "os": "linux",
    "config": {
      "User": "app", "WorkingDir": "/srv", "Entrypoint": ["/entry"], "Cmd": ["serve", "-v"],
      "Env": ["PATH=/bin", "A=1"], "Labels": {"l1": "v1"}, "StopSignal": "SIGQUIT",
      "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Volumes": {"/data": {}},
      "Shell": ["/bin/bash", "-c"],
      "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5000000000,
                      "Timeout": 2000000000, "StartPeriod": 1000000000, "Retries": 4}
    },
    "rootfs": {"type": "layers", "diff_ids": []}
  })");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->os, "linux");
  EXPECT_EQ(c->architecture, "amd64");
  EXPECT_EQ(c->user, "app");
  EXPECT_EQ(c->working_dir, "/srv");
  EXPECT_THAT(c->entrypoint, ElementsAre("/entry"));
  EXPECT_THAT(c->cmd, ElementsAre("serve", "-v"));
  EXPECT_THAT(c->env, ElementsAre("PATH=/bin", "A=1"));
  EXPECT_EQ(c->labels.at("l1"), "v1");
  EXPECT_EQ(c->stop_signal, "SIGQUIT");
  EXPECT_THAT(c->exposed_ports, ElementsAre("53/udp", "80/tcp"));
  EXPECT_THAT(c->volumes, ElementsAre("/data"));
  EXPECT_THAT(c->shell, ElementsAre("/bin/bash", "-c"));
  ASSERT_TRUE(c->healthcheck.has_value());
  EXPECT_THAT(c->healthcheck->test, ElementsAre("CMD-SHELL", "true"));
  EXPECT_EQ(c->healthcheck->interval, absl::Seconds(5));
  EXPECT_EQ(c->healthcheck->timeout, absl::Seconds(2));
  EXPECT_EQ(c->healthcheck->start_period, absl::Seconds(1));
  EXPECT_EQ(c->healthcheck->retries, 4);
}

TEST(ParseImageConfig, NullsAndMissingFieldsAreEmpty) {
  auto c = ParseImageConfig(
      R"({"config": {"Entrypoint": null, "Cmd": null, "Env": null, "Labels": null}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->entrypoint, IsEmpty());
  EXPECT_THAT(c->cmd, IsEmpty());
  EXPECT_FALSE(c->healthcheck.has_value());
  auto bare = ParseImageConfig(R"({"architecture": "arm64"})");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->architecture, "arm64");
}

TEST(ParseImageConfig, RejectsMalformedBlobsNamingTheField) {
  EXPECT_THAT(ParseImageConfig("{nope").status().message(), HasSubstr("not valid JSON"));
  EXPECT_EQ(ParseImageConfig("[1]").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ParseImageConfig(R"({"config": {"Cmd": "sh"}})").status().message(),
              HasSubstr("config.Cmd"));
  EXPECT_THAT(ParseImageConfig(R"({"config": {"Env": ["A=1", 2]}})").status().message(),
              HasSubstr("config.Env"));
  EXPECT_THAT(ParseImageConfig(R"({"config": {"Labels": {"a": 1}}})").status().message(),
              HasSubstr("config.Labels.a"));
  EXPECT_THAT(
      ParseImageConfig(R"({"config": {"Healthcheck": {"Interval": "5s"}}})").status().message(),
      HasSubstr("config.Healthcheck.Interval"));
}

// ----- args ----------------------------------------------------------------------------------

TEST(ProcessArgs, ImageEntrypointPlusCmd) {
  ImageConfig image;
  image.entrypoint = {"/entry"};
  image.cmd = {"serve"};
  api::ContainerSpec spec;
  EXPECT_THAT(*ProcessArgs(spec, image), ElementsAre("/entry", "serve"));
}

TEST(ProcessArgs, SpecArgsReplaceTheImageCmd) {
  ImageConfig image;
  image.entrypoint = {"/entry"};
  image.cmd = {"serve"};
  api::ContainerSpec spec;
  spec.add_args("migrate");
  EXPECT_THAT(*ProcessArgs(spec, image), ElementsAre("/entry", "migrate"));
}

TEST(ProcessArgs, SpecCommandDropsTheImageEntrypointAndCmd) {
  ImageConfig image;
  image.entrypoint = {"/entry"};
  image.cmd = {"serve"};
  api::ContainerSpec spec;
  spec.add_command("/bin/echo");
  EXPECT_THAT(*ProcessArgs(spec, image), ElementsAre("/bin/echo"));
  spec.add_args("hi");
  EXPECT_THAT(*ProcessArgs(spec, image), ElementsAre("/bin/echo", "hi"));
}

TEST(ProcessArgs, CmdAloneAndArgsAlone) {
  ImageConfig image;
  image.cmd = {"/bin/sh"};
  api::ContainerSpec spec;
  EXPECT_THAT(*ProcessArgs(spec, image), ElementsAre("/bin/sh"));
  ImageConfig empty;
  spec.add_args("/bin/true");
  EXPECT_THAT(*ProcessArgs(spec, empty), ElementsAre("/bin/true"));
}

TEST(ProcessArgs, NothingToRunIsAnError) {
  auto args = ProcessArgs(api::ContainerSpec(), ImageConfig());
  EXPECT_EQ(args.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      args.status().message(),
      HasSubstr("no command: the image has no ENTRYPOINT or CMD and the service sets none"));
  OciSpecInputs in = MakeInputs();
  in.image.cmd.clear();
  EXPECT_THAT(BuildError(in).message(), HasSubstr("no command"));
}

TEST(BuildOciSpec, InitPrefixesArgsAndMountsTheBinary) {
  OciSpecInputs in = MakeInputs();
  Spec(in).mutable_init()->set_value(true);
  in.init_path = "/usr/bin/tini-static";
  json s = Build(in);
  EXPECT_THAT(Strings(s["process"]["args"]), ElementsAre("/sbin/docker-init", "--", "sh"));
  json m = MountAt(s, "/sbin/docker-init");
  ASSERT_FALSE(m.is_null());
  EXPECT_EQ(m["source"], "/usr/bin/tini-static");
  EXPECT_THAT(Strings(m["options"]), ElementsAre("bind", "ro", "rprivate"));
}

TEST(BuildOciSpec, InitWithoutABinaryIsAFailedPrecondition) {
  OciSpecInputs in = MakeInputs();
  Spec(in).mutable_init()->set_value(true);
  absl::Status s = BuildError(in);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("tini"));
}

TEST(BuildOciSpec, DefaultInitAppliesOnlyWhenTheSpecLeavesItUnset) {
  OciSpecInputs in = MakeInputs();
  in.default_init = true;
  in.init_path = "/opt/tini";
  EXPECT_EQ(Build(in)["process"]["args"][0], "/sbin/docker-init");
  Spec(in).mutable_init()->set_value(false);
  EXPECT_THAT(Strings(Build(in)["process"]["args"]), ElementsAre("sh"));
  EXPECT_TRUE(MountAt(Build(in), "/sbin/docker-init").is_null());
}

// ----- env -----------------------------------------------------------------------------------

TEST(ProcessEnv, DefaultsPathAndHostname) {
  api::Task task = MakeTask();
  EXPECT_THAT(ProcessEnv(task, ImageConfig(), "h1", {}),
              ElementsAre("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          "HOSTNAME=h1"));
}

TEST(ProcessEnv, ImageThenSpecOverrideByKey) {
  api::Task task = MakeTask();
  auto* spec = task.mutable_spec()->mutable_container_spec();
  spec->add_env("B=spec");
  spec->add_env("C=new");
  ImageConfig image;
  image.env = {"PATH=/opt/bin", "A=img", "B=img"};
  EXPECT_THAT(ProcessEnv(task, image, "h", {}),
              ElementsAre("PATH=/opt/bin", "HOSTNAME=h", "A=img", "B=spec", "C=new"));
}

TEST(ProcessEnv, KeyWithoutValueUnsetsAndEmptyValueStays) {
  api::Task task = MakeTask();
  auto* spec = task.mutable_spec()->mutable_container_spec();
  spec->add_env("A");
  spec->add_env("B=");
  ImageConfig image;
  image.env = {"A=1", "AB=2"};
  EXPECT_THAT(ProcessEnv(task, image, "h", {}),
              ElementsAre(HasSubstr("PATH="), "HOSTNAME=h", "AB=2", "B="));
}

TEST(ProcessEnv, TtyAddsTermAndGenericResourcesAndExtraEnvComeLast) {
  api::Task task = MakeTask();
  auto* spec = task.mutable_spec()->mutable_container_spec();
  spec->set_tty(true);
  spec->add_env("X=spec");
  auto* g1 = task.add_assigned_generic_resources()->mutable_named();
  g1->set_kind("gpu");
  g1->set_value("GPU-1");
  auto* g2 = task.add_assigned_generic_resources()->mutable_named();
  g2->set_kind("gpu");
  g2->set_value("GPU-2");
  auto* g3 = task.add_assigned_generic_resources()->mutable_discrete();
  g3->set_kind("ssd");
  g3->set_value(3);
  EXPECT_THAT(ProcessEnv(task, ImageConfig(), "h", {"X=executor"}),
              ElementsAre(HasSubstr("PATH="), "HOSTNAME=h", "TERM=xterm", "X=executor",
                          "DOCKER_RESOURCE_GPU=GPU-1,GPU-2", "DOCKER_RESOURCE_SSD=3"));
}

TEST(BuildOciSpec, HostnameFallsBackToTheTaskIdPrefix) {
  OciSpecInputs in = MakeInputs();
  in.hostname.clear();
  json s = Build(in);
  EXPECT_EQ(s["hostname"], "x1y2z3w4v5u6");
  EXPECT_THAT(Strings(s["process"]["env"]), testing::Contains("HOSTNAME=x1y2z3w4v5u6"));
  in.hostname = "web-2";
  EXPECT_EQ(Build(in)["hostname"], "web-2");
}

// ----- user ----------------------------------------------------------------------------------

constexpr char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "# a comment\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "app:x:1000:1001:App:/home/app:/bin/sh\n"
    "broken:x:notanumber:1::/:/bin/sh\n";
constexpr char kGroup[] =
    "root:x:0:\n"
    "wheel:x:10:app,other\n"
    "appgrp:x:1001:\n"
    "audio:x:29:app\n"
    "staff:x:50:\n";

TEST(ResolveUser, EmptyIsRootWithRootsEntry) {
  auto u = ResolveUser("", {}, kPasswd, kGroup);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->uid, 0u);
  EXPECT_EQ(u->gid, 0u);
  EXPECT_EQ(u->home, "/root");
  EXPECT_THAT(u->additional_gids, IsEmpty());
  auto no_files = ResolveUser("", {}, "", "");
  ASSERT_TRUE(no_files.ok());
  EXPECT_EQ(no_files->uid, 0u);
}

TEST(ResolveUser, NumericNeedsNoEntry) {
  auto u = ResolveUser("4242", {}, "", "");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->uid, 4242u);
  EXPECT_EQ(u->gid, 0u);
  auto ug = ResolveUser("4242:4343", {}, "", "");
  ASSERT_TRUE(ug.ok());
  EXPECT_EQ(ug->uid, 4242u);
  EXPECT_EQ(ug->gid, 4343u);
}

TEST(ResolveUser, NumericUidFoundInPasswdTakesItsGroupAndMemberships) {
  auto u = ResolveUser("1000", {}, kPasswd, kGroup);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->gid, 1001u);
  EXPECT_THAT(u->additional_gids, ElementsAre(10u, 29u));
}

TEST(ResolveUser, NameLookupWithSupplementaryGroups) {
  auto u = ResolveUser("app", {}, kPasswd, kGroup);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->uid, 1000u);
  EXPECT_EQ(u->gid, 1001u);
  EXPECT_EQ(u->home, "/home/app");
  EXPECT_THAT(u->additional_gids, ElementsAre(10u, 29u));
}

TEST(ResolveUser, ExplicitGroupByNameOrNumberAndNoMemberships) {
  auto by_name = ResolveUser("app:staff", {}, kPasswd, kGroup);
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  EXPECT_EQ(by_name->gid, 50u);
  EXPECT_THAT(by_name->additional_gids, IsEmpty());
  auto by_number = ResolveUser("app:777", {}, kPasswd, kGroup);
  ASSERT_TRUE(by_number.ok());
  EXPECT_EQ(by_number->gid, 777u);
  auto numeric_group_name = ResolveUser("daemon:29", {}, kPasswd, kGroup);
  ASSERT_TRUE(numeric_group_name.ok());
  EXPECT_EQ(numeric_group_name->uid, 1u);
  EXPECT_EQ(numeric_group_name->gid, 29u);
}

TEST(ResolveUser, UnknownUserOrGroupIsAClearError) {
  auto u = ResolveUser("app", {}, "root:x:0:0::/root:/bin/sh\n", "");
  EXPECT_EQ(u.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(u.status().message(),
              HasSubstr("unable to find user app: no matching entries in passwd file"));
  EXPECT_THAT(ResolveUser("app", {}, "", "").status().message(),
              HasSubstr("unable to find user app"));
  EXPECT_THAT(ResolveUser("broken", {}, kPasswd, kGroup).status().message(),
              HasSubstr("unable to find user broken"));
  EXPECT_THAT(ResolveUser("app:nogroup", {}, kPasswd, kGroup).status().message(),
              HasSubstr("unable to find group nogroup: no matching entries in group file"));
}

TEST(ResolveUser, OutOfRangeIds) {
  EXPECT_THAT(ResolveUser("-1", {}, "", "").status().message(), HasSubstr("out of range"));
  EXPECT_THAT(ResolveUser("99999999999", {}, "", "").status().message(), HasSubstr("out of range"));
  EXPECT_THAT(ResolveUser("0:-5", {}, "", "").status().message(), HasSubstr("out of range"));
}

TEST(ResolveUser, ExtraGroupsByNameOrNumber) {
  auto u = ResolveUser("app", {"staff", "4000", "root"}, kPasswd, kGroup);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_THAT(u->additional_gids, ElementsAre(10u, 29u, 50u, 4000u, 0u));
  EXPECT_THAT(ResolveUser("app", {"nosuch"}, kPasswd, kGroup).status().message(),
              HasSubstr("unable to find group nosuch"));
}

TEST(BuildOciSpec, UserFromSpecOrImage) {
  OciSpecInputs in = MakeInputs();
  in.etc_passwd = kPasswd;
  in.etc_group = kGroup;
  in.image.user = "daemon";
  json s = Build(in);
  EXPECT_EQ(s["process"]["user"]["uid"], 1);
  EXPECT_EQ(s["process"]["user"]["gid"], 1);
  EXPECT_FALSE(s["process"]["user"].contains("additionalGids"));
  Spec(in).set_user("app");
  Spec(in).add_groups("staff");
  s = Build(in);
  EXPECT_EQ(s["process"]["user"]["uid"], 1000);
  EXPECT_EQ(s["process"]["user"]["gid"], 1001);
  EXPECT_EQ(s["process"]["user"]["additionalGids"], json({10, 29, 50}));
  Spec(in).set_user("ghost");
  EXPECT_THAT(BuildError(in).message(), HasSubstr("unable to find user ghost"));
}

// ----- cwd, terminal, root -------------------------------------------------------------------

TEST(BuildOciSpec, WorkingDirectory) {
  OciSpecInputs in = MakeInputs();
  EXPECT_EQ(Build(in)["process"]["cwd"], "/");
  in.image.working_dir = "/srv/app/";
  EXPECT_EQ(Build(in)["process"]["cwd"], "/srv/app");
  Spec(in).set_dir("/work");
  EXPECT_EQ(Build(in)["process"]["cwd"], "/work");
  Spec(in).set_dir("relative");
  EXPECT_THAT(BuildError(in).message(), HasSubstr("must be an absolute path"));
}

TEST(BuildOciSpec, TerminalRootAndVersion) {
  OciSpecInputs in = MakeInputs();
  json s = Build(in);
  EXPECT_EQ(s["ociVersion"], "1.0.2-dev");
  EXPECT_EQ(s["process"]["terminal"], false);
  EXPECT_EQ(s["root"]["path"], "/var/lib/shoal/rootfs");
  EXPECT_EQ(s["root"]["readonly"], false);
  EXPECT_EQ(s["process"]["noNewPrivileges"], true);
  Spec(in).set_tty(true);
  Spec(in).set_read_only(true);
  in.rootfs_path.clear();
  s = Build(in);
  EXPECT_EQ(s["process"]["terminal"], true);
  EXPECT_EQ(s["root"]["path"], "rootfs");
  EXPECT_EQ(s["root"]["readonly"], true);
}

TEST(BuildOciSpec, MissingContainerSpecOrId) {
  OciSpecInputs in = MakeInputs();
  in.task.mutable_spec()->clear_container_spec();
  EXPECT_THAT(BuildError(in).message(), HasSubstr("no container spec"));
  in = MakeInputs();
  in.task.clear_id();
  EXPECT_EQ(BuildError(in).code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuildOciSpec, SerializedFormParsesBack) {
  OciSpecInputs in = MakeInputs();
  auto text = BuildOciSpec(in);
  ASSERT_TRUE(text.ok()) << text.status();
  json back = json::parse(*text);
  EXPECT_EQ(back, Build(in));
  EXPECT_STREQ(kOciSpecTypeUrl, "types.containerd.io/opencontainers/runtime-spec/1/Spec");
}

// ----- capabilities --------------------------------------------------------------------------

TEST(Capabilities, DockerDefaultsInBoundingEffectivePermittedOnly) {
  json s = Build(MakeInputs());
  const json& caps = s["process"]["capabilities"];
  EXPECT_THAT(Strings(caps["bounding"]),
              ElementsAre("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                          "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                          "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"));
  EXPECT_EQ(caps["effective"], caps["bounding"]);
  EXPECT_EQ(caps["permitted"], caps["bounding"]);
  EXPECT_FALSE(caps.contains("inheritable"));
  EXPECT_FALSE(caps.contains("ambient"));
}

TEST(Capabilities, AddAndDropNormaliseNames) {
  auto caps = EffectiveCapabilities({"net_admin", "CAP_SYS_TIME", "NET_ADMIN"},
                                    {"cap_chown", "MKNOD", "SETUID", "sys_admin"});
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_THAT(*caps, ElementsAre("CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_NET_RAW",
                                 "CAP_SETGID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                                 "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE", "CAP_NET_ADMIN",
                                 "CAP_SYS_TIME"));
}

TEST(Capabilities, AddAllKeepsEverythingButTheDropped) {
  auto caps = EffectiveCapabilities({"ALL"}, {"SYS_ADMIN"});
  ASSERT_TRUE(caps.ok());
  EXPECT_EQ(caps->size(), AllCapabilities().size() - 1);
  EXPECT_THAT(*caps, testing::Not(testing::Contains("CAP_SYS_ADMIN")));
  EXPECT_THAT(*caps, testing::Contains("CAP_CHECKPOINT_RESTORE"));
}

TEST(Capabilities, DropAllKeepsOnlyTheAdded) {
  auto caps = EffectiveCapabilities({"CAP_NET_BIND_SERVICE"}, {"all"});
  ASSERT_TRUE(caps.ok());
  EXPECT_THAT(*caps, ElementsAre("CAP_NET_BIND_SERVICE"));
  auto none = EffectiveCapabilities({}, {"ALL"});
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
}

TEST(Capabilities, UnknownNameIsAnError) {
  auto caps = EffectiveCapabilities({"CAP_FLY"}, {});
  EXPECT_EQ(caps.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(caps.status().message(), HasSubstr("CAP_FLY"));
  EXPECT_THAT(caps.status().message(), HasSubstr("capability_add"));
  OciSpecInputs in = MakeInputs();
  Spec(in).add_capability_drop("bogus");
  EXPECT_THAT(BuildError(in).message(), HasSubstr("capability_drop"));
}

// ----- rlimits -------------------------------------------------------------------------------

TEST(Rlimits, DefaultNofile) {
  json s = Build(MakeInputs());
  EXPECT_EQ(s["process"]["rlimits"],
            json::parse(R"([{"type":"RLIMIT_NOFILE","soft":1048576,"hard":1048576}])"));
}

TEST(Rlimits, ZeroDefaultInheritsTheRuntimes) {
  OciSpecInputs in = MakeInputs();
  in.default_nofile = 0;
  EXPECT_EQ(Build(in)["process"]["rlimits"], json::array());
  in.default_nofile = 20000;
  EXPECT_EQ(Build(in)["process"]["rlimits"][0]["hard"], 20000);
}

TEST(Rlimits, UlimitsOverrideAndAdd) {
  OciSpecInputs in = MakeInputs();
  auto* nofile = Spec(in).add_ulimits();
  nofile->set_name("nofile");
  nofile->set_soft(1024);
  nofile->set_hard(4096);
  auto* core = Spec(in).add_ulimits();
  core->set_name("CORE");
  core->set_soft(-1);
  core->set_hard(-1);
  json s = Build(in);
  EXPECT_EQ(s["process"]["rlimits"], json::parse(R"([
      {"type":"RLIMIT_CORE","soft":18446744073709551615,"hard":18446744073709551615},
      {"type":"RLIMIT_NOFILE","soft":1024,"hard":4096}])"));
}

TEST(Rlimits, BadUlimits) {
  OciSpecInputs in = MakeInputs();
  auto* u = Spec(in).add_ulimits();
  u->set_name("nproc");
  u->set_soft(10);
  u->set_hard(5);
  EXPECT_THAT(BuildError(in).message(), HasSubstr("above the hard limit"));
  u->set_name("as");
  u->set_soft(1);
  EXPECT_THAT(BuildError(in).message(), HasSubstr("unknown ulimit \"as\""));
}

// ----- namespaces, security, cgroups ---------------------------------------------------------

TEST(BuildOciSpec, NamespacesWithNewOrJoinedNetwork) {
  OciSpecInputs in = MakeInputs();
  json s = Build(in);
  EXPECT_EQ(s["linux"]["namespaces"], json::parse(R"([{"type":"pid"},{"type":"ipc"},
      {"type":"uts"},{"type":"mount"},{"type":"cgroup"},{"type":"network"}])"));
  in.netns_path = "/var/run/netns/t1";
  s = Build(in);
  EXPECT_EQ(s["linux"]["namespaces"][5], json::parse(R"({"type":"network",
      "path":"/var/run/netns/t1"})"));
  in.netns_path = "netns/t1";
  EXPECT_THAT(BuildError(in).message(), HasSubstr("must be absolute"));
}

TEST(BuildOciSpec, MaskedAndReadonlyPaths) {
  json s = Build(MakeInputs());
  EXPECT_THAT(Strings(s["linux"]["maskedPaths"]),
              testing::IsSupersetOf({"/proc/kcore", "/proc/keys", "/proc/timer_list",
                                     "/proc/sched_debug", "/sys/firmware", "/proc/acpi"}));
  EXPECT_THAT(
      Strings(s["linux"]["readonlyPaths"]),
      ElementsAre("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"));
}

TEST(BuildOciSpec, DeviceRulesDenyAllThenAllowTheDefaults) {
  json devices = Build(MakeInputs())["linux"]["resources"]["devices"];
  EXPECT_EQ(devices[0], json::parse(R"({"allow":false,"access":"rwm"})"));
  auto allowed = [&devices](int major, int minor) {
    for (const json& d : devices) {
      if (d["allow"] == true && d.value("major", -1) == major && d.value("minor", -1) == minor &&
          d["access"] == "rwm") {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(allowed(1, 3));     // null
  EXPECT_TRUE(allowed(1, 5));     // zero
  EXPECT_TRUE(allowed(1, 7));     // full
  EXPECT_TRUE(allowed(1, 8));     // random
  EXPECT_TRUE(allowed(1, 9));     // urandom
  EXPECT_TRUE(allowed(5, 0));     // tty
  EXPECT_TRUE(allowed(5, 2));     // ptmx
  EXPECT_TRUE(allowed(136, -1));  // pts
  EXPECT_FALSE(allowed(8, 0));    // a disk
}

TEST(BuildOciSpec, CgroupsPath) {
  OciSpecInputs in = MakeInputs();
  EXPECT_EQ(Build(in)["linux"]["cgroupsPath"], "/shoal/x1y2z3w4v5u6t7s8r9q0");
  in.cgroup_parent = "custom/parent/";
  EXPECT_EQ(Build(in)["linux"]["cgroupsPath"], "/custom/parent/x1y2z3w4v5u6t7s8r9q0");
  in.cgroup_parent = "";
  EXPECT_EQ(Build(in)["linux"]["cgroupsPath"], "/x1y2z3w4v5u6t7s8r9q0");
}

TEST(Resources, LimitsReservationAndPids) {
  OciSpecInputs in = MakeInputs();
  auto* r = in.task.mutable_spec()->mutable_resources();
  r->mutable_limits()->set_nano_cpus(1500000000);
  r->mutable_limits()->set_memory_bytes(256 << 20);
  r->mutable_reservations()->set_memory_bytes(128 << 20);
  r->set_pids_limit(100);
  json res = Build(in)["linux"]["resources"];
  EXPECT_EQ(res["cpu"], json::parse(R"({"quota":150000,"period":100000})"));
  EXPECT_EQ(res["memory"]["limit"], 256 << 20);
  EXPECT_EQ(res["memory"]["reservation"], 128 << 20);
  EXPECT_EQ(res["pids"]["limit"], 100);
}

TEST(Resources, NoneMeansNoLimits) {
  json res = Build(MakeInputs())["linux"]["resources"];
  EXPECT_FALSE(res.contains("cpu"));
  EXPECT_FALSE(res.contains("memory"));
  EXPECT_FALSE(res.contains("pids"));
}

TEST(Resources, OutOfBoundsAreErrors) {
  OciSpecInputs in = MakeInputs();
  auto* r = in.task.mutable_spec()->mutable_resources();
  r->mutable_limits()->set_memory_bytes(1 << 20);
  EXPECT_THAT(BuildError(in).message(), HasSubstr("minimum of 6 MiB"));
  r->mutable_limits()->set_memory_bytes(64 << 20);
  r->mutable_reservations()->set_memory_bytes(128 << 20);
  EXPECT_THAT(BuildError(in).message(), HasSubstr("above the memory limit"));
  r->mutable_reservations()->set_memory_bytes(0);
  r->mutable_limits()->set_nano_cpus(1000000);  // 0.001 CPU
  EXPECT_THAT(BuildError(in).message(), HasSubstr("minimum of 0.01 CPU"));
  r->mutable_limits()->set_nano_cpus(10000000);  // 0.01 CPU
  EXPECT_EQ(Build(in)["linux"]["resources"]["cpu"]["quota"], 1000);
}

TEST(BuildOciSpec, Sysctls) {
  OciSpecInputs in = MakeInputs();
  (*Spec(in).mutable_sysctls())["net.ipv4.ip_forward"] = "1";
  (*Spec(in).mutable_sysctls())["kernel.shmmax"] = "65536";
  (*Spec(in).mutable_sysctls())["fs.mqueue.msg_max"] = "20";
  json s = Build(in);
  EXPECT_EQ(s["linux"]["sysctl"], json::parse(R"({"net.ipv4.ip_forward":"1",
      "kernel.shmmax":"65536","fs.mqueue.msg_max":"20"})"));
  (*Spec(in).mutable_sysctls())["vm.swappiness"] = "1";
  EXPECT_THAT(BuildError(in).message(), HasSubstr("sysctl vm.swappiness is not allowed"));
  EXPECT_FALSE(Build(MakeInputs())["linux"].contains("sysctl"));
}

TEST(BuildOciSpec, LabelsBecomeAnnotations) {
  OciSpecInputs in = MakeInputs();
  in.image.labels = {{"maintainer", "img"}, {"version", "1"}};
  (*Spec(in).mutable_labels())["version"] = "2";
  json a = Build(in)["annotations"];
  EXPECT_EQ(a["maintainer"], "img");
  EXPECT_EQ(a["version"], "2");
  EXPECT_EQ(a["com.docker.swarm.task.id"], "x1y2z3w4v5u6t7s8r9q0");
  EXPECT_EQ(a["com.docker.swarm.task.name"], "web.2.x1y2z3w4v5u6t7s8r9q0");
  EXPECT_EQ(a["com.docker.swarm.service.name"], "web");
  EXPECT_EQ(a["com.docker.swarm.service.id"], "svc123");
  EXPECT_EQ(a["com.docker.swarm.node.id"], "node9");
}

TEST(BuildOciSpec, AShimGroupBecomesTheRuncShimsGroupingAnnotation) {
  OciSpecInputs in = MakeInputs();
  EXPECT_FALSE(Build(in)["annotations"].contains(kShimGroupAnnotation));
  in.shim_group = "shoal-svc123-1";
  EXPECT_EQ(Build(in)["annotations"][kShimGroupAnnotation], "shoal-svc123-1");
}

TEST(ShimGroup, GroupsConsecutiveSlotsOfOneService) {
  api::Task task;
  task.set_service_id("svc");
  task.set_slot(1);
  EXPECT_EQ(ShimGroup(task, 8), "shoal-svc-1");
  task.set_slot(8);
  EXPECT_EQ(ShimGroup(task, 8), "shoal-svc-1");
  task.set_slot(9);
  EXPECT_EQ(ShimGroup(task, 8), "shoal-svc-2");
  // Off, global tasks (slot 0) and tasks without a service get a shim of their own.
  EXPECT_EQ(ShimGroup(task, 1), "");
  EXPECT_EQ(ShimGroup(task, 0), "");
  task.set_slot(0);
  EXPECT_EQ(ShimGroup(task, 8), "");
  task.set_slot(3);
  task.clear_service_id();
  EXPECT_EQ(ShimGroup(task, 8), "");
}

// ----- mounts --------------------------------------------------------------------------------

api::Mount* AddMount(OciSpecInputs& in, api::Mount::Type type, const std::string& source,
                     const std::string& target) {
  api::Mount* m = Spec(in).add_mounts();
  m->set_type(type);
  m->set_source(source);
  m->set_target(target);
  return m;
}

TEST(Mounts, DefaultsLikeDocker) {
  json s = Build(MakeInputs());
  EXPECT_THAT(Destinations(s), ElementsAre("/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup",
                                           "/dev/mqueue", "/dev/shm"));
  EXPECT_THAT(Strings(MountAt(s, "/dev/shm")["options"]), testing::Contains("size=65536k"));
  EXPECT_THAT(Strings(MountAt(s, "/sys")["options"]), testing::Contains("ro"));
  EXPECT_THAT(Strings(MountAt(s, "/sys/fs/cgroup")["options"]), testing::Contains("ro"));
  OciSpecInputs in = MakeInputs();
  in.shm_size_bytes = 128 << 20;
  EXPECT_THAT(Strings(MountAt(Build(in), "/dev/shm")["options"]),
              testing::Contains("size=131072k"));
}

TEST(Mounts, BindOptions) {
  OciSpecInputs in = MakeInputs();
  AddMount(in, api::Mount::BIND, "/srv/data/", "/data");
  api::Mount* ro = AddMount(in, api::Mount::BIND, "/etc/ssl", "/ssl");
  ro->set_readonly(true);
  ro->mutable_bind_options()->set_non_recursive(true);
  ro->mutable_bind_options()->set_propagation(api::Mount::BindOptions::PRIVATE);
  json s = Build(in);
  EXPECT_EQ(MountAt(s, "/data"), json::parse(R"({"destination":"/data","type":"bind",
      "source":"/srv/data","options":["rbind","rprivate"]})"));
  EXPECT_THAT(Strings(MountAt(s, "/ssl")["options"]), ElementsAre("bind", "private", "ro"));
  EXPECT_FALSE(s["linux"].contains("rootfsPropagation"));
}

TEST(Mounts, SharedAndSlavePropagationSetTheRootfsPropagation) {
  OciSpecInputs in = MakeInputs();
  api::Mount* slave = AddMount(in, api::Mount::BIND, "/mnt/a", "/a");
  slave->mutable_bind_options()->set_propagation(api::Mount::BindOptions::RSLAVE);
  EXPECT_EQ(Build(in)["linux"]["rootfsPropagation"], "rslave");
  api::Mount* shared = AddMount(in, api::Mount::BIND, "/mnt/b", "/b");
  shared->mutable_bind_options()->set_propagation(api::Mount::BindOptions::RSHARED);
  json s = Build(in);
  EXPECT_EQ(s["linux"]["rootfsPropagation"], "shared");
  EXPECT_THAT(Strings(MountAt(s, "/b")["options"]), ElementsAre("rbind", "rshared"));
}

TEST(Mounts, BadBindMounts) {
  OciSpecInputs in = MakeInputs();
  AddMount(in, api::Mount::BIND, "relative/dir", "/data");
  EXPECT_THAT(BuildError(in).message(),
              HasSubstr("bind source path \"relative/dir\" (for /data) must be an absolute path"));
  in = MakeInputs();
  AddMount(in, api::Mount::BIND, "", "/data");
  EXPECT_THAT(BuildError(in).message(), HasSubstr("must be an absolute path"));
  in = MakeInputs();
  AddMount(in, api::Mount::BIND, "/srv", "data");
  EXPECT_THAT(BuildError(in).message(), HasSubstr("target \"data\" must be an absolute path"));
  in = MakeInputs();
  AddMount(in, api::Mount::BIND, "/srv", "/../");
  EXPECT_THAT(BuildError(in).message(), HasSubstr("is the root"));
  in = MakeInputs();
  AddMount(in, api::Mount::BIND, "/srv", "");
  EXPECT_THAT(BuildError(in).message(), HasSubstr("has no target"));
}

TEST(Mounts, DuplicateTargetsAreAnError) {
  OciSpecInputs in = MakeInputs();
  AddMount(in, api::Mount::BIND, "/a", "/data");
  AddMount(in, api::Mount::TMPFS, "", "/data/");
  EXPECT_THAT(BuildError(in).message(), HasSubstr("duplicate mount point /data"));
}

TEST(Mounts, NamedAndAnonymousVolumes) {
  OciSpecInputs in = MakeInputs();
  api::Mount* named = AddMount(in, api::Mount::VOLUME, "dbdata", "/var/lib/db");
  named->set_readonly(true);
  named->mutable_volume_options()->set_nocopy(true);
  (*named->mutable_volume_options()->mutable_labels())["k"] = "v";
  AddMount(in, api::Mount::VOLUME, "", "/cache");
  json s = Build(in);
  EXPECT_EQ(MountAt(s, "/var/lib/db"), json::parse(R"({"destination":"/var/lib/db",
      "type":"bind","source":"/var/lib/shoal/volumes/dbdata/_data",
      "options":["rbind","rprivate","ro"]})"));
  EXPECT_EQ(MountAt(s, "/cache")["source"],
            "/var/lib/shoal/volumes/x1y2z3w4v5u6t7s8r9q0-anon-1/_data");

  auto plan = PlanVolumes(in.task, in.state_dir_volumes);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 2u);
  EXPECT_EQ((*plan)[0].name, "dbdata");
  EXPECT_FALSE((*plan)[0].anonymous);
  EXPECT_TRUE((*plan)[0].readonly);
  EXPECT_TRUE((*plan)[0].nocopy);
  EXPECT_EQ((*plan)[0].labels.at("k"), "v");
  EXPECT_EQ((*plan)[0].target, "/var/lib/db");
  EXPECT_TRUE((*plan)[1].anonymous);
  EXPECT_EQ((*plan)[1].host_path, "/var/lib/shoal/volumes/x1y2z3w4v5u6t7s8r9q0-anon-1/_data");
}

TEST(Mounts, VolumeErrors) {
  OciSpecInputs in = MakeInputs();
  api::Mount* m = AddMount(in, api::Mount::VOLUME, "data", "/data");
  m->mutable_volume_options()->mutable_driver_config()->set_name("nfs-plugin");
  EXPECT_THAT(BuildError(in).message(), HasSubstr("volume driver \"nfs-plugin\""));
  m->mutable_volume_options()->mutable_driver_config()->set_name("local");
  (*m->mutable_volume_options()->mutable_driver_config()->mutable_options())["type"] = "nfs";
  EXPECT_THAT(BuildError(in).message(), HasSubstr("options"));
  m->mutable_volume_options()->clear_driver_config();
  m->set_source("/abs/path");
  EXPECT_THAT(BuildError(in).message(), HasSubstr("invalid volume name \"/abs/path\""));
  m->set_source("ok-name");
  in.state_dir_volumes.clear();
  EXPECT_EQ(BuildError(in).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Mounts, Tmpfs) {
  OciSpecInputs in = MakeInputs();
  api::Mount* m = AddMount(in, api::Mount::TMPFS, "", "/scratch");
  m->mutable_tmpfs_options()->set_size_bytes(1 << 20);
  m->mutable_tmpfs_options()->set_mode(01777);
  api::Mount* plain = AddMount(in, api::Mount::TMPFS, "", "/plain");
  plain->set_readonly(true);
  json s = Build(in);
  EXPECT_EQ(MountAt(s, "/scratch"), json::parse(R"({"destination":"/scratch","type":"tmpfs",
      "source":"tmpfs","options":["noexec","nosuid","nodev","rprivate","size=1048576",
      "mode=1777"]})"));
  EXPECT_THAT(Strings(MountAt(s, "/plain")["options"]),
              ElementsAre("noexec", "nosuid", "nodev", "rprivate", "ro"));
  m->mutable_tmpfs_options()->set_mode(070000);
  EXPECT_THAT(BuildError(in).message(), HasSubstr("permission bits"));
}

TEST(Mounts, SpecMountsReplaceDefaultsAtTheSameTarget) {
  OciSpecInputs in = MakeInputs();
  AddMount(in, api::Mount::TMPFS, "", "/dev/shm")->mutable_tmpfs_options()->set_size_bytes(1 << 30);
  json s = Build(in);
  const std::vector<std::string> dests = Destinations(s);
  EXPECT_EQ(std::count(dests.begin(), dests.end(), "/dev/shm"), 1);
  EXPECT_EQ(MountAt(s, "/dev/shm")["type"], "tmpfs");
  EXPECT_THAT(Strings(MountAt(s, "/dev/shm")["options"]), testing::Contains("size=1073741824"));

  OciSpecInputs dev = MakeInputs();
  AddMount(dev, api::Mount::BIND, "/dev", "/dev");
  EXPECT_THAT(Destinations(Build(dev)), ElementsAre("/proc", "/sys", "/sys/fs/cgroup", "/dev"));
}

TEST(Mounts, SortedByDepthAfterTheDefaults) {
  OciSpecInputs in = MakeInputs();
  AddMount(in, api::Mount::BIND, "/h/c", "/a/b/c");
  AddMount(in, api::Mount::BIND, "/h/a", "/a");
  AddMount(in, api::Mount::BIND, "/h/x", "/x/y");
  AddMount(in, api::Mount::BIND, "/h/b", "/b");
  std::vector<std::string> d = Destinations(Build(in));
  EXPECT_THAT(std::vector<std::string>(d.begin() + 7, d.end()),
              ElementsAre("/a", "/b", "/x/y", "/a/b/c"));
}

TEST(Mounts, SecretsAndConfigs) {
  OciSpecInputs in = MakeInputs();
  auto* s1 = Spec(in).add_secrets();
  s1->set_secret_id("sid1");
  s1->set_secret_name("db_pass");
  auto* s2 = Spec(in).add_secrets();
  s2->set_secret_id("sid2");
  s2->set_secret_name("tls");
  s2->mutable_file()->set_name("/etc/ssl/key.pem");
  auto* s3 = Spec(in).add_secrets();
  s3->set_secret_id("sid3");
  s3->set_secret_name("x");
  s3->mutable_file()->set_name("app/token");
  auto* c1 = Spec(in).add_configs();
  c1->set_config_id("cid1");
  c1->set_config_name("nginx.conf");
  auto* c2 = Spec(in).add_configs();
  c2->set_config_id("cid2");
  c2->set_config_name("other");
  c2->mutable_file()->set_name("/etc/app/app.yml");
  json s = Build(in);
  EXPECT_EQ(MountAt(s, "/run/secrets/db_pass"), json::parse(R"({
      "destination":"/run/secrets/db_pass","type":"bind",
      "source":"/run/shoal/secrets/x1/secret-sid1","options":["rbind","rprivate","ro"]})"));
  EXPECT_EQ(MountAt(s, "/etc/ssl/key.pem")["source"], "/run/shoal/secrets/x1/secret-sid2");
  EXPECT_EQ(MountAt(s, "/run/secrets/app/token")["source"], "/run/shoal/secrets/x1/secret-sid3");
  EXPECT_EQ(MountAt(s, "/nginx.conf")["source"], "/run/shoal/secrets/x1/config-cid1");
  EXPECT_EQ(MountAt(s, "/etc/app/app.yml")["source"], "/run/shoal/secrets/x1/config-cid2");
  EXPECT_THAT(Strings(MountAt(s, "/etc/app/app.yml")["options"]), testing::Contains("ro"));
  EXPECT_EQ(SecretHostPath("/d/", *s1), "/d/secret-sid1");
  EXPECT_EQ(ConfigHostPath("/d", *c1), "/d/config-cid1");
}

TEST(Mounts, BadSecretTargets) {
  api::SecretReference ref;
  ref.set_secret_id("s");
  ref.set_secret_name("n");
  ref.mutable_file()->set_name("../../etc/passwd");
  EXPECT_THAT(SecretTarget(ref).status().message(), HasSubstr("\"..\""));
  ref.mutable_file()->set_name("/");
  EXPECT_THAT(SecretTarget(ref).status().message(), HasSubstr("must name a file"));
  api::ConfigReference cref;
  cref.set_config_id("c");
  EXPECT_THAT(ConfigTarget(cref).status().message(), HasSubstr("neither a name nor a target"));

  OciSpecInputs in = MakeInputs();
  auto* s1 = Spec(in).add_secrets();
  s1->set_secret_id("a");
  s1->set_secret_name("same");
  auto* s2 = Spec(in).add_secrets();
  s2->set_secret_id("b");
  s2->mutable_file()->set_name("/run/secrets/same");
  EXPECT_THAT(BuildError(in).message(), HasSubstr("duplicate mount point /run/secrets/same"));
  in = MakeInputs();
  Spec(in).add_secrets()->set_secret_name("x");
  in.secrets_dir.clear();
  EXPECT_EQ(BuildError(in).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Mounts, HostsResolvConfAndHostnameFiles) {
  OciSpecInputs in = MakeInputs();
  in.hosts_path = "/run/shoal/t/hosts";
  in.resolv_conf_path = "/run/shoal/t/resolv.conf";
  in.hostname_path = "/run/shoal/t/hostname";
  json s = Build(in);
  EXPECT_EQ(MountAt(s, "/etc/hosts"), json::parse(R"({"destination":"/etc/hosts","type":"bind",
      "source":"/run/shoal/t/hosts","options":["rbind","rprivate","rw"]})"));
  EXPECT_EQ(MountAt(s, "/etc/resolv.conf")["source"], "/run/shoal/t/resolv.conf");
  EXPECT_EQ(MountAt(s, "/etc/hostname")["source"], "/run/shoal/t/hostname");
  // A read-only root makes them read-only; the task's own mount there wins.
  Spec(in).set_read_only(true);
  AddMount(in, api::Mount::BIND, "/srv/my-hosts", "/etc/hosts");
  s = Build(in);
  EXPECT_EQ(MountAt(s, "/etc/hosts")["source"], "/srv/my-hosts");
  EXPECT_THAT(Strings(MountAt(s, "/etc/resolv.conf")["options"]), testing::Contains("ro"));
  // Not given: not mounted.
  EXPECT_TRUE(MountAt(Build(MakeInputs()), "/etc/hosts").is_null());
}

// ----- stop ----------------------------------------------------------------------------------

TEST(Stop, ParseSignal) {
  EXPECT_EQ(*ParseSignal("SIGTERM"), SIGTERM);
  EXPECT_EQ(*ParseSignal("TERM"), SIGTERM);
  EXPECT_EQ(*ParseSignal("sigquit"), SIGQUIT);
  EXPECT_EQ(*ParseSignal("15"), 15);
  EXPECT_EQ(*ParseSignal("SIGKILL"), 9);
  EXPECT_EQ(*ParseSignal("SIGUSR1"), SIGUSR1);
  EXPECT_EQ(*ParseSignal("SIGRTMIN"), 34);
  EXPECT_EQ(*ParseSignal("SIGRTMIN+3"), 37);
  EXPECT_EQ(*ParseSignal("RTMAX-1"), 63);
  EXPECT_EQ(*ParseSignal("64"), 64);
  for (const char* bad : {"", "0", "65", "-1", "SIGNOPE", "RTMIN+31", "TERM2"}) {
    EXPECT_EQ(ParseSignal(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(ParseSignal("SIGNOPE").status().message(), HasSubstr("invalid signal \"SIGNOPE\""));
}

TEST(Stop, SignalFromSpecThenImageThenSigterm) {
  api::ContainerSpec spec;
  ImageConfig image;
  EXPECT_EQ(*StopSignalFor(spec, image), SIGTERM);
  image.stop_signal = "SIGQUIT";
  EXPECT_EQ(*StopSignalFor(spec, image), SIGQUIT);
  spec.set_stop_signal("INT");
  EXPECT_EQ(*StopSignalFor(spec, image), SIGINT);
  spec.set_stop_signal("bogus");
  EXPECT_FALSE(StopSignalFor(spec, image).ok());
}

TEST(Stop, Grace) {
  api::ContainerSpec spec;
  EXPECT_EQ(StopGrace(spec), absl::Seconds(10));
  *spec.mutable_stop_grace_period() = Proto(3);
  EXPECT_EQ(StopGrace(spec), absl::Seconds(3));
  spec.mutable_stop_grace_period()->set_seconds(0);
  spec.mutable_stop_grace_period()->set_nanos(500000000);
  EXPECT_EQ(StopGrace(spec), absl::Milliseconds(500));
  *spec.mutable_stop_grace_period() = Proto(0);
  EXPECT_EQ(StopGrace(spec), absl::ZeroDuration());
  *spec.mutable_stop_grace_period() = Proto(-4);
  EXPECT_EQ(StopGrace(spec), absl::ZeroDuration());
}

// ----- health --------------------------------------------------------------------------------

TEST(Health, NoneConfigured) {
  auto h = EffectiveHealthcheck(api::ContainerSpec(), ImageConfig());
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->has_value());
}

TEST(Health, ImageCheckWithDefaults) {
  ImageConfig image;
  image.healthcheck = ImageHealthcheck{{"CMD", "/bin/check", "--quick"}};
  auto h = EffectiveHealthcheck(api::ContainerSpec(), image);
  ASSERT_TRUE(h.ok() && h->has_value()) << h.status();
  EXPECT_THAT((*h)->args, ElementsAre("/bin/check", "--quick"));
  EXPECT_EQ((*h)->interval, absl::Seconds(30));
  EXPECT_EQ((*h)->timeout, absl::Seconds(30));
  EXPECT_EQ((*h)->start_period, absl::ZeroDuration());
  EXPECT_EQ((*h)->start_interval, absl::Seconds(5));
  EXPECT_EQ((*h)->retries, 3);
}

TEST(Health, SpecOptionsOverTheImageCheck) {
  ImageConfig image;
  ImageHealthcheck ih;
  ih.test = {"CMD-SHELL", "curl -f localhost"};
  ih.interval = absl::Seconds(7);
  ih.timeout = absl::Seconds(2);
  ih.retries = 5;
  image.healthcheck = ih;
  api::ContainerSpec spec;
  *spec.mutable_healthcheck()->mutable_interval() = Proto(11);
  *spec.mutable_healthcheck()->mutable_start_period() = Proto(20);
  auto h = EffectiveHealthcheck(spec, image);
  ASSERT_TRUE(h.ok() && h->has_value()) << h.status();
  EXPECT_THAT((*h)->args, ElementsAre("/bin/sh", "-c", "curl -f localhost"));
  EXPECT_EQ((*h)->interval, absl::Seconds(11));  // spec
  EXPECT_EQ((*h)->timeout, absl::Seconds(2));    // image
  EXPECT_EQ((*h)->start_period, absl::Seconds(20));
  EXPECT_EQ((*h)->retries, 5);
  spec.mutable_healthcheck()->set_retries(1);
  spec.mutable_healthcheck()->add_test("CMD");
  spec.mutable_healthcheck()->add_test("/ok");
  h = EffectiveHealthcheck(spec, image);
  ASSERT_TRUE(h.ok() && h->has_value());
  EXPECT_THAT((*h)->args, ElementsAre("/ok"));
  EXPECT_EQ((*h)->retries, 1);
}

TEST(Health, NoneDisablesTheImageCheck) {
  ImageConfig image;
  image.healthcheck = ImageHealthcheck{{"CMD", "/bin/check"}};
  api::ContainerSpec spec;
  spec.mutable_healthcheck()->add_test("NONE");
  auto h = EffectiveHealthcheck(spec, image);
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->has_value());
  image.healthcheck = ImageHealthcheck{{"NONE"}};
  h = EffectiveHealthcheck(api::ContainerSpec(), image);
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->has_value());
}

TEST(Health, ShellFromTheImage) {
  ImageConfig image;
  image.shell = {"/bin/bash", "-lc"};
  api::ContainerSpec spec;
  spec.mutable_healthcheck()->add_test("CMD-SHELL");
  spec.mutable_healthcheck()->add_test("pgrep app");
  auto h = EffectiveHealthcheck(spec, image);
  ASSERT_TRUE(h.ok() && h->has_value());
  EXPECT_THAT((*h)->args, ElementsAre("/bin/bash", "-lc", "pgrep app"));
}

TEST(Health, BadTests) {
  api::ContainerSpec spec;
  spec.mutable_healthcheck()->add_test("RUN");
  spec.mutable_healthcheck()->add_test("x");
  EXPECT_THAT(EffectiveHealthcheck(spec, ImageConfig()).status().message(),
              HasSubstr("unknown health check type \"RUN\""));
  spec.mutable_healthcheck()->clear_test();
  spec.mutable_healthcheck()->add_test("CMD");
  EXPECT_THAT(EffectiveHealthcheck(spec, ImageConfig()).status().message(),
              HasSubstr("has no command"));
  spec.mutable_healthcheck()->clear_test();
  spec.mutable_healthcheck()->add_test("CMD-SHELL");
  EXPECT_THAT(EffectiveHealthcheck(spec, ImageConfig()).status().message(),
              HasSubstr("has no command"));
}

// ----- templates -----------------------------------------------------------------------------

api::Node MakeNode() {
  api::Node node;
  node.set_id("node9");
  node.mutable_description()->set_hostname("worker-1");
  node.mutable_description()->mutable_platform()->set_os("linux");
  node.mutable_description()->mutable_platform()->set_architecture("amd64");
  return node;
}

TEST(Template, EveryPlaceholder) {
  api::Task task = MakeTask();
  api::Node node = MakeNode();
  auto e = [&](const char* t) {
    auto v = ExpandTemplate(t, task, node);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::string();
  };
  EXPECT_EQ(e("{{.Service.Name}}-{{.Task.Slot}}"), "web-2");
  EXPECT_EQ(e("{{.Service.ID}}"), "svc123");
  EXPECT_EQ(e("{{.Service.Labels.tier}}"), "front");
  EXPECT_EQ(e("{{index .Service.Labels \"com.example.zone\"}}"), "a");
  EXPECT_EQ(e("{{.Service.Labels.missing}}"), "");
  EXPECT_EQ(e("{{.Node.ID}}/{{.Node.Hostname}}"), "node9/worker-1");
  EXPECT_EQ(e("{{.Node.Platform.OS}}-{{.Node.Platform.Architecture}}"), "linux-amd64");
  EXPECT_EQ(e("{{.Task.ID}}"), "x1y2z3w4v5u6t7s8r9q0");
  EXPECT_EQ(e("{{.Task.Name}}"), "web.2.x1y2z3w4v5u6t7s8r9q0");
  EXPECT_EQ(e("{{ .Task.Slot }}"), "2");
  EXPECT_EQ(e("plain text"), "plain text");
  EXPECT_EQ(e(""), "");
  EXPECT_EQ(e("a } b }} c"), "a } b }} c");
}

TEST(Template, GlobalTasksUseTheNodeAsSlot) {
  api::Task task = MakeTask();
  task.set_slot(0);
  EXPECT_EQ(*ExpandTemplate("{{.Task.Slot}}", task, MakeNode()), "node9");
  EXPECT_EQ(TaskName(task), "web.node9.x1y2z3w4v5u6t7s8r9q0");
  task.mutable_annotations()->set_name("given.name");
  EXPECT_EQ(TaskName(task), "given.name");
}

TEST(Template, UnknownPlaceholderIsAnErrorNamingIt) {
  auto v = ExpandTemplate("{{.Service.Name}}-{{.Task.Bogus}}", MakeTask(), MakeNode());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("{{.Task.Bogus}}"));
  EXPECT_THAT(ExpandTemplate("{{printf \"%d\" 1}}", MakeTask(), MakeNode()).status().message(),
              HasSubstr("unknown template placeholder"));
  EXPECT_THAT(ExpandTemplate("{{.Service.Labels}}", MakeTask(), MakeNode()).status().message(),
              HasSubstr("{{.Service.Labels}}"));
  EXPECT_THAT(ExpandTemplate("x-{{.Task.ID", MakeTask(), MakeNode()).status().message(),
              HasSubstr("unclosed"));
}

TEST(Template, ExpandContainerSpec) {
  api::Task task = MakeTask();
  auto* spec = task.mutable_spec()->mutable_container_spec();
  spec->set_hostname("{{.Service.Name}}-{{.Task.Slot}}");
  spec->add_env("NODE={{.Node.Hostname}}");
  spec->add_args("{{.Task.ID}}");  // Not expanded (SwarmKit does not either).
  api::Mount* m = spec->add_mounts();
  m->set_type(api::Mount::VOLUME);
  m->set_source("data-{{.Task.Slot}}");
  m->set_target("/data/{{.Service.Name}}");
  auto out = ExpandContainerSpec(task, MakeNode());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->hostname(), "web-2");
  EXPECT_EQ(out->env(0), "NODE=worker-1");
  EXPECT_EQ(out->args(0), "{{.Task.ID}}");
  EXPECT_EQ(out->mounts(0).source(), "data-2");
  EXPECT_EQ(out->mounts(0).target(), "/data/web");
  spec->set_hostname("{{.Nope}}");
  EXPECT_FALSE(ExpandContainerSpec(task, MakeNode()).ok());
}

TEST(CleanPath, LikeGo) {
  EXPECT_EQ(CleanPath("/a//b/./c/"), "/a/b/c");
  EXPECT_EQ(CleanPath("/a/b/../c"), "/a/c");
  EXPECT_EQ(CleanPath("/../.."), "/");
  EXPECT_EQ(CleanPath("/"), "/");
  EXPECT_EQ(CleanPath("a/../.."), "..");
  EXPECT_EQ(CleanPath(""), ".");
}

// ----- runc end to end -----------------------------------------------------------------------

std::string FindRunc() {
  for (const char* p :
       {"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/local/bin/runc"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

void WriteFile(const std::string& path, const std::string& data, mode_t mode) {
  std::ofstream f(path, std::ios::binary);
  f << data;
  f.close();
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

// Runs `cmd` through the shell, returning its exit status and what it printed.
int RunShell(const std::string& cmd, std::string* output) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  return ::pclose(p);
}

constexpr int kCapSysResource = 24;

// Whether this process has `bit` in its effective capabilities.
bool HasCapability(int bit) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "CapEff:")) {
      uint64_t caps = std::strtoull(line.substr(7).c_str(), nullptr, 16);
      return (caps >> bit) & 1;
    }
  }
  return false;
}

// Runs specs built by BuildOciSpec with runc, in a bundle whose rootfs holds a static busybox.
// Everything (bundle, runc state, cgroup parent) is the fixture's own and removed in TearDown.
class RuncGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    runc_ = FindRunc();
    SHOAL_REQUIRE(::geteuid() == 0, "needs root to run runc");
    SHOAL_REQUIRE(!runc_.empty(), "runc is not installed");
    SHOAL_REQUIRE(::access("/bin/busybox", X_OK) == 0, "busybox-static is not installed");
    std::string tmpl = "/tmp/shoal-oci-spec-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    static int counter = 0;
    id_ = absl::StrCat("shoal-oci-test-", ::getpid(), "-", ++counter);
    cgroup_parent_ = absl::StrCat("/", id_, "-parent");
    for (const std::string& d :
         {rootfs(), rootfs() + "/bin", rootfs() + "/etc", rootfs() + "/sbin", secrets(), state()}) {
      ASSERT_EQ(::mkdir(d.c_str(), 0755), 0) << d;
    }
    std::string out;
    ASSERT_EQ(RunShell(absl::StrCat("cp /bin/busybox ", rootfs(), "/bin/busybox 2>&1"), &out), 0)
        << out;
    for (const char* applet : {"sh", "id", "cat", "grep", "hostname", "touch", "ps"}) {
      ASSERT_EQ(::symlink("busybox", absl::StrCat(rootfs(), "/bin/", applet).c_str()), 0);
    }
    WriteFile(rootfs() + "/etc/passwd", kEtcPasswd, 0644);
    WriteFile(rootfs() + "/etc/group", kEtcGroup, 0644);
  }

  void TearDown() override {
    if (dir_.empty()) return;
    std::string ignored;
    RunShell(absl::StrCat(runc_, " --root ", state(), " delete -f ", id_, " 2>&1"), &ignored);
    RunShell(absl::StrCat("rm -rf ", dir_), &ignored);
    // runc removes the container's cgroups; the parent it created in each hierarchy is ours.
    RunShell(absl::StrCat("rmdir /sys/fs/cgroup/*", cgroup_parent_, " /sys/fs/cgroup/unified",
                          cgroup_parent_, " 2>/dev/null"),
             &ignored);
  }

  // Inputs for a task running `script` with /bin/busybox sh -c.
  OciSpecInputs Inputs(const std::string& script) {
    OciSpecInputs in;
    in.task = MakeTask();
    in.task.set_id(id_);
    in.image.entrypoint = {"/bin/busybox"};
    auto& spec = Spec(in);
    spec.add_args("sh");
    spec.add_args("-c");
    spec.add_args(script);
    in.rootfs_path = rootfs();
    in.etc_passwd = kEtcPasswd;
    in.etc_group = kEtcGroup;
    in.cgroup_parent = cgroup_parent_;
    // What the executor does: without CAP_SYS_RESOURCE the limit cannot go above its own.
    struct rlimit nofile;
    EXPECT_EQ(::getrlimit(RLIMIT_NOFILE, &nofile), 0);
    if (!HasCapability(kCapSysResource) && nofile.rlim_max < in.default_nofile) {
      in.default_nofile = nofile.rlim_max;
    }
    return in;
  }

  // Writes config.json and runs the container to its end; its output, line by line.
  std::vector<std::string> RunContainer(const OciSpecInputs& in) {
    auto config = BuildOciSpec(in);
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return {};
    WriteFile(dir_ + "/config.json", *config, 0644);
    std::string out;
    const int rc = RunShell(absl::StrCat("timeout 60 ", runc_, " --root ", state(),
                                         " run --bundle ", dir_, " ", id_, " </dev/null 2>&1"),
                            &out);
    EXPECT_EQ(rc, 0) << out << "\nconfig.json: " << *config;
    return absl::StrSplit(out, '\n', absl::SkipEmpty());
  }

  std::string rootfs() const { return dir_ + "/rootfs"; }
  std::string secrets() const { return dir_ + "/secrets"; }
  std::string state() const { return dir_ + "/runc-state"; }

  static constexpr char kEtcPasswd[] =
      "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234::/:/bin/sh\n";
  static constexpr char kEtcGroup[] = "root:x:0:\napp:x:1234:\nextra:x:2000:app\n";

  std::string runc_;
  std::string dir_;
  std::string id_;
  std::string cgroup_parent_;
};

TEST_F(RuncGolden, DefaultsRunAsRootWithNoNewPrivileges) {
  OciSpecInputs in = Inputs("echo ok; id -u; cat /proc/self/status | grep NoNewPrivs");
  EXPECT_THAT(RunContainer(in), ElementsAre("ok", "0", "NoNewPrivs:\t1"));
}

TEST_F(RuncGolden, UserMountsSecretsReadOnlyRootAndLimits) {
  WriteFile(secrets() + "/secret-sid1", "hush\n", 0444);
  WriteFile(dir_ + "/hosts", "127.0.0.1 localhost golden\n", 0644);
  OciSpecInputs in = Inputs(
      "echo ok; id -u; id -G; cat /proc/self/status | grep NoNewPrivs; cat /run/secrets/db; "
      "hostname; grep golden /etc/hosts; echo $GREETING; "
      "touch /tmp/x && echo tmpfs-writable; touch /x 2>/dev/null || echo root-readonly; "
      "cat /sys/fs/cgroup/pids/pids.max; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
      "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us; ulimit -n");
  in.image.env = {"GREETING=from-image"};
  auto& spec = Spec(in);
  spec.set_user("app");
  spec.set_read_only(true);
  auto* secret = spec.add_secrets();
  secret->set_secret_id("sid1");
  secret->set_secret_name("db");
  AddMount(in, api::Mount::TMPFS, "", "/tmp")->mutable_tmpfs_options()->set_size_bytes(1 << 20);
  auto* res = in.task.mutable_spec()->mutable_resources();
  res->mutable_limits()->set_memory_bytes(64 << 20);
  res->mutable_limits()->set_nano_cpus(500000000);
  res->set_pids_limit(64);
  in.hostname = "golden-host";
  in.secrets_dir = secrets();
  in.hosts_path = dir_ + "/hosts";
  EXPECT_THAT(RunContainer(in), ElementsAre("ok", "1234", "1234 2000", "NoNewPrivs:\t1", "hush",
                                            "golden-host", "127.0.0.1 localhost golden",
                                            "from-image", "tmpfs-writable", "root-readonly", "64",
                                            "67108864", "50000", absl::StrCat(in.default_nofile)));
}

// With a static init (Debian's tini package: /usr/bin/tini-static), PID 1 is the init and the
// command runs as its child.
TEST_F(RuncGolden, InitRunsAsPidOne) {
  const char* init = std::getenv("SHOAL_TEST_INIT");
  const std::string init_path = init != nullptr ? init : "/usr/bin/tini-static";
  SHOAL_REQUIRE(::access(init_path.c_str(), X_OK) == 0,
                "no static init at " << init_path << " (apt-get install tini)");
  OciSpecInputs in = Inputs("echo ok; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$");
  ASSERT_EQ(::symlink("busybox", (rootfs() + "/bin/tr").c_str()), 0);
  Spec(in).mutable_init()->set_value(true);
  in.init_path = init_path;
  std::vector<std::string> lines = RunContainer(in);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "ok");
  EXPECT_THAT(lines[1], testing::StartsWith("/sbin/docker-init -- /bin/busybox sh -c"));
  EXPECT_NE(lines[2], "1");
}

}  // namespace
}  // namespace shoal::agent::exec::containerd
