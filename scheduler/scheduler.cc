#include "scheduler/scheduler.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/str_cat.h"
#include "scheduler/node_info.h"
#include "scheduler/pipeline.h"
#include "scheduler/spread.h"

namespace shoal::scheduler {
namespace {

// What every group of one Schedule() call reads about every node, gathered once per call rather
// than once per group: with many groups, per-node lookups (a label in the Node, a service in the
// NodeInfo's map) cost more in cache misses than the placement itself.
class ClusterView {
 public:
  // `services`: the services of the tasks being placed.
  ClusterView(NodeSet& nodes, const absl::flat_hash_set<std::string>& services) {
    nodes_.reserve(nodes.size());
    for (auto& [id, info] : nodes) {
      const int rank = static_cast<int>(nodes_.size());
      nodes_.push_back(&info);
      for (const auto& [service, count] : info.active_tasks_by_service()) {
        if (services.contains(service)) running_[service][rank] = count;
      }
    }
  }

  // All nodes in ID order; a node's index here is its rank.
  const std::vector<NodeInfo*>& nodes() const { return nodes_; }

  // Rank -> active tasks of `service` there, for nodes with at least one. The group placing
  // the service's tasks keeps it current.
  absl::flat_hash_map<int, int>& Running(const std::string& service) { return running_[service]; }

  // The nodes' values of a spread label, as small integers numbered in the values' sort order
  // (so iterating 0..n-1 visits values in order; "" — no label — sorts first).
  struct Column {
    std::vector<int> value_of_rank;
    int values = 0;
  };
  const Column& SpreadColumn(const SpreadKey& key) {
    auto [it, inserted] = columns_.try_emplace(absl::StrCat(key.engine ? "e:" : "n:", key.label));
    Column& c = it->second;
    if (!inserted) return c;
    // Number values as first seen, then renumber them in sorted order.
    absl::flat_hash_map<absl::string_view, int> seen;
    std::vector<absl::string_view> values;
    c.value_of_rank.resize(nodes_.size());
    for (size_t r = 0; r < nodes_.size(); ++r) {
      const absl::string_view v = key.ValueOf(nodes_[r]->node());
      auto [pos, added] = seen.try_emplace(v, static_cast<int>(values.size()));
      if (added) values.push_back(v);
      c.value_of_rank[r] = pos->second;
    }
    std::vector<int> order(values.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return values[a] < values[b]; });
    std::vector<int> sorted_id(values.size());
    for (size_t i = 0; i < order.size(); ++i) sorted_id[order[i]] = static_cast<int>(i);
    for (int& id : c.value_of_rank) id = sorted_id[id];
    c.values = static_cast<int>(values.size());
    return c;
  }

 private:
  std::vector<NodeInfo*> nodes_;
  // node_hash_map: references handed out stay valid as other entries are added.
  absl::node_hash_map<std::string, absl::flat_hash_map<int, int>> running_;
  absl::node_hash_map<std::string, Column> columns_;
};

// A node that passed the filters for the group being placed, with the figures that order it.
struct Candidate {
  NodeInfo* info;
  int rank;           // Position in node ID order: the last tie-breaker.
  int service_tasks;  // Active tasks of the group's service on the node.
  int total_tasks;    // Active tasks on the node.
};

// Heap order: std::*_heap keep the greatest element at the front, so "less" here means "a worse
// choice than".
struct WorseChoice {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.service_tasks != b.service_tasks) return a.service_tasks > b.service_tasks;
    if (a.total_tasks != b.total_tasks) return a.total_tasks > b.total_tasks;
    return a.rank > b.rank;
  }
};

// One node of the spread tree: the nodes sharing the values of the first few spread labels.
// Leaves hold the candidate nodes as a heap, best first.
struct Branch {
  int64_t tasks = 0;  // Active tasks of the service on every node here, placed ones included.
  bool full = false;  // No candidate here can take another task of the group.
  // Indexed by value number (ClusterView::Column), so in value order; null where no node has
  // that value. (unique_ptr: Branch is incomplete here.)
  std::vector<std::unique_ptr<Branch>> children;
  std::vector<Candidate> heap;
};

