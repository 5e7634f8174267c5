#include "manager/store/wire_check.h"

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace shoal::manager::store {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

constexpr int kMaxDepth = 64;  // protobuf's own limit is 100

// What a message type's fields need checking, by field number.
struct Fields {
  enum Kind : uint8_t { kOther, kString, kMessage, kGroup };
  struct Field {
    Kind kind = kOther;
    const Fields* message = nullptr;  // for kMessage
  };
  std::vector<Field> by_number;  // numbers past the end: unknown fields (not checked by parsers)
};

class FieldTables {
 public:
  const Fields* For(const Descriptor* type) {
    absl::MutexLock lock(&mu_);
    return Build(type);
  }

 private:
  const Fields* Build(const Descriptor* type) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::unique_ptr<Fields>& slot = tables_[type];
    if (slot != nullptr) return slot.get();
    slot = std::make_unique<Fields>();
    Fields* fields = slot.get();  // stable: recursion may rehash tables_, not move *slot
    int max = 0;
    for (int i = 0; i < type->field_count(); ++i) max = std::max(max, type->field(i)->number());
    fields->by_number.resize(max + 1);
    for (int i = 0; i < type->field_count(); ++i) {
      const FieldDescriptor* f = type->field(i);
      Fields::Field& out = fields->by_number[f->number()];
      switch (f->type()) {
        case FieldDescriptor::TYPE_STRING:
          out.kind = Fields::kString;
          break;
        case FieldDescriptor::TYPE_MESSAGE:
          out.kind = Fields::kMessage;
          out.message = Build(f->message_type());
          break;
        case FieldDescriptor::TYPE_GROUP:
          out.kind = Fields::kGroup;
          break;
        default:
          break;
      }
    }
    return fields;
  }

  absl::Mutex mu_;
  absl::flat_hash_map<const Descriptor*, std::unique_ptr<Fields>> tables_ ABSL_GUARDED_BY(mu_);
};

bool ReadVarint(const uint8_t** p, const uint8_t* end, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*p == end) return false;
    const uint8_t b = *(*p)++;
    result |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

bool Walk(const Fields& fields, const uint8_t* p, const uint8_t* end, int depth) {
  if (depth > kMaxDepth) return false;
  while (p != end) {
    uint64_t tag;
    if (!ReadVarint(&p, end, &tag)) return false;
    const uint64_t number = tag >> 3;
    const int wire_type = static_cast<int>(tag & 7);
    if (number == 0 || number > (1u << 29) - 1) return false;
    const Fields::Field field =
        number < fields.by_number.size() ? fields.by_number[number] : Fields::Field{};
    if (field.kind == Fields::kGroup) return false;
    // A string or message field in any other wire type is a malformed encoding: leave such
    // bytes to the parser.
    if ((field.kind == Fields::kString || field.kind == Fields::kMessage) && wire_type != 2) {
      return false;
    }
    switch (wire_type) {
      case 0: {
        uint64_t ignored;
        if (!ReadVarint(&p, end, &ignored)) return false;
        break;
      }
      case 1:
        if (end - p < 8) return false;
        p += 8;
        break;
      case 5:
        if (end - p < 4) return false;
        p += 4;
        break;
      case 2: {
        uint64_t len;
        if (!ReadVarint(&p, end, &len) || len > static_cast<uint64_t>(end - p)) return false;
        const uint8_t* field_end = p + len;
        if (field.kind == Fields::kString &&
            !IsValidUtf8(absl::string_view(reinterpret_cast<const char*>(p), len))) {
          return false;
        }
        if (field.kind == Fields::kMessage && !Walk(*field.message, p, field_end, depth + 1)) {
          return false;
        }
        p = field_end;
        break;
      }
      default:  // groups
        return false;
    }
  }
  return true;
}

}  // namespace

bool IsValidUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const uint8_t* const end = p + s.size();
  while (p != end) {
    // ASCII, eight bytes at a time.
    if (end - p >= 8) {
      uint64_t word;
      std::memcpy(&word, p, 8);
      if ((word & 0x8080808080808080ull) == 0) {
        p += 8;
        continue;
      }
    }
    const uint8_t b = *p;
    if (b < 0x80) {
      ++p;
      continue;
    }
    int n;
    uint32_t min;
    uint32_t cp;
    if ((b & 0xe0) == 0xc0) {
      n = 1, min = 0x80, cp = b & 0x1f;
    } else if ((b & 0xf0) == 0xe0) {
      n = 2, min = 0x800, cp = b & 0x0f;
    } else if ((b & 0xf8) == 0xf0) {
      n = 3, min = 0x10000, cp = b & 0x07;
    } else {
      return false;  // a continuation byte first, or 0xf8..0xff
    }
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    p += n + 1;
  }
  return true;
}

bool WouldParse(const Descriptor* type, absl::string_view data) {
  static FieldTables* const tables = new FieldTables();
  const Fields* fields = tables->For(type);
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  return data.size() <= static_cast<size_t>(INT32_MAX) && Walk(*fields, p, p + data.size(), 0);
}

}  // namespace shoal::manager::store
