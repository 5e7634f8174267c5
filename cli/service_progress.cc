#include "cli/service_progress.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "cli/duration.h"
#include "cli/json_util.h"
#include "cli/service_json.h"
#include "google/protobuf/util/message_differencer.h"

namespace shoal::cli {
namespace {

constexpr size_t kMaxProgressLines = 20;  // per-task lines only for this many tasks or fewer
constexpr size_t kMaxErrorWidth = 75;
constexpr size_t kTruncatedIdLength = 12;

bool IsJob(const api::ServiceSpec& spec) {
  return spec.has_replicated_job() || spec.has_global_job();
}

// Desired states the display knows (docker skips tasks to be removed).
bool Displayable(const api::Task& t) {
  return t.desired_state() < api::TASK_STATE_REMOVE && t.status().state() < api::TASK_STATE_REMOVE;
}

bool IsFailure(const api::Task& t, bool job) {
  switch (t.status().state()) {
    case api::TASK_STATE_FAILED:
    case api::TASK_STATE_REJECTED:
      return true;
    case api::TASK_STATE_COMPLETE:
      return !job;  // a service's task is meant to keep running
    default:
      return false;
  }
}

std::string FailureText(const api::Task& t) {
  if (!t.status().err().empty()) return t.status().err();
  if (t.status().state() == api::TASK_STATE_COMPLETE) {
    return "task exited with code 0, but a service's tasks are meant to keep running (use --mode "
           "replicated-job for tasks that finish)";
  }
  if (!t.status().message().empty()) return t.status().message();
  return TaskStateName(t.status().state());
}

std::string TaskText(const api::Task& t) {
  if (t.status().err().empty()) return TaskStateName(t.status().state());
  std::string err = absl::StrReplaceAll(t.status().err(), {{"\n", " "}});
  if (err.size() > kMaxErrorWidth) err = err.substr(0, kMaxErrorWidth - 1) + "\xe2\x80\xa6";  // …
  return err;
}

// Of two tasks for the same slot or node, the one to show: the lower desired state (the one
// meant to run), then the newer.
bool Prefer(const api::Task& a, const api::Task& b) {
  if (a.desired_state() != b.desired_state()) return a.desired_state() < b.desired_state();
  const auto& ca = a.meta().created_at();
  const auto& cb = b.meta().created_at();
  if (ca.seconds() != cb.seconds()) return ca.seconds() > cb.seconds();
  if (ca.nanos() != cb.nanos()) return ca.nanos() > cb.nanos();
  return a.id() > b.id();
}

template <typename Key>
void Pick(std::map<Key, const api::Task*>* by, const Key& key, const api::Task& t) {
  auto [it, added] = by->emplace(key, &t);
  if (!added && Prefer(t, *it->second)) it->second = &t;
}

bool RunningAsWanted(const api::Task& t) {
  return t.desired_state() <= api::TASK_STATE_RUNNING &&
         t.status().state() == api::TASK_STATE_RUNNING;
}

std::string Overall(uint64_t done, uint64_t total, bool rolling_back) {
  return absl::StrCat(rolling_back ? "rolling back update: " : "", done, " out of ", total,
                      " tasks");
}

}  // namespace

std::set<std::string> FailedTaskIds(const std::vector<api::Task>& tasks) {
  std::set<std::string> out;
  for (const api::Task& t : tasks) {
    if (IsFailure(t, t.has_job_iteration())) out.insert(t.id());
  }
  return out;
}

ProgressReport EvaluateProgress(const api::Service& service, const std::vector<api::Task>& tasks,
                                const std::vector<api::Node>& nodes, absl::Time now, bool rollback,
                                ProgressState* state) {
  ProgressReport r;
  const api::ServiceSpec& spec = service.spec();
  const std::string& name = spec.annotations().name();
  auto fail = [&r](std::string error) {
    r.outcome = ProgressReport::Outcome::kFailed;
    r.error = std::move(error);
    return r;
  };

  // The update status first: it can end the wait whatever the tasks do.
  if (service.has_update_status()) {
    const api::UpdateStatus& u = service.update_status();
    switch (u.state()) {
      case api::UpdateStatus::PAUSED:
        return fail(absl::StrCat("service update paused: ", u.message()));
      case api::UpdateStatus::ROLLBACK_PAUSED:
        return fail(absl::StrCat("service rollback paused: ", u.message()));
      case api::UpdateStatus::ROLLBACK_STARTED:
      case api::UpdateStatus::ROLLBACK_COMPLETED:
        state->rolling_back = true;
        if (!u.message().empty()) r.lines.push_back({"rollback", u.message()});
        if (!rollback && u.state() == api::UpdateStatus::ROLLBACK_COMPLETED) {
          return fail(absl::StrCat("the update of service ", name,
                                   " failed and was rolled back: ", u.message()));
        }
        break;
      default:
        break;
    }
  }
  const bool rolling_back = rollback || state->rolling_back;

  std::set<std::string> active_nodes;
  for (const api::Node& n : nodes) {
    if (n.status().state() != api::NodeStatus::DOWN) active_nodes.insert(n.id());
  }
  const bool job = IsJob(spec);
  const uint64_t iteration = service.job_status().job_iteration().index();
  std::vector<const api::Task*> relevant;  // this service's, current iteration, on live nodes
  for (const api::Task& t : tasks) {
    if (t.service_id() != service.id() || !Displayable(t)) continue;
    if (job && t.job_iteration().index() != iteration) continue;
    if (!t.node_id().empty() && active_nodes.count(t.node_id()) == 0) continue;
    relevant.push_back(&t);
  }
  auto up_to_date = [&spec](const api::Task& t) {
    return google::protobuf::util::MessageDifferencer::Equals(t.spec(), spec.task_template());
  };

  // Failures of this change, remembered across polls.
  for (const api::Task* t : relevant) {
    if (IsFailure(*t, job) && up_to_date(*t) && state->failed_before.count(t->id()) == 0) {
      state->failures[t->id()] = FailureText(*t);
    }
  }
  std::map<std::string, int> by_text;
  for (const auto& [id, text] : state->failures) {
    if (++by_text[text] >= kFailureRepeats) {
      return fail(absl::StrCat("tasks of service ", name, " keep failing: \"", text, "\" (",
                               by_text[text], " times)"));
    }
  }

  bool converged = false;
  std::vector<ProgressLine> task_lines;
  if (spec.has_replicated()) {
    const uint64_t replicas = spec.replicated().replicas();
    std::map<uint64_t, const api::Task*> by_slot;
    for (const api::Task* t : relevant) {
      if (up_to_date(*t)) Pick(&by_slot, t->slot(), *t);
    }
    for (const auto& [slot, t] : by_slot) {
      if (RunningAsWanted(*t)) ++r.done;
    }
    r.total = replicas;
    converged = r.done == replicas;
    if (replicas <= kMaxProgressLines) {
      auto it = by_slot.begin();
      for (uint64_t i = 1; i <= replicas; ++i) {
        std::string text;
        if (it != by_slot.end()) text = TaskText(*(it++)->second);
        task_lines.push_back({absl::StrCat(i, "/", replicas), text});
      }
    }
  } else if (spec.has_global()) {
    std::set<std::string> holding;  // nodes with a task meant to run, of any version
    std::map<std::string, const api::Task*> by_node;
    for (const api::Task* t : relevant) {
      if (t->node_id().empty()) continue;
      if (t->desired_state() <= api::TASK_STATE_RUNNING) holding.insert(t->node_id());
      if (up_to_date(*t)) Pick(&by_node, t->node_id(), *t);
    }
    r.total = holding.size();
    for (const std::string& node : holding) {
      auto it = by_node.find(node);
      if (it != by_node.end() && RunningAsWanted(*it->second)) ++r.done;
      if (holding.size() <= kMaxProgressLines) {
        task_lines.push_back(
            {node.substr(0, kTruncatedIdLength), it == by_node.end() ? "" : TaskText(*it->second)});
      }
    }
    converged = r.total > 0 && r.done == r.total;
  } else if (spec.has_replicated_job()) {
    const api::ReplicatedJob& j = spec.replicated_job();
    r.total = j.total_completions() != 0 ? j.total_completions()
                                         : std::max<uint64_t>(j.max_concurrent(), 1);
    std::map<uint64_t, const api::Task*> active;
    for (const api::Task* t : relevant) {
      if (t->status().state() == api::TASK_STATE_COMPLETE) {
        ++r.done;
      } else if (t->status().state() < api::TASK_STATE_COMPLETE &&
                 t->desired_state() <= api::TASK_STATE_COMPLETE) {
        Pick(&active, t->slot(), *t);
      }
    }
    converged = r.done >= r.total;
    if (!converged && r.total <= kMaxProgressLines) {
      for (const auto& [slot, t] : active) {
        task_lines.push_back({absl::StrCat(slot, "/", r.total), TaskText(*t)});
      }
    }
  } else if (spec.has_global_job()) {
    std::set<std::string> with_task, completed;
    std::map<std::string, const api::Task*> by_node;
    for (const api::Task* t : relevant) {
      if (t->node_id().empty()) continue;
      with_task.insert(t->node_id());
      if (t->status().state() == api::TASK_STATE_COMPLETE) completed.insert(t->node_id());
      Pick(&by_node, t->node_id(), *t);
    }
    r.total = with_task.size();
    r.done = completed.size();
    converged = r.total > 0 && r.done == r.total;
    if (!converged && r.total <= kMaxProgressLines) {
      for (const auto& [node, t] : by_node) {
        if (completed.count(node) == 0) {
          task_lines.push_back({node.substr(0, kTruncatedIdLength), TaskText(*t)});
        }
      }
    }
  } else {
    return fail(absl::StrCat("service ", name, " has no mode; nothing to wait for"));
  }

  if ((spec.has_global() || spec.has_global_job()) && r.total == 0) {
    r.lines.push_back({"overall progress", "waiting for new tasks"});
  } else {
    r.lines.push_back({"overall progress", Overall(r.done, r.total, rolling_back)});
  }
  r.lines.insert(r.lines.end(), task_lines.begin(), task_lines.end());

  if (job) {
    if (converged) {
      r.lines.push_back({"", "job complete"});
      r.outcome = ProgressReport::Outcome::kDone;
    }
    return r;
  }
  if (converged) {
    if (!state->converged_since) state->converged_since = now;
    const absl::Duration monitor = FromProto(EffectiveUpdateConfig(spec, rollback).monitor());
    const absl::Duration elapsed = now - *state->converged_since;
    if (elapsed >= monitor) {
      r.lines.push_back({"verify", "Service converged"});
      r.outcome = ProgressReport::Outcome::kDone;
    } else {
      const int64_t seconds = absl::ToInt64Seconds(absl::Ceil(monitor - elapsed, absl::Seconds(1)));
      r.lines.push_back(
          {"verify",
           absl::StrCat("Waiting ", seconds, " seconds to verify that tasks are stable..."),
           /*countdown=*/true});
    }
  } else if (state->converged_since) {
    r.lines.push_back({"verify", "Detected task failure"});
    state->converged_since.reset();
  }
  return r;
}

void ProgressPrinter::Show(const std::vector<ProgressLine>& lines) {
  if (!terminal_) {
    for (const ProgressLine& l : lines) {
      if (l.text.empty()) continue;  // a slot without a task yet
      auto it = printed_.find(l.id);
      if (it != printed_.end() &&
          (it->second.text == l.text || (it->second.countdown && l.countdown))) {
        continue;
      }
      out_ << l.Render() << "\n";
      printed_[l.id] = l;
    }
    out_ << std::flush;
    return;
  }
  std::vector<ProgressLine> next = lines;
  if (next.size() < drawn_.size()) next.resize(drawn_.size());  // blank what is left over
  if (next == drawn_) return;
  if (!drawn_.empty()) out_ << "\x1b[" << drawn_.size() << "A";  // back to the first line
  for (const ProgressLine& l : next) {
    out_ << "\x1b[2K";  // clear the line
    if (!l.id.empty() || !l.text.empty()) out_ << l.Render();
    out_ << "\n";
  }
  out_ << std::flush;
  drawn_ = std::move(next);
}

void WaitForService(Context& ctx, const std::string& service_id, const std::string& name,
                    const WaitOptions& options) {
  Clock& clock = ctx.clock();
  const absl::Time deadline = clock.Now() + options.timeout;
  ProgressState state;
  state.failed_before = options.failed_before;
  ProgressPrinter printer(ctx.out(), ctx.out_is_terminal());
  const std::string ps_hint = absl::StrCat("`shoal service ps ", name, "` shows its tasks");
  ProgressReport report;
  while (true) {
    api::GetServiceResponse service;
    api::ListTasksResponse tasks;
    api::ListNodesResponse nodes;
    grpc::Status s;
    {
      api::GetServiceRequest req;
      req.set_service_id(service_id);
      auto call = CallContext();
      s = ctx.control().GetService(call.get(), req, &service);
    }
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
      throw CommandError{absl::StrCat("service ", name, " was removed while waiting for it")};
    }
    if (s.ok()) {
      api::ListTasksRequest req;
      req.mutable_filters()->add_service_ids(service_id);
      auto call = CallContext();
      s = ctx.control().ListTasks(call.get(), req, &tasks);
    }
    if (s.ok()) {
      auto call = CallContext();
      s = ctx.control().ListNodes(call.get(), api::ListNodesRequest(), &nodes);
    }
    // A manager that loses or changes leadership answers UNAVAILABLE for a moment: keep polling.
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE && clock.Now() < deadline) {
      clock.SleepUntil(std::min(deadline, clock.Now() + options.poll));
      continue;
    }
    ctx.Check(s);
    report = EvaluateProgress(service.service(),
                              std::vector<api::Task>(tasks.tasks().begin(), tasks.tasks().end()),
                              std::vector<api::Node>(nodes.nodes().begin(), nodes.nodes().end()),
                              clock.Now(), options.rollback, &state);
    if (!options.quiet) printer.Show(report.lines);
    if (report.outcome == ProgressReport::Outcome::kDone) return;
    if (report.outcome == ProgressReport::Outcome::kFailed) {
      throw CommandError{absl::StrCat(report.error, "; ", ps_hint)};
    }
    if (clock.Now() >= deadline) {
      throw CommandError{absl::StrCat(
          "service ", name, " has not converged after ", GoDurationString(options.timeout), " (",
          report.done, " out of ", report.total,
          " tasks); shoal stopped waiting, the managers go on in the background: ", ps_hint,
          " (use -d not to wait)")};
    }
    clock.SleepUntil(std::min(deadline, clock.Now() + options.poll));
  }
}

}  // namespace shoal::cli
