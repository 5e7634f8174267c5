// PersistentMap: an ordered string-keyed map whose copies share structure, so that a copy costs
// O(1) and a writer can change its copy while readers keep reading theirs.
//
// It is a height-balanced (AVL) binary tree of reference-counted nodes. A write copies the nodes
// on the path from the root to the change (O(log n) new nodes) and shares the rest with every
// other copy. That is what lets the store publish a new version of its tables with one pointer
// swap while View() callbacks read older versions without locks.
//
// Generations make bulk writes cheap: every writer picks a fresh generation (NewGeneration())
// and tags the nodes it allocates with it. A node carrying the writer's own generation has not
// been shared with anyone yet, so the writer changes it in place instead of copying it again.
// A transaction that inserts 500 tasks thus copies the upper levels of the tree once, not 500
// times.
//   REQUIRES: once a map has been copied (published to readers, or saved for a rollback), the
//   writer continues with a NEW generation; otherwise in-place edits would show in the copy.
//
// Threading: a map value is not synchronised. Concurrent reads of maps that share nodes are safe
// (published nodes are never changed again: their generation is retired); each map value must
// have a single writer.
#ifndef SHOAL_MANAGER_STORE_PERSISTENT_MAP_H_
#define SHOAL_MANAGER_STORE_PERSISTENT_MAP_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace shoal::manager::store {

// A generation no node has yet; process-wide, so maps from different stores never collide.
// Thread-safe.
uint64_t NewGeneration();

template <class V>
class PersistentMap {
 public:
  PersistentMap() = default;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // The value stored under `key`, or nullptr. Valid while this map (or a copy sharing the node)
  // is alive and unchanged.
  const V* Find(absl::string_view key) const {
    const Node* n = root_.get();
    while (n != nullptr) {
      const int c = key.compare(n->key);
      if (c == 0) return &n->value;
      n = c < 0 ? n->left.get() : n->right.get();
    }
    return nullptr;
  }

  // Inserts or replaces. Returns true if `key` was not present.
  bool Set(absl::string_view key, V value, uint64_t gen) {
    bool added = false;
    root_ = Insert(root_, key, std::move(value), gen, &added);
    if (added) ++size_;
    return added;
  }

  // Returns true if `key` was present.
  bool Erase(absl::string_view key, uint64_t gen) {
    bool removed = false;
    root_ = Remove(root_, key, gen, &removed);
    if (removed) --size_;
    return removed;
  }

  // Calls f(key, value) for every key >= `from`, in order, until f returns false.
  template <class F>
  void ScanFrom(absl::string_view from, F&& f) const {
    ScanGE(root_.get(), from, f);
  }
  // Calls f(key, value) for every key starting with `prefix`, in order, until f returns false.
  template <class F>
  void ScanPrefix(absl::string_view prefix, F&& f) const {
    auto within = [&](const std::string& k, const V& v) {
      if (absl::string_view(k).substr(0, prefix.size()) != prefix) return false;
      return f(k, v);
    };
    ScanGE(root_.get(), prefix, within);
  }
  template <class F>
  void ForEach(F&& f) const {
    ScanAll(root_.get(), f);
  }

  // For tests: the tree's height, and whether it is ordered and balanced with correct heights.
  int height() const { return Height(root_); }
  bool CheckInvariants() const {
    size_t count = 0;
    return Check(root_.get(), nullptr, nullptr, &count) >= 0 && count == size_;
  }

 private:
  struct Node;
  using NodePtr = std::shared_ptr<Node>;
  struct Node {
    Node(absl::string_view k, V v, uint64_t g) : key(k), value(std::move(v)), gen(g) {}
    std::string key;
    V value;
    NodePtr left, right;
    int height = 1;
    uint64_t gen;
  };

  static int Height(const NodePtr& n) { return n == nullptr ? 0 : n->height; }
  static void Fix(Node* n) { n->height = 1 + std::max(Height(n->left), Height(n->right)); }

  // `n` itself if this writer owns it, else a copy it owns.
  static NodePtr Own(const NodePtr& n, uint64_t gen) {
    if (n->gen == gen) return n;
    NodePtr c = std::make_shared<Node>(*n);
    c->gen = gen;
    return c;
  }

