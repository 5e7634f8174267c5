#include "cli/service_format.h"

#include <sstream>

#include "cli/secret_format.h"
#include "cli/service_json.h"
#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

api::PortConfig Port(uint32_t published, uint32_t target,
                     api::PortConfig::Protocol protocol = api::PortConfig::TCP,
                     api::PortConfig::PublishMode mode = api::PortConfig::INGRESS) {
  api::PortConfig p;
  p.set_published_port(published);
  p.set_target_port(target);
  p.set_protocol(protocol);
  p.set_publish_mode(mode);
  return p;
}

api::ServiceStatus Status(uint64_t running, uint64_t desired, uint64_t completed = 0) {
  api::ServiceStatus s;
  s.set_running_tasks(running);
  s.set_desired_tasks(desired);
  s.set_completed_tasks(completed);
  return s;
}

api::Service WebService() {
  api::Service s;
  s.set_id("svc1234567890abcdefghijkl");
  s.mutable_meta()->mutable_version()->set_index(42);
  s.mutable_meta()->mutable_created_at()->set_seconds(1700000000 - 600);
  s.mutable_meta()->mutable_updated_at()->set_seconds(1700000000 - 60);
  api::ServiceSpec* spec = s.mutable_spec();
  spec->mutable_annotations()->set_name("web");
  (*spec->mutable_annotations()->mutable_labels())["tier"] = "front";
  spec->mutable_replicated()->set_replicas(3);
  api::ContainerSpec* c = spec->mutable_task_template()->mutable_container_spec();
  c->set_image("nginx:1.25@sha256:abcdef");
  c->add_env("A=1");
  c->add_args("-g");
  c->add_args("daemon off;");
  *spec->mutable_endpoint_spec()->add_ports() = Port(8080, 80);
  *s.mutable_endpoint()->mutable_spec() = spec->endpoint_spec();
  *s.mutable_endpoint()->add_ports() = Port(8080, 80);
  api::VirtualIP* vip = s.mutable_endpoint()->add_virtual_ips();
  vip->set_network_id("ingress-id");
  vip->set_addr("10.0.0.5/24");
  return s;
}

TEST(ServiceListTest, ReplicasColumn) {
  api::ServiceSpec spec;
  spec.mutable_replicated()->set_replicas(3);
  EXPECT_EQ(ReplicasText(spec, Status(2, 3)), "2/3");
  spec.mutable_task_template()->mutable_placement()->set_max_replicas(1);
  EXPECT_EQ(ReplicasText(spec, Status(2, 3)), "2/3 (max 1 per node)");
  spec.mutable_global();
  EXPECT_EQ(ReplicasText(spec, Status(4, 5)), "4/5");
  spec.mutable_replicated_job()->set_total_completions(10);
  spec.mutable_replicated_job()->set_max_concurrent(2);
  EXPECT_EQ(ReplicasText(spec, Status(2, 2, 5)), "2/2 (5/10 completed)");
  spec.mutable_replicated_job()->set_total_completions(0);
  EXPECT_EQ(ReplicasText(spec, Status(0, 0, 2)), "0/0 (2/2 completed)");
  spec.mutable_global_job();
  EXPECT_EQ(ReplicasText(spec, Status(1, 2, 3)), "1/2 (3/5 completed)");
}

TEST(ServiceListTest, PortsColumnMergesRangesAndSkipsHostPorts) {
  api::Endpoint e;
  *e.add_ports() = Port(8081, 81);
  *e.add_ports() = Port(8080, 80);
  *e.add_ports() = Port(8082, 80);
  *e.add_ports() = Port(53, 53, api::PortConfig::UDP);
  *e.add_ports() = Port(9000, 9000, api::PortConfig::TCP, api::PortConfig::HOST);
  EXPECT_EQ(IngressPortsText(e), "*:8080-8081->80-81/tcp, *:8082->80/tcp, *:53->53/udp");
  EXPECT_EQ(IngressPortsText(api::Endpoint()), "");
}