bool MarkFull(Branch& b) {
  if (b.children.empty()) {
    std::make_heap(b.heap.begin(), b.heap.end(), WorseChoice());
    b.full = b.heap.empty();
  } else {
    b.full = true;
    for (auto& child : b.children) {
      if (child != nullptr) b.full &= MarkFull(*child);
    }
  }
  return b.full;
}

// Places one group of identical tasks.
class GroupPlacer {
 public:
  GroupPlacer(Pipeline& pipeline, ClusterView& view, const std::vector<const api::Task*>& tasks,
              Decisions* out)
      : pipeline_(pipeline), view_(view), tasks_(tasks), out_(out) {}

  void Run() {
    const api::Task& first = *tasks_.front();
    pipeline_.SetTask(first);
    demand_ = TaskDemand::FromTask(first);
    running_ = &view_.Running(demand_->service_id);
    BuildTree(first);
    MarkFull(root_);
    Place(root_, static_cast<int64_t>(tasks_.size()));
    if (next_ == tasks_.size()) return;

    // Explain with the nodes as they are now: those that filled up during this batch say so.
    pipeline_.ResetCounts();
    for (const NodeInfo* n : view_.nodes()) pipeline_.Process(*n);
    const std::string reason = NoSuitableNode(pipeline_.Explain());
    for (; next_ < tasks_.size(); ++next_) {
      out_->unplaced.push_back(Unplaced{tasks_[next_]->id(), reason});
    }
  }

 private:
  void BuildTree(const api::Task& task) {
    std::vector<const ClusterView::Column*> columns;
    for (const api::PlacementPreference& p : task.spec().placement().preferences()) {
      if (!p.has_spread()) continue;
      if (std::optional<SpreadKey> k = SpreadKey::Parse(p.spread().spread_descriptor())) {
        columns.push_back(&view_.SpreadColumn(*k));
      }
    }
    const std::vector<NodeInfo*>& nodes = view_.nodes();
    std::vector<int> service_tasks(nodes.size(), 0);
    for (const auto& [rank, count] : *running_) {
      service_tasks[rank] = count;
    }
    for (size_t rank = 0; rank < nodes.size(); ++rank) {
      NodeInfo* n = nodes[rank];
      // Every node counts towards its branch's tasks, candidate or not: the spread is of the
      // service's tasks wherever they run.
      Branch* b = &root_;
      for (const ClusterView::Column* c : columns) {
        b->tasks += service_tasks[rank];
        if (b->children.empty()) b->children.resize(c->values);
        std::unique_ptr<Branch>& child = b->children[c->value_of_rank[rank]];
        if (child == nullptr) child = std::make_unique<Branch>();
        b = child.get();
      }
      b->tasks += service_tasks[rank];
      if (pipeline_.Check(*n) == Refusal::kNone) {
        b->heap.push_back(
            Candidate{n, static_cast<int>(rank), service_tasks[rank], n->active_tasks()});
      }
    }
  }

  // Places up to `n` tasks under `b`; returns how many it placed.
  int64_t Place(Branch& b, int64_t n) {
    if (b.full || n <= 0) return 0;
    if (b.children.empty()) return PlaceOnLeaf(b, n);
    int64_t placed = 0;
    std::vector<Branch*> open;
    std::vector<int64_t> counts;
    while (placed < n) {
      open.clear();
      counts.clear();
      for (auto& child : b.children) {
        if (child == nullptr || child->full) continue;
        open.push_back(child.get());
        counts.push_back(child->tasks);
      }
      if (open.empty()) break;
      // A branch that takes less than its share is full; the next round splits what it left
      // over the others.
      const std::vector<int64_t> shares = EvenSplit(counts, n - placed);
      bool short_of_share = false;
      for (size_t i = 0; i < open.size(); ++i) {
        if (shares[i] == 0) continue;
        const int64_t got = Place(*open[i], shares[i]);
        placed += got;
        if (got < shares[i]) short_of_share = true;
      }
      if (!short_of_share) break;
    }
    b.tasks += placed;
    b.full = std::all_of(b.children.begin(), b.children.end(),
                         [](const auto& c) { return c == nullptr || c->full; });
    return placed;
  }

