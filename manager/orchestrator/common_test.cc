// The shared pieces: new tasks, restart policies and their defaults, the DOWN-node grace.
#include "manager/orchestrator/common.h"

#include "gtest/gtest.h"
#include "manager/allocator/allocator.h"
#include "manager/orchestrator/test_util.h"

namespace shoal::manager::orchestrator {
namespace {

using testing::OrchestratorFixture;

TEST(NewTaskTest, ReplicatedTaskFields) {
  api::Service svc = OrchestratorFixture::Replicated("svc1", "web", 3);
  svc.mutable_spec_version()->set_index(42);
  (*svc.mutable_spec()->mutable_annotations()->mutable_labels())["team"] = "a";
  api::Cluster cluster;
  cluster.mutable_spec()->mutable_task_defaults()->mutable_log_driver()->set_name("json-file");
  const absl::Time now = absl::FromUnixSeconds(1700000000) + absl::Milliseconds(5);

  api::Task t = NewTask(svc, &cluster, 2, "", now);
  EXPECT_EQ(t.id().size(), 25u);
  EXPECT_EQ(t.service_id(), "svc1");
  EXPECT_EQ(t.slot(), 2u);
  EXPECT_EQ(t.node_id(), "");
  EXPECT_EQ(t.annotations().name(), "web.2." + t.id());
  EXPECT_EQ(t.service_annotations().labels().at("team"), "a");
  EXPECT_EQ(t.spec().container_spec().image(), "sim/run");
  EXPECT_EQ(t.spec_version().index(), 42u);
  // Nothing to allocate (no networks, no endpoint): ready for the scheduler at once.
  EXPECT_EQ(t.status().state(), api::TASK_STATE_PENDING);
  EXPECT_EQ(t.status().message(), kAllocatedMessage);
  EXPECT_EQ(FromProto(t.status().timestamp()), now);
  EXPECT_EQ(t.desired_state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(t.log_driver().name(), "json-file");
  EXPECT_FALSE(t.has_job_iteration());

  // The template's log driver wins over the cluster default.
  svc.mutable_spec()->mutable_task_template()->mutable_log_driver()->set_name("syslog");
  EXPECT_EQ(NewTask(svc, &cluster, 1, "", now).log_driver().name(), "syslog");
  // No cluster, no template driver: none.
  svc.mutable_spec()->mutable_task_template()->clear_log_driver();
  EXPECT_FALSE(NewTask(svc, nullptr, 1, "", now).has_log_driver());
  EXPECT_NE(NewTask(svc, nullptr, 1, "", now).id(), NewTask(svc, nullptr, 1, "", now).id());

  // Networks to attach, or an endpoint to copy: NEW, for the allocator.
  api::Service with_net = svc;
  with_net.mutable_spec()->mutable_task_template()->add_networks()->set_target("backend");
  EXPECT_EQ(NewTask(with_net, nullptr, 1, "", now).status().state(), api::TASK_STATE_NEW);
  api::Service with_ports = svc;
  with_ports.mutable_spec()->mutable_endpoint_spec()->add_ports()->set_target_port(80);
  api::Task created = NewTask(with_ports, nullptr, 1, "", now);
  EXPECT_EQ(created.status().state(), api::TASK_STATE_NEW);
  EXPECT_EQ(created.status().message(), "created");
}

TEST(NewTaskTest, GlobalAndJobTasks) {
  api::Service g = OrchestratorFixture::Global("g1", "agent");
  api::Task t = NewTask(g, nullptr, 0, "node7", absl::Now());
  EXPECT_EQ(t.slot(), 0u);
  EXPECT_EQ(t.node_id(), "node7");
  EXPECT_EQ(t.annotations().name(), "agent.node7." + t.id());

  api::Service j = OrchestratorFixture::ReplicatedJob("j1", "batch", 2, 4);
  j.mutable_job_status()->mutable_job_iteration()->set_index(9);
  api::Task jt = NewTask(j, nullptr, 3, "", absl::Now());
  EXPECT_EQ(jt.desired_state(), api::TASK_STATE_COMPLETE);
  ASSERT_TRUE(jt.has_job_iteration());
  EXPECT_EQ(jt.job_iteration().index(), 9u);
  EXPECT_TRUE(IsJobTask(jt));
}

TEST(RestartPolicyTest, DefaultsAndConditions) {
  api::Task t;
  RestartPolicy p = RestartPolicyOf(t);
  EXPECT_EQ(p.condition, api::RestartPolicy::ANY);
  EXPECT_EQ(p.delay, absl::Seconds(5));
  EXPECT_EQ(p.max_attempts, 0u);
  EXPECT_EQ(p.window, absl::ZeroDuration());

  t.mutable_status()->set_state(api::TASK_STATE_RUNNING);
  EXPECT_FALSE(ConditionWantsRestart(t));  // not finished
  for (api::TaskState s :
       {api::TASK_STATE_COMPLETE, api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN,
        api::TASK_STATE_REJECTED, api::TASK_STATE_ORPHANED}) {
    t.mutable_status()->set_state(s);
    EXPECT_TRUE(ConditionWantsRestart(t)) << api::TaskState_Name(s);
  }
  t.mutable_spec()->mutable_restart_policy()->set_condition(api::RestartPolicy::ON_FAILURE);
  t.mutable_status()->set_state(api::TASK_STATE_COMPLETE);
  EXPECT_FALSE(ConditionWantsRestart(t));
  t.mutable_status()->set_state(api::TASK_STATE_FAILED);
  EXPECT_TRUE(ConditionWantsRestart(t));
  t.mutable_spec()->mutable_restart_policy()->set_condition(api::RestartPolicy::NONE);
  EXPECT_FALSE(ConditionWantsRestart(t));

  // Jobs: a completion is final even with ANY.
  api::Task job;
  job.mutable_job_iteration()->set_index(1);
  job.mutable_status()->set_state(api::TASK_STATE_COMPLETE);
  EXPECT_FALSE(ConditionWantsRestart(job));
  job.mutable_status()->set_state(api::TASK_STATE_FAILED);
  EXPECT_TRUE(ConditionWantsRestart(job));

  t.mutable_spec()->mutable_restart_policy()->mutable_delay()->set_seconds(0);
  t.mutable_spec()->mutable_restart_policy()->mutable_window()->set_seconds(60);
  t.mutable_spec()->mutable_restart_policy()->set_max_attempts(3);
  p = RestartPolicyOf(t);
  EXPECT_EQ(p.delay, absl::ZeroDuration());
  EXPECT_EQ(p.window, absl::Seconds(60));
  EXPECT_EQ(p.max_attempts, 3u);
}

TEST(NodeTrackerTest, Verdicts) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  NodeTracker tracker(absl::Seconds(30));
  api::Node n;
  n.set_id("n1");
  n.mutable_status()->set_state(api::NodeStatus::READY);
  EXPECT_EQ(tracker.Judge("n1", &n, t0), NodeVerdict::kUsable);
  EXPECT_EQ(tracker.Judge("gone", nullptr, t0), NodeVerdict::kUnusable);
  n.mutable_spec()->set_availability(api::NODE_AVAILABILITY_PAUSE);
  EXPECT_EQ(tracker.Judge("n1", &n, t0), NodeVerdict::kKeep);
  n.mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  EXPECT_EQ(tracker.Judge("n1", &n, t0), NodeVerdict::kUnusable);
  n.mutable_spec()->set_availability(api::NODE_AVAILABILITY_ACTIVE);

  n.mutable_status()->set_state(api::NodeStatus::DOWN);
  tracker.Observe("n1", &n, t0);
  EXPECT_EQ(tracker.NextExpiry(), t0 + absl::Seconds(30));
  EXPECT_EQ(tracker.Judge("n1", &n, t0 + absl::Seconds(29)), NodeVerdict::kKeep);
  EXPECT_TRUE(tracker.TakeExpired(t0 + absl::Seconds(29)).empty());
  EXPECT_EQ(tracker.Judge("n1", &n, t0 + absl::Seconds(30)), NodeVerdict::kUnusable);
  EXPECT_EQ(tracker.TakeExpired(t0 + absl::Seconds(30)), std::vector<std::string>{"n1"});
  EXPECT_TRUE(tracker.TakeExpired(t0 + absl::Seconds(31)).empty());  // reported once
  EXPECT_EQ(tracker.NextExpiry(), absl::InfiniteFuture());

  // Back up, then down again: the grace starts over.
  n.mutable_status()->set_state(api::NodeStatus::READY);
  tracker.Observe("n1", &n, t0 + absl::Seconds(40));
  n.mutable_status()->set_state(api::NodeStatus::DOWN);
  tracker.Observe("n1", &n, t0 + absl::Seconds(50));
  EXPECT_EQ(tracker.Judge("n1", &n, t0 + absl::Seconds(60)), NodeVerdict::kKeep);

  NodeTracker swarm(absl::ZeroDuration());
  EXPECT_EQ(swarm.Judge("n1", &n, t0), NodeVerdict::kUnusable);
}

}  // namespace
}  // namespace shoal::manager::orchestrator
