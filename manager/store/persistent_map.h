// PersistentMap: an ordered string-keyed map whose copies share structure, so that a copy costs
// O(1) and a writer can change its copy while readers keep reading theirs.
//
// It is a B+tree of reference-counted nodes (up to kMaxEntries entries each; every leaf at the
// same depth). A write copies the nodes on the path from the root to the change (O(log n) new
// nodes, three or four for 100,000 keys) and shares the rest with every other copy. That is what
// lets the store publish a new version of its tables with one pointer swap while View()
// callbacks read older versions without locks.
//
// Each node is one allocation holding its keys packed end to end (no string per key) and, in a
// leaf, its values: copying a node is a memcpy plus one copy of each value (for shared pointers,
// a reference count increment; their cache lines are prefetched first, since they are usually
// cold). Fat nodes keep the number of allocations per write low; the AVL tree this replaced
// allocated two blocks for each of ~17 nodes on every path.
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
// (published nodes are never changed again: their generation is retired), and so is dropping
// copies on any thread (atomic reference counts); each map value must have a single writer.
#ifndef SHOAL_MANAGER_STORE_PERSISTENT_MAP_H_
#define SHOAL_MANAGER_STORE_PERSISTENT_MAP_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/strings/string_view.h"

namespace shoal::manager::store {

// A generation no node has yet; process-wide, so maps from different stores never collide.
// Thread-safe.
uint64_t NewGeneration();

namespace internal {
// Starts loading what a value points to (its reference count, for a shared pointer), so that
// copying or dropping a node's values overlaps their cache misses instead of taking them one
// after another.
template <class V>
inline void PrefetchValue(const V&) {}
template <class T>
inline void PrefetchValue(const std::shared_ptr<T>& p) {
  // make_shared puts the counts just before the object.
  if (p != nullptr) __builtin_prefetch(reinterpret_cast<const char*>(p.get()) - 8, 1);
}
}  // namespace internal

template <class V, int kMaxEntries = 32>
class PersistentMap {
  static_assert(kMaxEntries >= 4 && kMaxEntries <= 1024, "node size out of range");

