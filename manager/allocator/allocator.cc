#include "manager/allocator/allocator.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <google/protobuf/util/message_differencer.h>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "manager/allocator/port_allocator.h"
#include "spdlog/spdlog.h"

namespace shoal::manager {
namespace {

// Passes one ReconcileOnce / loop round runs at most while a pass leaves work for the next
// (a task found its service's endpoint out of date).
constexpr int kMaxRounds = 3;

constexpr char kWriter[] = "allocator";

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t s = absl::ToUnixSeconds(t);
  ts->set_seconds(s);
  ts->set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(s)) / absl::Nanoseconds(1)));
}

// Whether the allocator should bring `task` from NEW to PENDING: NEW and meant to run.
bool Allocatable(const api::Task& task) {
  return task.status().state() == api::TASK_STATE_NEW &&
         task.desired_state() <= api::TASK_STATE_COMPLETE;
}

// Whether the service's endpoint answers its current spec (so tasks may copy it).
bool EndpointCurrent(const api::Service& s) {
  const bool wants = s.spec().has_endpoint_spec();
  if (wants != s.endpoint().has_spec()) return false;
  return !wants || google::protobuf::util::MessageDifferencer::Equals(s.spec().endpoint_spec(),
                                                                      s.endpoint().spec());
}

}  // namespace

struct Allocator::State {
  PortAllocator ports;
  // Services whose endpoint must be recomputed.
  absl::btree_set<std::string> dirty_services;
  // Services whose ports could not be allocated -> why.
  absl::flat_hash_map<std::string, std::string> conflicts;
  // Some service released ports since the conflicts were last retried.
  bool ports_freed = false;
  // NEW tasks to look at.
  absl::btree_set<std::string> new_tasks;
  // Service ID -> its NEW tasks that wait for it (conflict, or endpoint not written yet); looked
  // at again whenever the service is.
  absl::flat_hash_map<std::string, absl::btree_set<std::string>> waiting;

  // Moves the tasks waiting for `service_id` back to new_tasks.
  void Requeue(const std::string& service_id) {
    auto it = waiting.find(service_id);
    if (it == waiting.end()) return;
    new_tasks.insert(it->second.begin(), it->second.end());
    waiting.erase(it);
  }
  void ReleaseService(const std::string& service_id) {
    ports.Release(service_id);
    ports_freed = true;
    conflicts.erase(service_id);
    waiting.erase(service_id);
  }
};

Allocator::Allocator(store::MemoryStore* store, AllocatorOptions options)
    : BatchingLoop(store, options, "allocator", {api::OBJECT_KIND_SERVICE, api::OBJECT_KIND_TASK}) {
}

Allocator::~Allocator() { Stop(); }

void Allocator::Rebuild(const store::ReadTx& tx) {
  state_ = std::make_unique<State>();
  for (const api::Service* s : tx.List<api::Service>()) {
    // Every service is looked at in the first pass: endpoints that lost a port to another
    // service (or were never written) get reallocated there.
    state_->dirty_services.insert(s->id());
    if (!s->pending_delete()) state_->ports.Restore(s->id(), s->endpoint().ports());
  }
  for (api::TaskState desired : {api::TASK_STATE_RUNNING, api::TASK_STATE_COMPLETE}) {
    for (const api::Task* t : tx.FindTasksByDesiredState(desired)) {
      if (Allocatable(*t)) state_->new_tasks.insert(t->id());
    }
  }
}

void Allocator::Observe(const store::StoreChange& change) {
  for (const store::StoreEvent& e : change.events) {
    switch (e.kind()) {
      case api::OBJECT_KIND_SERVICE: {
        const api::Service& s = e.object->service();
        if (e.action == api::StoreAction::REMOVE) {
          state_->dirty_services.erase(s.id());
          state_->ReleaseService(s.id());
        } else {
          state_->dirty_services.insert(s.id());
        }
        break;
      }
      case api::OBJECT_KIND_TASK: {
        const api::Task& t = e.object->task();
        if (e.action != api::StoreAction::REMOVE && Allocatable(t)) {
          state_->new_tasks.insert(t.id());
        } else {
          state_->new_tasks.erase(t.id());
        }
        break;
      }
      default:
        break;
    }
  }
}