  // REQUIRES: n owned. Returns the new subtree root (owned).
  static NodePtr RotateRight(NodePtr n, uint64_t gen) {
    NodePtr l = Own(n->left, gen);
    n->left = l->right;
    Fix(n.get());
    l->right = std::move(n);
    Fix(l.get());
    return l;
  }
  static NodePtr RotateLeft(NodePtr n, uint64_t gen) {
    NodePtr r = Own(n->right, gen);
    n->right = r->left;
    Fix(n.get());
    r->left = std::move(n);
    Fix(r.get());
    return r;
  }
  // REQUIRES: n owned, its subtrees balanced and differing in height by at most 2.
  static NodePtr Balance(NodePtr n, uint64_t gen) {
    const int diff = Height(n->left) - Height(n->right);
    if (diff > 1) {
      if (Height(n->left->left) < Height(n->left->right)) {
        n->left = RotateLeft(Own(n->left, gen), gen);
      }
      return RotateRight(std::move(n), gen);
    }
    if (diff < -1) {
      if (Height(n->right->right) < Height(n->right->left)) {
        n->right = RotateRight(Own(n->right, gen), gen);
      }
      return RotateLeft(std::move(n), gen);
    }
    Fix(n.get());
    return n;
  }

  static NodePtr Insert(const NodePtr& n, absl::string_view key, V value, uint64_t gen,
                        bool* added) {
    if (n == nullptr) {
      *added = true;
      return std::make_shared<Node>(key, std::move(value), gen);
    }
    const int c = key.compare(n->key);
    NodePtr m = Own(n, gen);
    if (c == 0) {
      m->value = std::move(value);
      return m;
    }
    if (c < 0) {
      m->left = Insert(m->left, key, std::move(value), gen, added);
    } else {
      m->right = Insert(m->right, key, std::move(value), gen, added);
    }
    return Balance(std::move(m), gen);
  }

  // Detaches the smallest node of `n` into *min; returns what remains (owned nodes on the path).
  static NodePtr RemoveMin(const NodePtr& n, uint64_t gen, NodePtr* min) {
    if (n->left == nullptr) {
      *min = n;
      return n->right;
    }
    NodePtr m = Own(n, gen);
    m->left = RemoveMin(m->left, gen, min);
    return Balance(std::move(m), gen);
  }

  static NodePtr Remove(const NodePtr& n, absl::string_view key, uint64_t gen, bool* removed) {
    if (n == nullptr) return n;
    const int c = key.compare(n->key);
    if (c < 0) {
      NodePtr l = Remove(n->left, key, gen, removed);
      if (!*removed) return n;
      NodePtr m = Own(n, gen);
      m->left = std::move(l);
      return Balance(std::move(m), gen);
    }
    if (c > 0) {
      NodePtr r = Remove(n->right, key, gen, removed);
      if (!*removed) return n;
      NodePtr m = Own(n, gen);
      m->right = std::move(r);
      return Balance(std::move(m), gen);
    }
    *removed = true;
    if (n->left == nullptr) return n->right;
    if (n->right == nullptr) return n->left;
    NodePtr min;
    NodePtr right = RemoveMin(n->right, gen, &min);
    NodePtr successor = Own(min, gen);
    successor->left = n->left;
    successor->right = std::move(right);
    return Balance(std::move(successor), gen);
  }

  // Returns false once f asked to stop.
  template <class F>
  static bool ScanAll(const Node* n, F& f) {
    if (n == nullptr) return true;
    return ScanAll(n->left.get(), f) && f(n->key, n->value) && ScanAll(n->right.get(), f);
  }
  template <class F>
  static bool ScanGE(const Node* n, absl::string_view from, F& f) {
    if (n == nullptr) return true;
    if (absl::string_view(n->key) < from) return ScanGE(n->right.get(), from, f);
    return ScanGE(n->left.get(), from, f) && f(n->key, n->value) && ScanAll(n->right.get(), f);
  }

  // The subtree's height, or -1 if something is wrong.
  static int Check(const Node* n, const std::string* lo, const std::string* hi, size_t* count) {
    if (n == nullptr) return 0;
    ++*count;
    if ((lo != nullptr && n->key <= *lo) || (hi != nullptr && n->key >= *hi)) return -1;
    const int l = Check(n->left.get(), lo, &n->key, count);
    const int r = Check(n->right.get(), &n->key, hi, count);
    if (l < 0 || r < 0 || l - r > 1 || r - l > 1 || n->height != 1 + std::max(l, r)) return -1;
    return n->height;
  }

  NodePtr root_;
  size_t size_ = 0;
};

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_PERSISTENT_MAP_H_
