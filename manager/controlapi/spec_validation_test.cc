// ValidateServiceSpec / ValidateSecretSpec / ValidateConfigSpec: a full valid spec passes, and
// every rule refuses with INVALID_ARGUMENT and a message naming the problem.
#include "manager/controlapi/spec_validation.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::manager {
namespace {

using ::testing::HasSubstr;

google::protobuf::Duration Dur(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}

api::ServiceSpec ValidSpec() {
  api::ServiceSpec spec;
  spec.mutable_annotations()->set_name("web");
  spec.mutable_task_template()->mutable_container_spec()->set_image("nginx:1.25");
  spec.mutable_replicated()->set_replicas(3);
  return spec;
}

// Everything set, and valid.
api::ServiceSpec FullSpec() {
  api::ServiceSpec spec = ValidSpec();
  (*spec.mutable_annotations()->mutable_labels())["tier"] = "front";
  api::TaskSpec* t = spec.mutable_task_template();
  api::ContainerSpec* c = t->mutable_container_spec();
  (*c->mutable_labels())["a"] = "b";
  c->add_command("/bin/sh");
  c->add_args("-c");
  c->add_env("A=1");
  c->add_env("B");
  api::Mount* m = c->add_mounts();
  m->set_type(api::Mount::BIND);
  m->set_source("/srv/data");
  m->set_target("/data");
  m->mutable_bind_options()->set_propagation(api::Mount::BindOptions::RSHARED);
  m = c->add_mounts();
  m->set_type(api::Mount::TMPFS);
  m->set_target("/tmp");
  m->mutable_tmpfs_options()->set_size_bytes(1 << 20);
  m->mutable_tmpfs_options()->set_mode(01777);
  m = c->add_mounts();
  m->set_type(api::Mount::VOLUME);
  m->set_source("vol");
  m->set_target("/vol");
  *c->mutable_stop_grace_period() = Dur(20);
  c->set_stop_signal("SIGQUIT");
  api::HealthConfig* h = c->mutable_healthcheck();
  h->add_test("CMD-SHELL");
  h->add_test("curl -f localhost");
  *h->mutable_interval() = Dur(5);
  *h->mutable_timeout() = Dur(1);
  h->set_retries(3);
  *h->mutable_start_period() = Dur(0);
  c->add_hosts("10.0.0.5 db db.local");
  api::SecretReference* sr = c->add_secrets();
  sr->set_secret_name("db-password");
  sr->mutable_file()->set_name("db");
  sr->mutable_file()->set_uid("1000");
  sr->mutable_file()->set_mode(0400);
  api::ConfigReference* cr = c->add_configs();
  cr->set_config_id("cfg1");
  cr->mutable_file()->set_name("/etc/app.conf");
  (*c->mutable_sysctls())["net.core.somaxconn"] = "1024";
  api::ContainerSpec::Ulimit* u = c->add_ulimits();
  u->set_name("nofile");
  u->set_soft(1024);
  u->set_hard(2048);
  api::ResourceRequirements* r = t->mutable_resources();
  r->mutable_limits()->set_nano_cpus(2000000000);
  r->mutable_limits()->set_memory_bytes(512 << 20);
  r->mutable_reservations()->set_nano_cpus(500000000);
  r->mutable_reservations()->set_memory_bytes(128 << 20);
  api::GenericResource* g = r->mutable_reservations()->add_generic();
  g->mutable_discrete()->set_kind("SSD");
  g->mutable_discrete()->set_value(1);
  r->set_pids_limit(100);
  t->mutable_restart_policy()->set_condition(api::RestartPolicy::ON_FAILURE);
  *t->mutable_restart_policy()->mutable_delay() = Dur(3);
  t->mutable_placement()->add_constraints("node.labels.zone==east");
  t->mutable_placement()->add_constraints("node.role != manager");
  t->mutable_placement()->add_preferences()->mutable_spread()->set_spread_descriptor(
      "node.labels.rack");
  t->mutable_placement()->set_max_replicas(2);
  t->add_networks()->set_target("backend");
  t->set_force_update(4);
  api::UpdateConfig* uc = spec.mutable_update_config();
  uc->set_parallelism(2);
  *uc->mutable_delay() = Dur(10);
  uc->set_failure_action(api::UpdateConfig::ROLLBACK);
  uc->set_max_failure_ratio(0.25f);
  uc->set_order(api::UpdateConfig::START_FIRST);
  spec.mutable_rollback_config()->set_failure_action(api::UpdateConfig::CONTINUE);
  spec.mutable_rollback_config()->set_max_failure_ratio(1.0f);
  api::PortConfig* p = spec.mutable_endpoint_spec()->add_ports();
  p->set_target_port(80);
  p->set_published_port(8080);
  p = spec.mutable_endpoint_spec()->add_ports();
  p->set_target_port(53);
  p->set_published_port(8080);
  p->set_protocol(api::PortConfig::UDP);
  p = spec.mutable_endpoint_spec()->add_ports();
  p->set_target_port(443);  // published port picked by the managers
  return spec;
}

TEST(ValidateServiceSpecTest, ValidSpecsPass) {
  EXPECT_TRUE(ValidateServiceSpec(ValidSpec()).ok());
  absl::Status s = ValidateServiceSpec(FullSpec());
  EXPECT_TRUE(s.ok()) << s;
  for (auto mode : {0, 1, 2, 3}) {
    api::ServiceSpec spec = ValidSpec();
    if (mode == 1) spec.mutable_global();
    if (mode == 2) spec.mutable_replicated_job()->set_total_completions(5);
    if (mode == 3) spec.mutable_global_job();
    EXPECT_TRUE(ValidateServiceSpec(spec).ok()) << ServiceModeName(spec);
  }
  // Zero replicas are fine (a stopped service); so are names at the length limit.
  api::ServiceSpec spec = ValidSpec();
  spec.mutable_replicated()->set_replicas(0);
  spec.mutable_annotations()->set_name(std::string(63, 'a'));
  EXPECT_TRUE(ValidateServiceSpec(spec).ok());
  // Jobs may use restart condition ANY (what an unset condition reads as): it means on-failure.
  spec = ValidSpec();
  spec.mutable_global_job();
  spec.mutable_task_template()->mutable_restart_policy()->set_condition(api::RestartPolicy::ANY);
  EXPECT_TRUE(ValidateServiceSpec(spec).ok());
  // HOST-mode ports with published port 0 may repeat; DNSRR with host ports is fine.
  spec = ValidSpec();
  spec.mutable_endpoint_spec()->set_mode(api::EndpointSpec::DNSRR);
  for (int i = 0; i < 2; ++i) {
    api::PortConfig* p = spec.mutable_endpoint_spec()->add_ports();
    p->set_target_port(80);
    p->set_publish_mode(api::PortConfig::HOST);
  }
  EXPECT_TRUE(ValidateServiceSpec(spec).ok());
}

struct Case {
  const char* name;
  std::function<void(api::ServiceSpec*)> mutate;
  const char* message;  // expected substring
};

class InvalidSpecTest : public ::testing::TestWithParam<Case> {};

TEST_P(InvalidSpecTest, IsRefusedWithAMessage) {
  api::ServiceSpec spec = FullSpec();
  GetParam().mutate(&spec);
  absl::Status s = ValidateServiceSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(GetParam().message));
}