bool Allocator::HasWork() const {
  return !state_->dirty_services.empty() || !state_->new_tasks.empty() ||
         (state_->ports_freed && !state_->conflicts.empty());
}

absl::Status Allocator::Pass(bool resync) {
  const bool scan = resync;
  if (state_ == nullptr) {
    store_->View([&](const store::ReadTx& tx) ABSL_NO_THREAD_SAFETY_ANALYSIS { Rebuild(tx); });
  } else if (scan) {
    // Whatever a missed change would have asked for: every service, every NEW task.
    store_->View([&](const store::ReadTx& tx) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      for (const api::Service* s : tx.List<api::Service>()) state_->dirty_services.insert(s->id());
      for (api::TaskState desired : {api::TASK_STATE_RUNNING, api::TASK_STATE_COMPLETE}) {
        for (const api::Task* t : tx.FindTasksByDesiredState(desired)) {
          if (Allocatable(*t)) state_->new_tasks.insert(t->id());
        }
      }
    });
    state_->ports_freed = true;
  }
  absl::Status first;
  for (int round = 0; round < kMaxRounds; ++round) {
    absl::Status s = AllocateServices();
    if (first.ok()) first = s;
    s = AllocateTasks();
    if (first.ok()) first = s;
    // Another round only for services a task found out of date (and their tasks).
    if (!first.ok() || state_->dirty_services.empty()) break;
  }
  return first;
}