TEST(ServiceListTest, RowTableAndJson) {
  const ServiceListRow row = MakeServiceListRow(WebService(), Status(3, 3));
  EXPECT_EQ(row.id, "svc123456789");
  EXPECT_EQ(row.image, "nginx:1.25");
  EXPECT_EQ(row.mode, "replicated");
  std::ostringstream out;
  api::Service job = WebService();
  job.set_id("job1");
  job.mutable_spec()->mutable_annotations()->set_name("migrate");
  job.mutable_spec()->mutable_global_job();
  job.clear_endpoint();
  PrintServiceTable(out, {row, MakeServiceListRow(job, Status(1, 1, 2))});
  EXPECT_EQ(out.str(),
            "ID             NAME      MODE         REPLICAS              IMAGE        PORTS\n"
            "svc123456789   web       replicated   3/3                   nginx:1.25   "
            "*:8080->80/tcp\n"
            "job1           migrate   global job   1/1 (2/3 completed)   nginx:1.25\n");
  EXPECT_EQ(ServiceListRowJson(row).dump(),
            R"({"ID":"svc123456789","Image":"nginx:1.25","Mode":"replicated","Name":"web",)"
            R"("Ports":"*:8080->80/tcp","Replicas":"3/3"})");
}

api::Task Task(const std::string& id, const std::string& service, const std::string& node,
               api::TaskState state, api::TaskState desired) {
  api::Task t;
  t.set_id(id);
  t.set_service_id(service);
  t.set_node_id(node);
  t.mutable_status()->set_state(state);
  t.set_desired_state(desired);
  return t;
}

api::Node NodeWithState(const std::string& id, api::NodeStatus::State state) {
  api::Node n;
  n.set_id(id);
  n.mutable_status()->set_state(state);
  return n;
}