api::ContainerSpec* C(api::ServiceSpec* s) {
  return s->mutable_task_template()->mutable_container_spec();
}
api::Resources* Limits(api::ServiceSpec* s) {
  return s->mutable_task_template()->mutable_resources()->mutable_limits();
}
api::Resources* Reserve(api::ServiceSpec* s) {
  return s->mutable_task_template()->mutable_resources()->mutable_reservations();
}
api::PortConfig* Port(api::ServiceSpec* s, int i) {
  return s->mutable_endpoint_spec()->mutable_ports(i);
}

const Case kCases[] = {
    // Name and labels.
    {"NoName", [](auto* s) { s->mutable_annotations()->clear_name(); },
     "a service name is required (--name NAME)"},
    {"NameWithDot", [](auto* s) { s->mutable_annotations()->set_name("web.1"); },
     "invalid service name \"web.1\": use 1 to 63 letters, digits, '-' or '_'"},
    {"NameStartsWithDash", [](auto* s) { s->mutable_annotations()->set_name("-web"); },
     "invalid service name \"-web\""},
    {"NameEndsWithUnderscore", [](auto* s) { s->mutable_annotations()->set_name("web_"); },
     "invalid service name \"web_\""},
    {"NameWithSpace", [](auto* s) { s->mutable_annotations()->set_name("my web"); },
     "invalid service name \"my web\""},
    {"NameTooLong", [](auto* s) { s->mutable_annotations()->set_name(std::string(64, 'a')); },
     "invalid service name"},
    {"EmptyLabelKey", [](auto* s) { (*s->mutable_annotations()->mutable_labels())[""] = "x"; },
     "service labels need a non-empty key (--label key=value)"},
    // Mode.
    {"NoMode", [](auto* s) { s->clear_mode(); },
     "the service needs a mode: replicated, global, replicated-job or global-job (--mode)"},
    {"HugeReplicas",
     [](auto* s) { s->mutable_replicated()->set_replicas(std::numeric_limits<uint64_t>::max()); },
     "--replicas 18446744073709551615 is above the limit of 1000000"},
    {"HugeMaxConcurrent",
     [](auto* s) { s->mutable_replicated_job()->set_max_concurrent(uint64_t{1} << 40); },
     "--max-concurrent 1099511627776 is above the limit"},
    {"HugeTotalCompletions",
     [](auto* s) { s->mutable_replicated_job()->set_total_completions(uint64_t{1} << 40); },
     "--replicas 1099511627776 is above the limit"},
    // Container.
    {"NoContainerSpec", [](auto* s) { s->mutable_task_template()->clear_container_spec(); },
     "an image is required"},
    {"NoImage", [](auto* s) { C(s)->clear_image(); }, "an image is required"},
    {"ImageWithSpace", [](auto* s) { C(s)->set_image("nginx latest"); },
     "invalid image reference \"nginx latest\": it must not contain whitespace"},
    {"EmptyContainerLabelKey", [](auto* s) { (*C(s)->mutable_labels())[""] = "x"; },
     "container labels need a non-empty key (--container-label"},
    {"EmptyEnv", [](auto* s) { C(s)->add_env(""); }, "invalid environment variable \"\""},
    {"EnvWithoutKey", [](auto* s) { C(s)->add_env("=x"); },
     "invalid environment variable \"=x\": use KEY=value (--env)"},
    {"StopGraceNegative", [](auto* s) { *C(s)->mutable_stop_grace_period() = Dur(-1); },
     "--stop-grace-period must not be negative; got -1s"},
    {"BadStopSignal", [](auto* s) { C(s)->set_stop_signal("SIGFOO"); },
     "invalid --stop-signal \"SIGFOO\""},
    {"StopSignalOutOfRange", [](auto* s) { C(s)->set_stop_signal("99"); },
     "invalid --stop-signal \"99\""},
    {"BadExtraHost", [](auto* s) { C(s)->add_hosts("10.0.0.9"); },
     "invalid extra hosts entry \"10.0.0.9\""},
    {"EmptySysctl", [](auto* s) { (*C(s)->mutable_sysctls())[""] = "1"; },
     "sysctls need a non-empty name"},
    {"UlimitNoName", [](auto* s) { C(s)->add_ulimits()->set_soft(1); }, "ulimits need a name"},
    {"UlimitTwice", [](auto* s) { C(s)->add_ulimits()->set_name("nofile"); },
     "ulimit \"nofile\" is given more than once"},
    {"UlimitSoftAboveHard", [](auto* s) { C(s)->mutable_ulimits(0)->set_soft(4096); },
     "ulimit \"nofile\": the soft limit (4096) must not exceed the hard limit (2048)"},
    {"UlimitNegative", [](auto* s) { C(s)->mutable_ulimits(0)->set_soft(-5); },
     "limits must be -1 (unlimited) or more"},
    // Mounts.
    {"MountNoTarget", [](auto* s) { C(s)->mutable_mounts(0)->clear_target(); },
     "every mount needs a target path inside the container"},
    {"MountRelativeTarget", [](auto* s) { C(s)->mutable_mounts(0)->set_target("data"); },
     "mount target \"data\" must be an absolute path"},
    {"MountTargetTwice", [](auto* s) { C(s)->mutable_mounts(1)->set_target("/data"); },
     "mount target \"/data\" is used by more than one mount"},
    {"BindWithoutSource", [](auto* s) { C(s)->mutable_mounts(0)->clear_source(); },
     "bind mount at \"/data\": the source must be an absolute path on the node"},
    {"BindRelativeSource", [](auto* s) { C(s)->mutable_mounts(0)->set_source("srv"); },
     "the source must be an absolute path on the node (got \"srv\""},
    {"TmpfsWithSource", [](auto* s) { C(s)->mutable_mounts(1)->set_source("/x"); },
     "tmpfs mount at \"/tmp\" takes no source"},
    {"BindOptionsOnVolume", [](auto* s) { C(s)->mutable_mounts(2)->mutable_bind_options(); },
     "mount at \"/vol\": bind options are only valid with type=bind"},
    {"VolumeOptionsOnBind", [](auto* s) { C(s)->mutable_mounts(0)->mutable_volume_options(); },
     "mount at \"/data\": volume options are only valid with type=volume"},
    {"TmpfsOptionsOnVolume", [](auto* s) { C(s)->mutable_mounts(2)->mutable_tmpfs_options(); },
     "mount at \"/vol\": tmpfs options are only valid with type=tmpfs"},
    {"TmpfsNegativeSize",
     [](auto* s) { C(s)->mutable_mounts(1)->mutable_tmpfs_options()->set_size_bytes(-1); },
     "the size must not be negative"},
    {"TmpfsBadMode",
     [](auto* s) { C(s)->mutable_mounts(1)->mutable_tmpfs_options()->set_mode(010000); },
     "is not a permission mode"},
    {"UnknownMountType",
     [](auto* s) { C(s)->mutable_mounts(0)->set_type(static_cast<api::Mount::Type>(9)); },
     "unknown mount type 9; use volume, bind or tmpfs"},
    // Health check.
    {"HealthUnknownTest", [](auto* s) { C(s)->mutable_healthcheck()->set_test(0, "SHELL"); },
     "unknown health check test type \"SHELL\""},
    {"HealthNoneWithArgs", [](auto* s) { C(s)->mutable_healthcheck()->set_test(0, "NONE"); },
     "a health check test [\"NONE\"] takes no arguments"},
    {"HealthCmdWithoutCommand",
     [](auto* s) {
       C(s)->mutable_healthcheck()->clear_test();
       C(s)->mutable_healthcheck()->add_test("CMD");
     },
     "needs the command to run (--health-cmd)"},
    {"HealthShellTwoArgs", [](auto* s) { C(s)->mutable_healthcheck()->add_test("extra"); },
     "needs exactly one shell command"},
    {"HealthNegativeInterval",
     [](auto* s) { *C(s)->mutable_healthcheck()->mutable_interval() = Dur(-2); },
     "--health-interval must not be negative"},
    {"HealthTinyTimeout",
     [](auto* s) { *C(s)->mutable_healthcheck()->mutable_timeout() = Dur(0, 1000); },
     "--health-timeout must be 0 (the default) or at least 1ms"},
    {"HealthNegativeStartPeriod",
     [](auto* s) { *C(s)->mutable_healthcheck()->mutable_start_period() = Dur(-1); },
     "--health-start-period must not be negative"},
    {"HealthNegativeRetries", [](auto* s) { C(s)->mutable_healthcheck()->set_retries(-1); },
     "--health-retries must not be negative"},
    // Secret and config references.
    {"SecretRefWithoutName", [](auto* s) { C(s)->add_secrets(); },
     "a secret reference needs the secret's name or ID (--secret NAME)"},
    {"SecretTargetDotDot",
     [](auto* s) { C(s)->mutable_secrets(0)->mutable_file()->set_name("../etc/passwd"); },
     "secret \"db-password\": target \"../etc/passwd\" must not contain \"..\""},
    {"SecretUidNotNumeric",
     [](auto* s) { C(s)->mutable_secrets(0)->mutable_file()->set_uid("root"); },
     "secret \"db-password\": uid \"root\" must be a number"},
    {"SecretGidNotNumeric",
     [](auto* s) { C(s)->mutable_secrets(0)->mutable_file()->set_gid("-1"); },
     "gid \"-1\" must be a number"},
    {"SecretBadMode", [](auto* s) { C(s)->mutable_secrets(0)->mutable_file()->set_mode(0100000); },
     "is not a permission mode"},
    {"ConfigRefWithoutName", [](auto* s) { C(s)->add_configs(); },
     "a config reference needs the config's name or ID (--config NAME)"},
    {"ConfigTargetDotDot",
     [](auto* s) { C(s)->mutable_configs(0)->mutable_file()->set_name("/etc/../x"); },
     "config \"cfg1\": target \"/etc/../x\" must not contain \"..\""},
    // Resources.
    {"NegativeCpuLimit", [](auto* s) { Limits(s)->set_nano_cpus(-1); },
     "--limit-cpu must not be negative"},
    {"TinyCpuLimit", [](auto* s) { Limits(s)->set_nano_cpus(10); },
     "--limit-cpu 1e-08 is below the minimum of 0.001 CPU"},
    {"NegativeMemoryReservation", [](auto* s) { Reserve(s)->set_memory_bytes(-4); },
     "--reserve-memory must not be negative; got -4"},
    {"TinyMemoryLimit", [](auto* s) { Limits(s)->set_memory_bytes(1024); },
     "--limit-memory 1024 bytes is below the minimum of 4 MiB"},
    {"NegativeCpuReservation", [](auto* s) { Reserve(s)->set_nano_cpus(-1); },
     "--reserve-cpu must not be negative"},
    {"CpuReservationAboveLimit", [](auto* s) { Reserve(s)->set_nano_cpus(3000000000); },
     "--reserve-cpu (3) must not exceed --limit-cpu (2)"},
    {"MemoryReservationAboveLimit", [](auto* s) { Reserve(s)->set_memory_bytes(1 << 30); },
     "--reserve-memory (1073741824 bytes) must not exceed --limit-memory (536870912 bytes)"},
    {"NegativePids",
     [](auto* s) { s->mutable_task_template()->mutable_resources()->set_pids_limit(-1); },
     "--limit-pids must not be negative"},
    {"GenericLimit", [](auto* s) { Limits(s)->add_generic()->mutable_discrete()->set_kind("GPU"); },
     "generic resources can only be reserved"},
    {"GenericZero",
     [](auto* s) { Reserve(s)->mutable_generic(0)->mutable_discrete()->set_value(0); },
     "generic resource \"SSD\": the amount must be positive"},
    {"GenericNoKind",
     [](auto* s) { Reserve(s)->mutable_generic(0)->mutable_discrete()->clear_kind(); },
     "generic resources need a kind"},
    {"GenericNamedNoValue",
     [](auto* s) { Reserve(s)->add_generic()->mutable_named()->set_kind("GPU"); },
     "needs a kind and a value"},
    {"GenericUnset", [](auto* s) { Reserve(s)->add_generic(); },
     "a generic resource must be named (KIND=VALUE) or discrete (KIND=COUNT)"},
    // Restart policy.
    {"UnknownRestartCondition",
     [](auto* s) {
       s->mutable_task_template()->mutable_restart_policy()->set_condition(
           static_cast<api::RestartPolicy::Condition>(7));
     },
     "unknown restart condition 7; use none, on-failure or any"},
    {"NegativeRestartDelay",
     [](auto* s) {
       *s->mutable_task_template()->mutable_restart_policy()->mutable_delay() = Dur(-1);
     },
     "--restart-delay must not be negative"},
    {"NegativeRestartWindow",
     [](auto* s) {
       *s->mutable_task_template()->mutable_restart_policy()->mutable_window() = Dur(-1);
     },
     "--restart-window must not be negative"},
    // Placement.
    {"BadConstraint",
     [](auto* s) { s->mutable_task_template()->mutable_placement()->add_constraints("zone=east"); },
     "invalid constraint \"zone=east\""},
    {"UnknownConstraintKey",
     [](auto* s) {
       s->mutable_task_template()->mutable_placement()->add_constraints("node.colour==red");
     },
     "node.colour"},
    {"EmptyPreference",
     [](auto* s) { s->mutable_task_template()->mutable_placement()->add_preferences(); },
     "a placement preference must say what to spread over"},
    {"BadSpread",
     [](auto* s) {
       s->mutable_task_template()
           ->mutable_placement()
           ->add_preferences()
           ->mutable_spread()
           ->set_spread_descriptor("node.zone");
     },
     "invalid placement preference \"spread=node.zone\""},
    {"MaxReplicasOnGlobal", [](auto* s) { s->mutable_global(); },
     "--replicas-max-per-node only applies to replicated services and jobs, not to mode global"},
    // Log driver and networks.
    {"LogOptionsWithoutDriver",
     [](auto* s) {
       (*s->mutable_task_template()->mutable_log_driver()->mutable_options())["max-size"] = "1m";
     },
     "log driver options need a log driver name"},
    {"NetworkWithoutTarget", [](auto* s) { s->mutable_task_template()->add_networks(); },
     "a network attachment needs the network's name or ID (--network NAME)"},
    // Update and rollback configs.
    {"NegativeUpdateDelay", [](auto* s) { *s->mutable_update_config()->mutable_delay() = Dur(-1); },
     "--update-delay must not be negative"},
    {"NegativeRollbackMonitor",
     [](auto* s) { *s->mutable_rollback_config()->mutable_monitor() = Dur(-1); },
     "--rollback-monitor must not be negative"},
    {"RatioAboveOne", [](auto* s) { s->mutable_update_config()->set_max_failure_ratio(1.5f); },
     "--update-max-failure-ratio must be between 0 and 1; got 1.5"},
    {"RatioNegative", [](auto* s) { s->mutable_rollback_config()->set_max_failure_ratio(-0.1f); },
     "--rollback-max-failure-ratio must be between 0 and 1"},
    {"RatioNaN", [](auto* s) { s->mutable_update_config()->set_max_failure_ratio(std::nanf("")); },
     "--update-max-failure-ratio must be between 0 and 1"},
    {"RollbackOfRollback",
     [](auto* s) { s->mutable_rollback_config()->set_failure_action(api::UpdateConfig::ROLLBACK); },
     "--rollback-failure-action cannot be rollback"},
    {"UnknownFailureAction",
     [](auto* s) {
       s->mutable_update_config()->set_failure_action(
           static_cast<api::UpdateConfig::FailureAction>(5));
     },
     "unknown --update-failure-action 5"},
    {"UnknownOrder",
     [](auto* s) {
       s->mutable_update_config()->set_order(static_cast<api::UpdateConfig::Order>(3));
     },
     "unknown --update-order 3"},
    // Endpoint.
    {"UnknownEndpointMode",
     [](auto* s) { s->mutable_endpoint_spec()->set_mode(static_cast<api::EndpointSpec::Mode>(4)); },
     "unknown endpoint mode 4"},
    {"TargetPortZero", [](auto* s) { Port(s, 0)->set_target_port(0); },
     "target (container) port 0/tcp is out of range: use 1-65535"},
    {"TargetPortTooHigh", [](auto* s) { Port(s, 0)->set_target_port(70000); },
     "target (container) port 70000/tcp is out of range"},
    {"PublishedPortTooHigh", [](auto* s) { Port(s, 0)->set_published_port(65536); },
     "published port 65536/tcp is out of range: use 1-65535"},
    {"DuplicatePublishedPort", [](auto* s) { Port(s, 1)->set_protocol(api::PortConfig::TCP); },
     "published port 8080/tcp is given more than once"},
    {"DuplicateAcrossModes",
     [](auto* s) {
       Port(s, 1)->set_protocol(api::PortConfig::TCP);
       Port(s, 1)->set_publish_mode(api::PortConfig::HOST);
     },
     "published port 8080/tcp is given more than once"},
    {"UnknownProtocol",
     [](auto* s) { Port(s, 0)->set_protocol(static_cast<api::PortConfig::Protocol>(9)); },
     "unknown port protocol 9"},
    {"UnknownPublishMode",
     [](auto* s) { Port(s, 0)->set_publish_mode(static_cast<api::PortConfig::PublishMode>(9)); },
     "unknown publish mode 9"},
    {"IngressWithDnsrr",
     [](auto* s) { s->mutable_endpoint_spec()->set_mode(api::EndpointSpec::DNSRR); },
     "port 80/tcp is published in ingress mode, which --endpoint-mode dnsrr cannot use"},
};