absl::Status Allocator::AllocateServices() {
  State& st = *state_;
  std::vector<std::string> ids(st.dirty_services.begin(), st.dirty_services.end());
  if (st.ports_freed) {
    for (const auto& [id, reason] : st.conflicts) ids.push_back(id);
    st.ports_freed = false;
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  if (ids.empty()) return absl::OkStatus();

  absl::Status status = store_->Batch([&](store::Batch& batch) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (const std::string& id : ids) {
      absl::Status s = batch.Update([&](store::WriteTx& tx) -> absl::Status {
        const api::Service* svc = tx.Get<api::Service>(id);
        st.Requeue(id);
        if (svc == nullptr || svc->pending_delete()) {
          st.ReleaseService(id);
          return absl::OkStatus();
        }
        auto name_of = [&tx](const std::string& other) {
          const api::Service* o = tx.Get<api::Service>(other);
          return o == nullptr ? std::string() : o->spec().annotations().name();
        };
        api::Endpoint endpoint;
        if (svc->spec().has_endpoint_spec()) {
          absl::StatusOr<std::vector<api::PortConfig>> ports =
              st.ports.Allocate(id, svc->spec().endpoint_spec(), svc->endpoint().ports(), name_of);
          if (!ports.ok()) {
            auto [it, added] =
                st.conflicts.insert_or_assign(id, std::string(ports.status().message()));
            if (added) {
              spdlog::warn("allocator: service {} ({}): {}", svc->spec().annotations().name(), id,
                           it->second);
            }
            return absl::OkStatus();
          }
          *endpoint.mutable_spec() = svc->spec().endpoint_spec();
          for (api::PortConfig& p : *ports) *endpoint.add_ports() = std::move(p);
        } else {
          st.ports.Release(id);
        }
        st.conflicts.erase(id);
        // Virtual IPs are the network allocator's (to come); keep whatever is there.
        *endpoint.mutable_virtual_ips() = svc->endpoint().virtual_ips();
        if (google::protobuf::util::MessageDifferencer::Equals(endpoint, svc->endpoint())) {
          return absl::OkStatus();
        }
        api::Service updated = *svc;
        *updated.mutable_endpoint() = std::move(endpoint);
        // Ports it published before may be free now: retry the services that wanted them.
        st.ports_freed = true;
        return tx.Update(std::move(updated));
      });
      if (!s.ok()) {
        spdlog::warn("allocator: cannot write the endpoint of service {}: {}", id, s.ToString());
        continue;  // Kept dirty: the next pass recomputes it from a fresh read.
      }
      st.dirty_services.erase(id);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) {
    // The entries that failed took some of these with them: look at all of them again.
    st.dirty_services.insert(ids.begin(), ids.end());
    return absl::Status(status.code(),
                        absl::StrCat("allocator: writing service endpoints: ", status.message()));
  }
  return absl::OkStatus();
}

absl::Status Allocator::AllocateTasks() {
  State& st = *state_;
  if (st.new_tasks.empty()) return absl::OkStatus();
  std::vector<std::string> ids(st.new_tasks.begin(), st.new_tasks.end());
  st.new_tasks.clear();

  const absl::Time now = clock()->Now();
  google::protobuf::Timestamp stamp;
  SetTime(now, &stamp);
  // A NEW task keeps its state; only what it waits for is written, and only when it changes.
  auto note = [&](store::WriteTx& tx, const api::Task& t, const std::string& message,
                  const std::string& err) -> absl::Status {
    if (t.status().message() == message && t.status().err() == err) return absl::OkStatus();
    api::Task updated = t;
    updated.mutable_status()->set_message(message);
    updated.mutable_status()->set_err(err);
    *updated.mutable_status()->mutable_timestamp() = stamp;
    updated.mutable_status()->set_applied_by(kWriter);
    *updated.mutable_status()->mutable_applied_at() = stamp;
    return tx.Update(std::move(updated));
  };

  absl::Status status = store_->Batch([&](store::Batch& batch) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (const std::string& id : ids) {
      absl::Status s = batch.Update([&](store::WriteTx& tx) -> absl::Status {
        const api::Task* t = tx.Get<api::Task>(id);
        if (t == nullptr || !Allocatable(*t)) return absl::OkStatus();
        if (!t->spec().networks().empty()) {
          return note(tx, *t, kWaitingForNetworksMessage, "");
        }
        const api::Endpoint* endpoint = nullptr;
        if (!t->service_id().empty()) {
          const api::Service* svc = tx.Get<api::Service>(t->service_id());
          // Gone or going: the orchestrators shut such tasks down; nothing to allocate.
          if (svc == nullptr || svc->pending_delete()) return absl::OkStatus();
          if (auto c = st.conflicts.find(svc->id()); c != st.conflicts.end()) {
            st.waiting[svc->id()].insert(id);
            return note(tx, *t, c->second, c->second);
          }
          if (!EndpointCurrent(*svc)) {
            // Its endpoint is not written yet (or a newer spec came in): once it is.
            st.dirty_services.insert(svc->id());
            st.waiting[svc->id()].insert(id);
            return absl::OkStatus();
          }
          if (svc->has_endpoint()) endpoint = &svc->endpoint();
        }
        api::Task updated = *t;
        if (endpoint != nullptr) {
          *updated.mutable_endpoint() = *endpoint;
        } else {
          updated.clear_endpoint();
        }
        api::TaskStatus* status = updated.mutable_status();
        status->set_state(api::TASK_STATE_PENDING);
        status->set_message(kAllocatedMessage);
        status->clear_err();
        *status->mutable_timestamp() = stamp;
        status->set_applied_by(kWriter);
        *status->mutable_applied_at() = stamp;
        return tx.Update(std::move(updated));
      });
      if (!s.ok()) {
        spdlog::warn("allocator: cannot write task {}: {}", id, s.ToString());
        st.new_tasks.insert(id);
      }
    }
    return absl::OkStatus();
  });
  if (!status.ok()) {
    // Entries that failed dropped some of these writes: look at every one again.
    st.new_tasks.insert(ids.begin(), ids.end());
    return absl::Status(status.code(),
                        absl::StrCat("allocator: writing tasks: ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace shoal::manager
