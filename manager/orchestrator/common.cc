#include "manager/orchestrator/common.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "manager/allocator/allocator.h"

namespace shoal::manager::orchestrator {

ServiceMode ModeOf(const api::Service& service) {
  switch (service.spec().mode_case()) {
    case api::ServiceSpec::kReplicated:
      return ServiceMode::kReplicated;
    case api::ServiceSpec::kGlobal:
      return ServiceMode::kGlobal;
    case api::ServiceSpec::kReplicatedJob:
      return ServiceMode::kReplicatedJob;
    case api::ServiceSpec::kGlobalJob:
      return ServiceMode::kGlobalJob;
    default:
      return ServiceMode::kNone;
  }
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t s = absl::ToUnixSeconds(t);
  out->set_seconds(s);
  out->set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(s)) / absl::Nanoseconds(1)));
}

absl::Time CreatedAt(const api::Task& t) {
  if (t.meta().has_created_at()) return FromProto(t.meta().created_at());
  return FromProto(t.status().timestamp());
}

std::string TaskName(const api::Service& service, uint64_t slot, absl::string_view node_id,
                     absl::string_view task_id) {
  const std::string& name = service.spec().annotations().name();
  if (slot > 0) return absl::StrCat(name, ".", slot, ".", task_id);
  return absl::StrCat(name, ".", node_id, ".", task_id);
}

api::Task NewTask(const api::Service& service, const api::Cluster* cluster, uint64_t slot,
                  const std::string& node_id, absl::Time now) {
  api::Task t;
  t.set_id(NewId());
  t.set_service_id(service.id());
  t.set_slot(slot);
  t.set_node_id(node_id);
  *t.mutable_spec() = service.spec().task_template();
  *t.mutable_spec_version() = service.spec_version();
  t.mutable_annotations()->set_name(TaskName(service, slot, node_id, t.id()));
  *t.mutable_service_annotations() = service.spec().annotations();
  if (NeedsAllocation(service)) {
    t.mutable_status()->set_state(api::TASK_STATE_NEW);
    t.mutable_status()->set_message("created");
  } else {
    t.mutable_status()->set_state(api::TASK_STATE_PENDING);
    t.mutable_status()->set_message(kAllocatedMessage);
  }
  ToProto(now, t.mutable_status()->mutable_timestamp());
  const bool job = IsJob(ModeOf(service));
  t.set_desired_state(RunDesiredState(job));
  if (job) *t.mutable_job_iteration() = service.job_status().job_iteration();
  const api::TaskSpec& tmpl = service.spec().task_template();
  if (tmpl.has_log_driver() && !tmpl.log_driver().name().empty()) {
    *t.mutable_log_driver() = tmpl.log_driver();
  } else if (cluster != nullptr && cluster->spec().task_defaults().has_log_driver() &&
             !cluster->spec().task_defaults().log_driver().name().empty()) {
    *t.mutable_log_driver() = cluster->spec().task_defaults().log_driver();
  }
  return t;
}

RestartPolicy RestartPolicyOf(const api::Task& task) {
  RestartPolicy p;
  if (!task.spec().has_restart_policy()) return p;
  const api::RestartPolicy& rp = task.spec().restart_policy();
  p.condition = rp.condition();
  if (rp.has_delay()) p.delay = std::max(FromProto(rp.delay()), absl::ZeroDuration());
  p.max_attempts = rp.max_attempts();
  if (rp.has_window()) p.window = std::max(FromProto(rp.window()), absl::ZeroDuration());
  return p;
}

bool ConditionWantsRestart(const api::Task& task) {
  const api::TaskState state = task.status().state();
  if (!IsTerminal(state)) return false;
  if (IsJobTask(task) && state == api::TASK_STATE_COMPLETE) return false;
  switch (RestartPolicyOf(task).condition) {
    case api::RestartPolicy::NONE:
      return false;
    case api::RestartPolicy::ON_FAILURE:
      return state != api::TASK_STATE_COMPLETE;
    default:
      return true;
  }
}

void NodeTracker::Observe(absl::string_view node_id, const api::Node* node, absl::Time now) {
  if (node == nullptr || node->status().state() != api::NodeStatus::DOWN) {
    down_.erase(node_id);
    return;
  }
  down_.try_emplace(node_id, Down{now, false});
}

NodeVerdict NodeTracker::Judge(absl::string_view node_id, const api::Node* node, absl::Time now) {
  if (node == nullptr) return NodeVerdict::kUnusable;
  if (node->spec().availability() == api::NODE_AVAILABILITY_DRAIN) return NodeVerdict::kUnusable;
  if (node->status().state() == api::NodeStatus::DOWN) {
    auto [it, added] = down_.try_emplace(node_id, Down{now, false});
    return now - it->second.since >= grace_ ? NodeVerdict::kUnusable : NodeVerdict::kKeep;
  }
  if (node->spec().availability() == api::NODE_AVAILABILITY_PAUSE) return NodeVerdict::kKeep;
  return NodeVerdict::kUsable;
}

absl::Time NodeTracker::NextExpiry() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [id, d] : down_) {
    if (!d.expired_reported) next = std::min(next, d.since + grace_);
  }
  return next;
}

std::vector<std::string> NodeTracker::TakeExpired(absl::Time now) {
  std::vector<std::string> out;
  for (auto& [id, d] : down_) {
    if (!d.expired_reported && now - d.since >= grace_) {
      d.expired_reported = true;
      out.push_back(id);
    }
  }
  return out;
}

absl::Status RaiseDesiredState(store::WriteTx& tx, absl::string_view task_id,
                               api::TaskState desired) {
  const api::Task* t = tx.Get<api::Task>(task_id);
  if (t == nullptr || t->desired_state() >= desired) return absl::OkStatus();
  api::Task updated = *t;
  updated.set_desired_state(desired);
  return tx.Update(std::move(updated));
}

bool HasLiveTask(const store::ReadTx& tx, absl::string_view service_id, uint64_t slot,
                 absl::string_view node_id) {
  const std::vector<const api::Task*> tasks =
      slot > 0 ? tx.FindTasksBySlot(service_id, slot)
               : tx.FindTasksByServiceAndNode(service_id, node_id);
  for (const api::Task* t : tasks) {
    if (IsLive(*t)) return true;
  }
  return false;
}

std::vector<std::string> TasksToRemove(const store::ReadTx& tx, absl::string_view service_id) {
  std::vector<std::string> out;
  for (const api::Task* t : tx.FindTasksByService(service_id)) {
    if (t->desired_state() < api::TASK_STATE_REMOVE && !IsFinished(*t)) out.push_back(t->id());
  }
  return out;
}

absl::Status RunBatch(store::MemoryStore* store,
                      const std::vector<std::function<absl::Status(store::WriteTx&)>>& ops,
                      const std::atomic<bool>* stop) {
  if (ops.empty()) return absl::OkStatus();
  return store->Batch([&](store::Batch& batch) -> absl::Status {
    for (const auto& op : ops) {
      if (stop != nullptr && stop->load()) {
        return absl::CancelledError("the orchestrator is stopping");
      }
      if (absl::Status s = batch.Update(op); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

}  // namespace shoal::manager::orchestrator