 public:
  PersistentMap() = default;
  PersistentMap(const PersistentMap& o) : root_(o.root_), size_(o.size_) { Ref(root_); }
  PersistentMap(PersistentMap&& o) noexcept : root_(o.root_), size_(o.size_) {
    o.root_ = nullptr;
    o.size_ = 0;
  }
  PersistentMap& operator=(const PersistentMap& o) {
    PersistentMap copy(o);
    Swap(copy);
    return *this;
  }
  PersistentMap& operator=(PersistentMap&& o) noexcept {
    PersistentMap moved(std::move(o));
    Swap(moved);
    return *this;
  }
  ~PersistentMap() { Unref(root_); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // The value stored under `key`, or nullptr. Valid while this map (or a copy sharing the node)
  // is alive and unchanged.
  const V* Find(absl::string_view key) const {
    const Node* n = root_;
    if (n == nullptr) return nullptr;
    while (!n->leaf) n = AsInner(n)->kids[ChildIndex(n, key)];
    const int pos = LowerBound(n, key);
    if (pos < n->count && KeyAt(n, pos) == key) return &AsLeaf(n)->values[pos];
    return nullptr;
  }

  // Inserts or replaces. Returns true if `key` was not present.
  bool Set(absl::string_view key, V value, uint64_t gen) {
    if (root_ == nullptr) {
      Leaf* l = NewNode<Leaf>(static_cast<uint32_t>(key.size()) + kSlack, gen);
      InsertAt(l, 0, key);
      l->values[0] = std::move(value);
      root_ = l;
      ++size_;
      return true;
    }
    bool added = false;
    Node* right = nullptr;
    root_ = SetIn(root_, key, value, gen, &added, &right);
    if (right != nullptr) {  // the root split: grow a level
      Inner* r = NewNode<Inner>(static_cast<uint32_t>(KeyAt(right, 0).size()) + kSlack, gen);
      InsertAt(r, 0, absl::string_view());
      r->kids[0] = root_;
      InsertAt(r, 1, KeyAt(right, 0));
      r->kids[1] = right;
      root_ = r;
    }
    if (added) ++size_;
    return added;
  }

  // Returns true if `key` was present.
  bool Erase(absl::string_view key, uint64_t gen) {
    // Find the path first: if the key is absent, nothing is copied.
    if (root_ == nullptr) return false;
    Path path;
    int depth = 0;
    const Node* n = root_;
    for (; !n->leaf; n = AsInner(n)->kids[path[depth++]]) path[depth] = ChildIndex(n, key);
    path[depth] = LowerBound(n, key);
    if (path[depth] == n->count || KeyAt(n, path[depth]) != key) return false;
    root_ = EraseIn(root_, path, 0, gen);
    --size_;
    // Shrink: an empty leaf goes, an inner root with one child gives way to it.
    if (root_->count == 0) {
      Unref(root_);
      root_ = nullptr;
    } else if (!root_->leaf && root_->count == 1) {
      Node* child = AsInner(root_)->kids[0];
      Ref(child);
      Unref(root_);
      root_ = child;
    }
    return true;
  }

  // Calls f(key, value) for every key >= `from`, in order, until f returns false. `key` is an
  // absl::string_view into the map, valid as long as the value is.
  template <class F>
  void ScanFrom(absl::string_view from, F&& f) const {
    if (root_ != nullptr) ScanGE(root_, from, f);
  }
  // Calls f(key, value) for every key starting with `prefix`, in order, until f returns false.
  template <class F>
  void ScanPrefix(absl::string_view prefix, F&& f) const {
    auto within = [&](absl::string_view k, const V& v) {
      if (k.substr(0, prefix.size()) != prefix) return false;
      return f(k, v);
    };
    ScanFrom(prefix, within);
  }
  template <class F>
  void ForEach(F&& f) const {
    if (root_ != nullptr) ScanAll(root_, f);
  }

  // For tests: the tree's height (levels; 0 when empty), and whether it is a well-formed B+tree
  // (ordered, every leaf at one depth, node fill within bounds) holding size() keys.
  int height() const {
    int h = 0;
    for (const Node* n = root_; n != nullptr; n = n->leaf ? nullptr : AsInner(n)->kids[0]) ++h;
    return h;
  }
  bool CheckInvariants() const {
    if (root_ == nullptr) return size_ == 0;
    size_t count = 0;
    int leaf_depth = -1;
    return Check(root_, true, 0, nullptr, nullptr, &leaf_depth, &count) && count == size_;
  }

  static constexpr int kMax = kMaxEntries;
  // A node (other than the root) below this many entries is merged with or refilled from a
  // neighbour. At least two, so that every non-root inner node's child has a sibling to refill
  // from.
  static constexpr int kMin = std::max(2, kMaxEntries / 4);

 private:
  // Bytes of key room a node gets beyond what it holds when it is allocated, so that inserts
  // into a node this writer owns seldom reallocate it.
  static constexpr uint32_t kSlack = 192;

  struct Node {
    std::atomic<uint32_t> refs{1};
    bool leaf = false;
    uint16_t count = 0;  // entries: keys (and values or children)
    uint32_t cap = 0;    // bytes available at `keys`
    uint64_t gen = 0;
    char* keys = nullptr;      // packed key bytes: key i is keys[off[i], off[i + 1])
    uint32_t off[kMax + 1]{};  // off[0] == 0
  };
  struct Leaf : Node {
    V values[kMax];
  };
  // Child i holds keys >= key i and < key i + 1; key 0 is not used for routing.
  struct Inner : Node {
    Node* kids[kMax];
  };

  static Leaf* AsLeaf(Node* n) { return static_cast<Leaf*>(n); }
  static const Leaf* AsLeaf(const Node* n) { return static_cast<const Leaf*>(n); }
  static Inner* AsInner(Node* n) { return static_cast<Inner*>(n); }
  static const Inner* AsInner(const Node* n) { return static_cast<const Inner*>(n); }

  // --- allocation and reference counts -------------------------------------------------------

  template <class T>
  static T* NewNode(uint32_t cap, uint64_t gen) {
    void* mem = ::operator new(sizeof(T) + cap);
    T* n = new (mem) T();
    n->leaf = std::is_same_v<T, Leaf>;
    n->cap = cap;
    n->gen = gen;
    n->keys = static_cast<char*>(mem) + sizeof(T);
    return n;
  }
  // Frees the node itself; its values are destroyed, its children are NOT released.
  static void FreeNode(Node* n) {
    if (n->leaf) {
      Leaf* l = AsLeaf(n);
      for (int i = 0; i < l->count; ++i) internal::PrefetchValue(l->values[i]);
      l->~Leaf();
    } else {
      AsInner(n)->~Inner();
    }
    ::operator delete(static_cast<void*>(n));
  }
  static void Ref(Node* n) {
    if (n != nullptr) n->refs.fetch_add(1, std::memory_order_relaxed);
  }
  static void Unref(Node* n) {
    if (n == nullptr || n->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (!n->leaf) {
      Inner* in = AsInner(n);
      for (int i = 0; i < in->count; ++i) Unref(in->kids[i]);
    }
    FreeNode(n);
  }

  // A copy of `n` owned by `gen` with `extra` more bytes of key room (plus slack). Values are
  // copied, children shared (referenced once more).
  static Node* Clone(const Node* n, uint64_t gen, uint32_t extra) {
    const uint32_t used = n->off[n->count];
    Node* c;
    if (n->leaf) {
      const Leaf* l = AsLeaf(n);
      Leaf* copy = NewNode<Leaf>(used + extra + kSlack, gen);
      for (int i = 0; i < l->count; ++i) internal::PrefetchValue(l->values[i]);
      for (int i = 0; i < l->count; ++i) copy->values[i] = l->values[i];
      c = copy;
    } else {
      const Inner* in = AsInner(n);
      Inner* copy = NewNode<Inner>(used + extra + kSlack, gen);
      for (int i = 0; i < in->count; ++i) {
        copy->kids[i] = in->kids[i];
        Ref(in->kids[i]);
      }
      c = copy;
    }
    c->count = n->count;
    std::memcpy(c->off, n->off, sizeof(uint32_t) * (n->count + 1));
    std::memcpy(c->keys, n->keys, used);
    return c;
  }

  // `n` itself if `gen` owns it, else a copy that `gen` owns. Takes over the caller's reference
  // to `n` and returns one to the result.
  static Node* Own(Node* n, uint64_t gen, uint32_t extra = 0) {
    if (n->gen == gen) return n;
    Node* c = Clone(n, gen, extra);
    Unref(n);
    return c;
  }

  // REQUIRES: `n` owned with refs == 1. Makes room for `extra` more key bytes, moving the node
  // to a larger block if needed; returns where it now is.
  static Node* Reserve(Node* n, uint32_t extra) {
    const uint32_t used = n->off[n->count];
    if (used + extra <= n->cap) return n;
    const uint32_t cap = std::max(used + extra + kSlack, n->cap * 2);
    Node* c;
    if (n->leaf) {
      Leaf* l = AsLeaf(n);
      Leaf* copy = NewNode<Leaf>(cap, n->gen);
      for (int i = 0; i < l->count; ++i) copy->values[i] = std::move(l->values[i]);
      c = copy;
    } else {
      Inner* copy = NewNode<Inner>(cap, n->gen);
      std::memcpy(copy->kids, AsInner(n)->kids, sizeof(Node*) * n->count);  // moved, not shared
      c = copy;
    }
    c->count = n->count;
    std::memcpy(c->off, n->off, sizeof(uint32_t) * (n->count + 1));
    std::memcpy(c->keys, n->keys, used);
    FreeNode(n);
    return c;
  }

  // --- keys ------------------------------------------------------------------------------------

  static absl::string_view KeyAt(const Node* n, int i) {
    return absl::string_view(n->keys + n->off[i], n->off[i + 1] - n->off[i]);
  }
  // a < b, bytewise unsigned (as absl::string_view's operators), eight bytes at a time: keys in
  // one node tend to share long prefixes, and a call into memcmp per step costs more.
  static bool Less(absl::string_view a, absl::string_view b) {
    const size_t n = std::min(a.size(), b.size());
    const char* p = a.data();
    const char* q = b.data();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t x, y;
      std::memcpy(&x, p + i, 8);
      std::memcpy(&y, q + i, 8);
      if (x != y) return __builtin_bswap64(x) < __builtin_bswap64(y);
    }
    for (; i < n; ++i) {
      if (p[i] != q[i]) return static_cast<unsigned char>(p[i]) < static_cast<unsigned char>(q[i]);
    }
    return a.size() < b.size();
  }
  // The first position whose key is >= key.
  static int LowerBound(const Node* n, absl::string_view key) {
    int lo = 0, hi = n->count;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (Less(KeyAt(n, mid), key)) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }
  // The child of an inner node whose range holds `key`.
  static int ChildIndex(const Node* n, absl::string_view key) {
    int lo = 1, hi = n->count;  // first position in [1, count) whose key is > key
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (Less(key, KeyAt(n, mid))) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return lo - 1;
  }

  // REQUIRES: n owned, count < kMax, room for the key. Inserts `key` at `pos`, shifting the
  // entries after it; the caller fills the value or child slot at `pos`.
  static void InsertAt(Node* n, int pos, absl::string_view key) {
    const uint32_t len = static_cast<uint32_t>(key.size());
    const uint32_t at = n->off[pos];
    const uint32_t used = n->off[n->count];
    std::memmove(n->keys + at + len, n->keys + at, used - at);
    if (len != 0) std::memcpy(n->keys + at, key.data(), len);  // data() may be null
    for (int j = n->count; j >= pos; --j) n->off[j + 1] = n->off[j] + len;
    if (n->leaf) {
      Leaf* l = AsLeaf(n);
      for (int j = n->count; j > pos; --j) l->values[j] = std::move(l->values[j - 1]);
    } else {
      Inner* in = AsInner(n);
      for (int j = n->count; j > pos; --j) in->kids[j] = in->kids[j - 1];
      in->kids[pos] = nullptr;
    }
    ++n->count;
  }
  // REQUIRES: n owned. Removes entry `pos`: its value is destroyed; a child is NOT released.
  static void RemoveAt(Node* n, int pos) {
    const uint32_t len = n->off[pos + 1] - n->off[pos];
    const uint32_t used = n->off[n->count];
    std::memmove(n->keys + n->off[pos], n->keys + n->off[pos + 1], used - n->off[pos + 1]);
    for (int j = pos + 1; j < n->count; ++j) n->off[j] = n->off[j + 1] - len;
    if (n->leaf) {
      Leaf* l = AsLeaf(n);
      for (int j = pos; j + 1 < n->count; ++j) l->values[j] = std::move(l->values[j + 1]);
      l->values[n->count - 1] = V();
    } else {
      Inner* in = AsInner(n);
      for (int j = pos; j + 1 < n->count; ++j) in->kids[j] = in->kids[j + 1];
    }
    --n->count;
  }

  // --- writes ----------------------------------------------------------------------------------

  // Moves the entries from `from` on of owned `n` into a new node owned by `gen`.
  static Node* SplitOff(Node* n, int from, uint64_t gen) {
    const uint32_t start = n->off[from];
    const uint32_t bytes = n->off[n->count] - start;
    Node* r;
    if (n->leaf) {
      Leaf* l = AsLeaf(n);
      Leaf* right = NewNode<Leaf>(bytes + kSlack, gen);
      for (int i = from; i < n->count; ++i) right->values[i - from] = std::move(l->values[i]);
      r = right;
    } else {
      Inner* right = NewNode<Inner>(bytes + kSlack, gen);
      std::memcpy(right->kids, AsInner(n)->kids + from, sizeof(Node*) * (n->count - from));
      r = right;
    }
    r->count = static_cast<uint16_t>(n->count - from);
    for (int i = 0; i <= r->count; ++i) r->off[i] = n->off[from + i] - start;
    std::memcpy(r->keys, n->keys + start, bytes);
    n->count = static_cast<uint16_t>(from);
    return r;
  }

  // Inserts an entry at `pos` of owned node `n`, splitting it if full. Returns `n` (possibly
  // moved); *right gets the new right sibling if it split. `fill` stores the value or child.
  template <class Fill>
  static Node* InsertEntry(Node* n, int pos, absl::string_view key, uint64_t gen, Node** right,
                           Fill fill) {
    if (n->count == kMax) {
      // Split in the middle, or nearer the end when appending (sequential inserts, e.g. a
      // restore, then leave nodes three-quarters full rather than half).
      const int at = pos >= kMax - kMin ? kMax - kMin : kMax / 2;
      Node* r = SplitOff(n, at, gen);
      if (pos >= at) {
        r = Reserve(r, static_cast<uint32_t>(key.size()));
        InsertAt(r, pos - at, key);
        fill(r, pos - at);
      } else {
        n = Reserve(n, static_cast<uint32_t>(key.size()));
        InsertAt(n, pos, key);
        fill(n, pos);
      }
      *right = r;
      return n;
    }
    n = Reserve(n, static_cast<uint32_t>(key.size()));
    InsertAt(n, pos, key);
    fill(n, pos);
    return n;
  }

  // Sets key in the subtree `n` (taking over the caller's reference). Returns the subtree's new
  // root; *right gets a new right sibling if the node split.
  static Node* SetIn(Node* n, absl::string_view key, V& value, uint64_t gen, bool* added,
                     Node** right) {
    if (n->leaf) {
      const int pos = LowerBound(n, key);
      if (pos < n->count && KeyAt(n, pos) == key) {
        n = Own(n, gen);
        AsLeaf(n)->values[pos] = std::move(value);
        return n;
      }
      *added = true;
      n = Own(n, gen, static_cast<uint32_t>(key.size()));
      return InsertEntry(n, pos, key, gen, right,
                         [&](Node* m, int i) { AsLeaf(m)->values[i] = std::move(value); });
    }
    n = Own(n, gen);
    const int i = ChildIndex(n, key);
    Node* split = nullptr;
    AsInner(n)->kids[i] = SetIn(AsInner(n)->kids[i], key, value, gen, added, &split);
    if (split == nullptr) return n;
    return InsertEntry(n, i + 1, KeyAt(split, 0), gen, right,
                       [&](Node* m, int j) { AsInner(m)->kids[j] = split; });
  }

  // Positions from the root down to an entry: child indexes, then the position in the leaf.
  // A tree of N keys has at most log_{kMin}(N) + 1 levels.
  using Path = std::array<int, 48>;

  // Erases the entry at `path` (from `depth` on) in the subtree `n`, taking over the caller's
  // reference to `n`; returns the subtree's new root, which may have fewer than kMin entries.
  static Node* EraseIn(Node* n, const Path& path, int depth, uint64_t gen) {
    n = Own(n, gen);
    if (n->leaf) {
      RemoveAt(n, path[depth]);
      return n;
    }
    const int i = path[depth];
    Inner* in = AsInner(n);
    in->kids[i] = EraseIn(in->kids[i], path, depth + 1, gen);
    if (in->kids[i]->count >= kMin || in->count == 1) return n;
    return Refill(n, i < in->count - 1 ? i : i - 1, gen);
  }

  // One entry while two siblings are rebuilt: its key, and its value or child.
  struct Entry {
    absl::string_view key;
    const V* value;
    Node* kid;
  };

  // Builds a node owned by `gen` from entries [from, to).
  static Node* Build(bool leaf, const Entry* e, int from, int to, uint64_t gen) {
    uint32_t bytes = 0;
    for (int i = from; i < to; ++i) bytes += static_cast<uint32_t>(e[i].key.size());
    Node* n = leaf ? static_cast<Node*>(NewNode<Leaf>(bytes + kSlack, gen))
                   : static_cast<Node*>(NewNode<Inner>(bytes + kSlack, gen));
    for (int i = from; i < to; ++i) {
      const int j = i - from;
      if (!e[i].key.empty()) std::memcpy(n->keys + n->off[j], e[i].key.data(), e[i].key.size());
      n->off[j + 1] = n->off[j] + static_cast<uint32_t>(e[i].key.size());
      if (leaf) {
        AsLeaf(n)->values[j] = *e[i].value;
      } else {
        AsInner(n)->kids[j] = e[i].kid;
        Ref(e[i].kid);
      }
    }
    n->count = static_cast<uint16_t>(to - from);
    return n;
  }

  // Children a and a + 1 of owned inner node `n`, one of them under kMin, become one node if
  // their entries fit in one, else two evenly filled ones. Returns `n` (possibly moved).
  static Node* Refill(Node* n, int a, uint64_t gen) {
    Inner* in = AsInner(n);
    Node* left = in->kids[a];
    Node* right = in->kids[a + 1];
    const bool leaf = left->leaf;
    Entry e[2 * kMax];
    int total = 0;
    for (const Node* side : {left, right}) {
      for (int i = 0; i < side->count; ++i) {
        e[total++] = Entry{KeyAt(side, i), leaf ? &AsLeaf(side)->values[i] : nullptr,
                           leaf ? nullptr : AsInner(side)->kids[i]};
      }
    }
    // The right node's first key is a stale bound in an inner node: its true lower bound is the
    // parent's separator.
    if (!leaf) e[left->count].key = KeyAt(n, a + 1);
    if (total <= kMax) {
      Node* merged = Build(leaf, e, 0, total, gen);
      Unref(left);
      Unref(right);
      in->kids[a] = merged;
      RemoveAt(n, a + 1);
      return n;
    }
    const int half = total / 2;
    Node* l = Build(leaf, e, 0, half, gen);
    Node* r = Build(leaf, e, half, total, gen);
    // The new separator; `n`'s old one (an entry above, maybe) is still read until replaced.
    RemoveAt(n, a + 1);
    n = Reserve(n, static_cast<uint32_t>(KeyAt(r, 0).size()));
    in = AsInner(n);
    InsertAt(n, a + 1, KeyAt(r, 0));
    Unref(left);
    Unref(right);
    in->kids[a] = l;
    in->kids[a + 1] = r;
    return n;
  }

  // --- reads -----------------------------------------------------------------------------------

  // Return false once f asked to stop.
  template <class F>
  static bool ScanAll(const Node* n, F& f) {
    if (n->leaf) {
      const Leaf* l = AsLeaf(n);
      for (int i = 0; i < l->count; ++i) {
        if (!f(KeyAt(n, i), l->values[i])) return false;
      }
      return true;
    }
    const Inner* in = AsInner(n);
    for (int i = 0; i < in->count; ++i) {
      if (!ScanAll(in->kids[i], f)) return false;
    }
    return true;
  }
  template <class F>
  static bool ScanGE(const Node* n, absl::string_view from, F& f) {
    if (n->leaf) {
      const Leaf* l = AsLeaf(n);
      for (int i = LowerBound(n, from); i < l->count; ++i) {
        if (!f(KeyAt(n, i), l->values[i])) return false;
      }
      return true;
    }
    const Inner* in = AsInner(n);
    const int first = ChildIndex(n, from);
    if (!ScanGE(in->kids[first], from, f)) return false;
    for (int i = first + 1; i < in->count; ++i) {
      if (!ScanAll(in->kids[i], f)) return false;
    }
    return true;
  }

  // Checks the subtree: keys in [lo, hi) (null: unbounded), strictly ascending, leaves all at
  // one depth, entries within bounds, offsets consistent.
  static bool Check(const Node* n, bool root, int depth, const absl::string_view* lo,
                    const absl::string_view* hi, int* leaf_depth, size_t* count) {
    if (n->count > kMax || n->count < (root ? 1 : kMin)) return false;
    if (n->off[0] != 0 || n->off[n->count] > n->cap) return false;
    for (int i = 0; i < n->count; ++i) {
      if (n->off[i + 1] < n->off[i]) return false;
    }
    if (n->leaf) {
      if (*leaf_depth == -1) *leaf_depth = depth;
      if (*leaf_depth != depth) return false;
      for (int i = 0; i < n->count; ++i) {
        const absl::string_view k = KeyAt(n, i);
        if ((lo != nullptr && k < *lo) || (hi != nullptr && k >= *hi)) return false;
        if (i > 0 && !(KeyAt(n, i - 1) < k)) return false;
      }
      *count += n->count;
      return true;
    }
    const Inner* in = AsInner(n);
    for (int i = 0; i < n->count; ++i) {
      if (in->kids[i] == nullptr) return false;
      if (i > 1 && !(KeyAt(n, i - 1) < KeyAt(n, i))) return false;
      const absl::string_view child_lo = KeyAt(n, i);
      const absl::string_view* l = i == 0 ? lo : &child_lo;
      absl::string_view child_hi;
      const absl::string_view* h = hi;
      if (i + 1 < n->count) {
        child_hi = KeyAt(n, i + 1);
        h = &child_hi;
      }
      if (i > 0 && ((lo != nullptr && child_lo < *lo) || (hi != nullptr && child_lo >= *hi))) {
        return false;
      }
      if (!Check(in->kids[i], false, depth + 1, l, h, leaf_depth, count)) return false;
    }
    return true;
  }

  void Swap(PersistentMap& o) noexcept {
    std::swap(root_, o.root_);
    std::swap(size_, o.size_);
  }

  Node* root_ = nullptr;
  size_t size_ = 0;
};

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_PERSISTENT_MAP_H_