TEST(ServiceListTest, CountsFromTasksForOlderDaemons) {
  api::Service s = WebService();
  const std::vector<api::Node> nodes = {NodeWithState("n1", api::NodeStatus::READY),
                                        NodeWithState("n2", api::NodeStatus::DOWN)};
  const std::vector<api::Task> tasks = {
      Task("t1", s.id(), "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING),
      Task("t2", s.id(), "n2", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING),  // node down
      Task("t3", s.id(), "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_SHUTDOWN),
      Task("t4", s.id(), "n1", api::TASK_STATE_PREPARING, api::TASK_STATE_RUNNING),
      Task("t5", "other", "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING)};
  api::ServiceStatus st = CountServiceTasks(s, tasks, nodes);
  EXPECT_EQ(st.running_tasks(), 1u);
  EXPECT_EQ(st.desired_tasks(), 3u);

  s.mutable_spec()->mutable_global();
  st = CountServiceTasks(s, tasks, nodes);
  EXPECT_EQ(st.desired_tasks(), 1u);  // n1 holds tasks meant to run; n2 is down

  s.mutable_spec()->mutable_replicated_job()->set_total_completions(4);
  s.mutable_spec()->mutable_replicated_job()->set_max_concurrent(2);
  s.mutable_job_status()->mutable_job_iteration()->set_index(7);
  std::vector<api::Task> job_tasks = {
      Task("j1", s.id(), "n1", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE),
      Task("j2", s.id(), "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_COMPLETE),
      Task("j3", s.id(), "n1", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE)};
  for (api::Task& t : job_tasks) t.mutable_job_iteration()->set_index(7);
  job_tasks[2].mutable_job_iteration()->set_index(6);  // an earlier run
  st = CountServiceTasks(s, job_tasks, nodes);
  EXPECT_EQ(st.running_tasks(), 1u);
  EXPECT_EQ(st.completed_tasks(), 1u);
  EXPECT_EQ(st.desired_tasks(), 2u);  // min(max concurrent, 3 left)
}

TEST(ServiceJsonTest, DockerShapeWithDefaults) {
  api::Service s = WebService();
  s.mutable_update_status()->set_state(api::UpdateStatus::UPDATING);
  s.mutable_update_status()->mutable_started_at()->set_seconds(1700000000);
  s.mutable_update_status()->set_message("update in progress");
  *s.mutable_previous_spec() = s.spec();
  s.mutable_previous_spec()->mutable_replicated()->set_replicas(1);
  const nlohmann::ordered_json j = ServiceJson(s);
  EXPECT_EQ(j["ID"], "svc1234567890abcdefghijkl");
  EXPECT_EQ(j["Version"]["Index"], 42);
  EXPECT_EQ(j["CreatedAt"], "2023-11-14T22:03:20Z");
  EXPECT_EQ(j["Spec"]["Name"], "web");
  EXPECT_EQ(j["Spec"]["Labels"]["tier"], "front");
  const auto& c = j["Spec"]["TaskTemplate"]["ContainerSpec"];
  EXPECT_EQ(c["Image"], "nginx:1.25@sha256:abcdef");
  EXPECT_EQ(c["Env"], nlohmann::ordered_json::array({"A=1"}));
  EXPECT_EQ(c["Args"], nlohmann::ordered_json::array({"-g", "daemon off;"}));
  EXPECT_FALSE(c.contains("Command"));
  const auto& rp = j["Spec"]["TaskTemplate"]["RestartPolicy"];
  EXPECT_EQ(rp["Condition"], "any");
  EXPECT_EQ(rp["Delay"], 5000000000LL);
  EXPECT_EQ(rp["MaxAttempts"], 0);
  EXPECT_EQ(j["Spec"]["TaskTemplate"]["ForceUpdate"], 0);
  EXPECT_EQ(j["Spec"]["Mode"]["Replicated"]["Replicas"], 3);
  EXPECT_EQ(j["Spec"]["UpdateConfig"]["Parallelism"], 1);
  EXPECT_EQ(j["Spec"]["UpdateConfig"]["FailureAction"], "pause");
  EXPECT_EQ(j["Spec"]["UpdateConfig"]["Monitor"], 5000000000LL);
  EXPECT_EQ(j["Spec"]["UpdateConfig"]["Order"], "stop-first");
  EXPECT_EQ(j["Spec"]["RollbackConfig"]["Order"], "stop-first");
  EXPECT_EQ(j["Spec"]["EndpointSpec"]["Mode"], "vip");
  EXPECT_EQ(j["Spec"]["EndpointSpec"]["Ports"][0]["PublishedPort"], 8080);
  EXPECT_EQ(j["Spec"]["EndpointSpec"]["Ports"][0]["Protocol"], "tcp");
  EXPECT_EQ(j["Spec"]["EndpointSpec"]["Ports"][0]["PublishMode"], "ingress");
  EXPECT_EQ(j["PreviousSpec"]["Mode"]["Replicated"]["Replicas"], 1);
  EXPECT_EQ(j["Endpoint"]["VirtualIPs"][0]["NetworkID"], "ingress-id");
  EXPECT_EQ(j["Endpoint"]["Ports"][0]["TargetPort"], 80);
  EXPECT_EQ(j["UpdateStatus"]["State"], "updating");
  EXPECT_EQ(j["UpdateStatus"]["Message"], "update in progress");
  EXPECT_FALSE(j.contains("JobStatus"));
  // Key order as docker's.
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"ID", "Version", "CreatedAt", "UpdatedAt", "Spec",
                                            "PreviousSpec", "Endpoint", "UpdateStatus"}));
}

TEST(ServiceJsonTest, FullSpec) {
  api::ServiceSpec spec;
  spec.mutable_replicated_job()->set_max_concurrent(2);
  spec.mutable_replicated_job()->set_total_completions(5);
  api::TaskSpec* t = spec.mutable_task_template();
  api::ContainerSpec* c = t->mutable_container_spec();
  c->add_command("/bin/sh");
  c->set_user("me");
  c->mutable_init()->set_value(true);
  c->add_capability_add("CAP_NET_ADMIN");
  api::Mount* m = c->add_mounts();
  m->set_type(api::Mount::BIND);
  m->set_source("/a");
  m->set_target("/b");
  m->set_readonly(true);
  m->mutable_bind_options()->set_propagation(api::Mount::BindOptions::RSHARED);
  api::SecretReference* sr = c->add_secrets();
  sr->set_secret_id("sid");
  sr->set_secret_name("pw");
  sr->mutable_file()->set_name("pw");
  c->mutable_healthcheck()->add_test("NONE");
  c->mutable_stop_grace_period()->set_seconds(20);
  t->mutable_resources()->mutable_limits()->set_nano_cpus(500000000);
  t->mutable_resources()->set_pids_limit(10);
  t->mutable_restart_policy()->set_condition(api::RestartPolicy::ON_FAILURE);
  t->mutable_restart_policy()->mutable_window()->set_seconds(60);
  t->mutable_placement()->add_constraints("node.role==manager");
  t->mutable_placement()->add_preferences()->mutable_spread()->set_spread_descriptor("node.id");
  t->add_networks()->set_target("net1");
  t->mutable_log_driver()->set_name("json-file");
  spec.mutable_endpoint_spec()->set_mode(api::EndpointSpec::DNSRR);
  const nlohmann::ordered_json j = ServiceSpecJson(spec);
  const auto& cj = j["TaskTemplate"]["ContainerSpec"];
  EXPECT_EQ(cj["Command"][0], "/bin/sh");
  EXPECT_EQ(cj["Init"], true);
  EXPECT_EQ(cj["Mounts"][0]["Type"], "bind");
  EXPECT_EQ(cj["Mounts"][0]["ReadOnly"], true);
  EXPECT_EQ(cj["Mounts"][0]["BindOptions"]["Propagation"], "rshared");
  EXPECT_EQ(cj["Secrets"][0]["File"]["Mode"], 0444);
  EXPECT_EQ(cj["Secrets"][0]["File"]["UID"], "0");
  EXPECT_EQ(cj["Secrets"][0]["SecretName"], "pw");
  EXPECT_EQ(cj["Healthcheck"]["Test"][0], "NONE");
  EXPECT_EQ(cj["StopGracePeriod"], 20000000000LL);
  EXPECT_EQ(cj["CapabilityAdd"][0], "CAP_NET_ADMIN");
  EXPECT_EQ(j["TaskTemplate"]["Resources"]["Limits"]["NanoCPUs"], 500000000);
  EXPECT_EQ(j["TaskTemplate"]["Resources"]["Limits"]["Pids"], 10);
  EXPECT_EQ(j["TaskTemplate"]["RestartPolicy"]["Condition"], "on-failure");
  EXPECT_EQ(j["TaskTemplate"]["RestartPolicy"]["Window"], 60000000000LL);
  EXPECT_EQ(j["TaskTemplate"]["Placement"]["Constraints"][0], "node.role==manager");
  EXPECT_EQ(j["TaskTemplate"]["Placement"]["Preferences"][0]["Spread"]["SpreadDescriptor"],
            "node.id");
  EXPECT_EQ(j["TaskTemplate"]["Networks"][0]["Target"], "net1");
  EXPECT_EQ(j["TaskTemplate"]["LogDriver"]["Name"], "json-file");
  EXPECT_EQ(j["Mode"]["ReplicatedJob"]["MaxConcurrent"], 2);
  EXPECT_EQ(j["Mode"]["ReplicatedJob"]["TotalCompletions"], 5);
  EXPECT_FALSE(j.contains("UpdateConfig"));  // jobs are not updated in rolling fashion
  EXPECT_EQ(j["EndpointSpec"]["Mode"], "dnsrr");
}

TEST(ServiceJsonTest, SecretAndConfig) {
  api::Secret secret;
  secret.set_id("sec1");
  secret.mutable_spec()->mutable_annotations()->set_name("pw");
  EXPECT_EQ(SecretJson(secret).dump(),
            R"({"ID":"sec1","Version":{"Index":0},"CreatedAt":"0001-01-01T00:00:00Z",)"
            R"("UpdatedAt":"0001-01-01T00:00:00Z","Spec":{"Name":"pw","Labels":{}}})");
  api::Config config;
  config.set_id("cfg1");
  config.mutable_spec()->mutable_annotations()->set_name("app");
  config.mutable_spec()->set_data("hello");
  EXPECT_EQ(ConfigJson(config)["Spec"]["Data"], "aGVsbG8=");
}

TEST(ServicePrettyTest, DockersLayout) {
  api::Service s = WebService();
  api::ServiceSpec* spec = s.mutable_spec();
  spec->mutable_update_config()->set_parallelism(2);
  spec->mutable_update_config()->mutable_delay()->set_seconds(10);
  spec->mutable_update_config()->mutable_monitor()->set_seconds(5);
  api::TaskSpec* t = spec->mutable_task_template();
  t->mutable_placement()->add_constraints("node.role==worker");
  t->mutable_placement()->set_max_replicas(2);
  t->mutable_resources()->mutable_reservations()->set_memory_bytes(512LL << 20);
  t->mutable_resources()->mutable_limits()->set_nano_cpus(1500000000);
  t->add_networks()->set_target("netid1");
  api::Mount* m = t->mutable_container_spec()->add_mounts();
  m->set_type(api::Mount::VOLUME);
  m->set_source("data");
  m->set_target("/data");
  api::SecretReference* sr = t->mutable_container_spec()->add_secrets();
  sr->set_secret_name("pw");
  sr->mutable_file()->set_name("pw");
  s.mutable_update_status()->set_state(api::UpdateStatus::COMPLETED);
  s.mutable_update_status()->mutable_started_at()->set_seconds(1700000000 - 300);
  s.mutable_update_status()->mutable_completed_at()->set_seconds(1700000000 - 240);
  s.mutable_update_status()->set_message("update completed");
  std::ostringstream out;
  PrintServicePretty(
      out, s, [](const std::string& id) { return id == "netid1" ? "backend" : id; }, kNow);
  EXPECT_EQ(out.str(),
            "ID:\t\tsvc1234567890abcdefghijkl\n"
            "Name:\t\tweb\n"
            "Labels:\n"
            " tier=front\n"
            "Service Mode:\tReplicated\n"
            " Replicas:\t3\n"
            "UpdateStatus:\n"
            " State:\t\tcompleted\n"
            " Started:\t5 minutes ago\n"
            " Completed:\t4 minutes ago\n"
            " Message:\tupdate completed\n"
            "Placement:\n"
            " Constraints:\t[node.role==worker]\n"
            " Max Replicas Per Node:   2\n"
            "UpdateConfig:\n"
            " Parallelism:\t2\n"
            " Delay:\t\t10s\n"
            " On failure:\tpause\n"
            " Monitoring Period: 5s\n"
            " Max failure ratio: 0\n"
            " Update order:      stop-first\n"
            "ContainerSpec:\n"
            " Image:\t\tnginx:1.25@sha256:abcdef\n"
            " Args:\t\t-g daemon off; \n"
            " Env:\t\tA=1 \n"
            "Mounts:\n"
            " Target:\t/data\n"
            "  Source:\tdata\n"
            "  ReadOnly:\tfalse\n"
            "  Type:\t\tvolume\n"
            "Secrets:\n"
            " Target:\tpw\n"
            "  Source:\tpw\n"
            "Resources:\n"
            " Reservations:\n"
            "  Memory:\t512MiB\n"
            " Limits:\n"
            "  CPU:\t\t1.5\n"
            "Networks: backend \n"
            "Endpoint Mode:\tvip\n"
            "Ports:\n"
            " PublishedPort = 8080\n"
            "  Protocol = tcp\n"
            "  TargetPort = 80\n"
            "  PublishMode = ingress\n");
}

TEST(SecretFormatTest, TableJsonAndPretty) {
  api::Meta meta;
  meta.mutable_created_at()->set_seconds(1700000000 - 7200);
  meta.mutable_updated_at()->set_seconds(1700000000 - 30);
  api::Annotations a;
  a.set_name("db_pass");
  (*a.mutable_labels())["env"] = "prod";
  (*a.mutable_labels())["app"] = "db";
  const SecretListRow row = MakeSecretListRow("sec0123456789abcdefghijkl", a, meta, kNow);
  std::ostringstream out;
  PrintSecretTable(out, {row});
  EXPECT_EQ(out.str(),
            "ID                          NAME      CREATED       UPDATED\n"
            "sec0123456789abcdefghijkl   db_pass   2 hours ago   30 seconds ago\n");
  EXPECT_EQ(SecretListRowJson(row).dump(),
            R"({"CreatedAt":"2 hours ago","ID":"sec0123456789abcdefghijkl",)"
            R"("Labels":"app=db,env=prod","Name":"db_pass","UpdatedAt":"30 seconds ago"})");

  api::Secret secret;
  secret.set_id("sec0123456789abcdefghijkl");
  *secret.mutable_meta() = meta;
  *secret.mutable_spec()->mutable_annotations() = a;
  std::ostringstream pretty;
  PrintSecretPretty(pretty, secret);
  EXPECT_EQ(pretty.str(),
            "ID:              sec0123456789abcdefghijkl\n"
            "Name:            db_pass\n"
            "Labels:\n"
            " - app=db\n"
            " - env=prod\n"
            "Driver:\n"
            "Created at:      2023-11-14 20:13:20 +0000 UTC\n"
            "Updated at:      2023-11-14 22:12:50 +0000 UTC\n");

  api::Config config;
  config.set_id("cfg1");
  config.mutable_spec()->mutable_annotations()->set_name("app.conf");
  config.mutable_spec()->set_data("listen 80;");
  std::ostringstream cpretty;
  PrintConfigPretty(cpretty, config);
  EXPECT_EQ(cpretty.str(),
            "ID:              cfg1\n"
            "Name:            app.conf\n"
            "Created at:      0001-01-01 00:00:00 +0000 UTC\n"
            "Updated at:      0001-01-01 00:00:00 +0000 UTC\n"
            "Data:\n"
            "listen 80;\n");
}

}  // namespace
}  // namespace shoal::cli