INSTANTIATE_TEST_SUITE_P(Rules, InvalidSpecTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

TEST(ServiceModeNameTest, NamesEveryMode) {
  api::ServiceSpec spec;
  EXPECT_STREQ(ServiceModeName(spec), "none");
  spec.mutable_replicated();
  EXPECT_STREQ(ServiceModeName(spec), "replicated");
  EXPECT_FALSE(IsJob(spec));
  spec.mutable_global();
  EXPECT_STREQ(ServiceModeName(spec), "global");
  spec.mutable_replicated_job();
  EXPECT_STREQ(ServiceModeName(spec), "replicated-job");
  EXPECT_TRUE(IsJob(spec));
  spec.mutable_global_job();
  EXPECT_STREQ(ServiceModeName(spec), "global-job");
  EXPECT_TRUE(IsJob(spec));
}

TEST(ValidateSecretSpecTest, NamesLabelsAndData) {
  api::SecretSpec spec;
  spec.mutable_annotations()->set_name("db.password-v2_x");
  spec.set_data("hunter2");
  EXPECT_TRUE(ValidateSecretSpec(spec).ok());
  spec.mutable_annotations()->set_name(std::string(64, 's'));
  EXPECT_TRUE(ValidateSecretSpec(spec).ok());
  spec.set_data(std::string(kMaxSecretDataBytes, 'x'));
  EXPECT_TRUE(ValidateSecretSpec(spec).ok());

  auto refused = [](const api::SecretSpec& s, const std::string& message) {
    absl::Status st = ValidateSecretSpec(s);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_THAT(std::string(st.message()), HasSubstr(message));
  };
  api::SecretSpec bad = spec;
  bad.set_data(std::string(kMaxSecretDataBytes + 1, 'x'));
  refused(bad, "holds 512001 bytes; secrets are limited to 500 KiB (512000 bytes)");
  bad = spec;
  bad.clear_data();
  refused(bad, "has no data; give a non-empty file");
  bad = spec;
  bad.mutable_annotations()->clear_name();
  refused(bad, "a secret name is required (shoal secret create NAME FILE)");
  for (const char* name : {".hidden", "trailing-", "sp ace", "sl/ash"}) {
    bad.mutable_annotations()->set_name(name);
    refused(bad, absl::StrCat("invalid secret name \"", name, "\": use 1 to 64 letters"));
  }
  bad.mutable_annotations()->set_name(std::string(65, 's'));
  refused(bad, "invalid secret name");
  bad = spec;
  (*bad.mutable_annotations()->mutable_labels())[""] = "v";
  refused(bad, "secret labels need a non-empty key (--label key=value)");
}

TEST(ValidateConfigSpecTest, AllowsUpTo1000KiB) {
  api::ConfigSpec spec;
  spec.mutable_annotations()->set_name("app.conf");
  spec.set_data(std::string(kMaxConfigDataBytes, 'x'));
  EXPECT_TRUE(ValidateConfigSpec(spec).ok());
  spec.set_data(std::string(kMaxConfigDataBytes + 1, 'x'));
  absl::Status s = ValidateConfigSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("configs are limited to 1000 KiB (1024000 bytes)"));
  spec.set_data("x");
  spec.mutable_annotations()->set_name("bad name");
  EXPECT_THAT(std::string(ValidateConfigSpec(spec).message()),
              HasSubstr("invalid config name \"bad name\""));
}

}  // namespace
}  // namespace shoal::manager