  int64_t PlaceOnLeaf(Branch& b, int64_t n) {
    int64_t placed = 0;
    while (placed < n && !b.heap.empty()) {
      std::pop_heap(b.heap.begin(), b.heap.end(), WorseChoice());
      Candidate& c = b.heap.back();
      const api::Task& task = *tasks_[next_++];
      const bool active = IsActive(task);
      out_->assigned.push_back(
          Assignment{task.id(), c.info->id(), c.info->Place(task.id(), demand_, active)});
      ++placed;
      if (active) {
        ++c.service_tasks;
        ++(*running_)[c.rank];
      }
      c.total_tasks = c.info->active_tasks();
      // Only what this placement changed can turn the node away from the next task.
      if (pipeline_.Check(*c.info, Pipeline::Stage::kDynamic) == Refusal::kNone) {
        std::push_heap(b.heap.begin(), b.heap.end(), WorseChoice());
      } else {
        b.heap.pop_back();
      }
    }
    b.tasks += placed;
    b.full = b.heap.empty();
    return placed;
  }

  Pipeline& pipeline_;
  ClusterView& view_;
  const std::vector<const api::Task*>& tasks_;
  Decisions* out_;
  std::shared_ptr<const TaskDemand> demand_;
  absl::flat_hash_map<int, int>* running_ = nullptr;  // view_.Running(the group's service).
  Branch root_;
  size_t next_ = 0;  // tasks_[next_] is the next task to place.
};

// Tasks that name their node already: check that node, nothing else.
void PlacePreassigned(Pipeline& pipeline, NodeSet& nodes,
                      const std::vector<const api::Task*>& tasks, Decisions* out) {
  pipeline.SetTask(*tasks.front());
  std::shared_ptr<const TaskDemand> demand = TaskDemand::FromTask(*tasks.front());
  for (const api::Task* t : tasks) {
    NodeInfo* n = nodes.Find(t->node_id());
    if (n == nullptr) {
      out->unplaced.push_back(
          Unplaced{t->id(), NoSuitableNode(absl::StrCat("node ", t->node_id(), " not found"))});
      continue;
    }
    pipeline.ResetCounts();
    if (pipeline.Process(*n)) {
      out->assigned.push_back(
          Assignment{t->id(), n->id(), n->Place(t->id(), demand, IsActive(*t))});
    } else {
      out->unplaced.push_back(Unplaced{t->id(), NoSuitableNode(pipeline.Explain())});
    }
  }
}

// Tasks of one service and spec version are placed alike; a task without a spec version is a
// group of its own.
using GroupKey = std::pair<std::string, uint64_t>;
struct Groups {
  std::map<GroupKey, std::vector<const api::Task*>> by_spec;
  std::vector<std::vector<const api::Task*>> one_offs;

  void Add(const api::Task* t) {
    if (t->has_spec_version()) {
      by_spec[GroupKey(t->service_id(), t->spec_version().index())].push_back(t);
    } else {
      one_offs.push_back({t});
    }
  }
  template <typename F>
  void ForEach(F f) const {
    for (const auto& [key, tasks] : by_spec) f(tasks);
    for (const auto& tasks : one_offs) f(tasks);
  }
};

}  // namespace

Decisions Schedule(NodeSet* nodes, absl::Span<const api::Task* const> tasks) {
  Decisions out;
  out.assigned.reserve(tasks.size());
  Groups preassigned, unassigned;
  absl::flat_hash_set<std::string> services;
  for (const api::Task* t : tasks) {
    if (t->node_id().empty()) {
      unassigned.Add(t);
      services.insert(t->service_id());
    } else {
      preassigned.Add(t);
    }
  }

  Pipeline pipeline;
  preassigned.ForEach([&](const std::vector<const api::Task*>& group) {
    PlacePreassigned(pipeline, *nodes, group, &out);
  });
  if (services.empty()) return out;

  ClusterView view(*nodes, services);
  unassigned.ForEach([&](const std::vector<const api::Task*>& group) {
    GroupPlacer(pipeline, view, group, &out).Run();
  });
  return out;
}

Decisions Schedule(NodeSet* nodes, const std::vector<api::Task>& tasks) {
  std::vector<const api::Task*> ptrs;
  ptrs.reserve(tasks.size());
  for (const api::Task& t : tasks) ptrs.push_back(&t);
  return Schedule(nodes, absl::MakeConstSpan(ptrs));
}

}  // namespace shoal::scheduler
