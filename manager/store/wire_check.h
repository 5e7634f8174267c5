// WouldParse: whether protobuf's parser accepts bytes that protobuf itself serialized — without
// parsing them (no allocation; ~10x cheaper than a parse).
//
// Bytes serialized from a message are well-formed by construction; what can still make the
// parser refuse them is content: a proto3 `string` field (map keys and values included) holding
// invalid UTF-8 — the serializer only logs that, the parser fails — or nesting deeper than the
// parser's recursion limit. WouldParse checks exactly that (and the structure, for good
// measure), erring on the side of false: every string field is checked whatever its syntax, and
// anything unusual (groups, a wire type that does not match the field, nesting beyond 64) is
// refused. The store uses it to decide whether Apply may take the objects this process proposed
// instead of re-parsing them (memory_store.h): on false it parses, so the bytes stay the truth.
//
// Thread-safe.
#ifndef SHOAL_MANAGER_STORE_WIRE_CHECK_H_
#define SHOAL_MANAGER_STORE_WIRE_CHECK_H_

#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"

namespace shoal::manager::store {

bool WouldParse(const google::protobuf::Descriptor* type, absl::string_view data);

// Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), as
// protobuf requires of proto3 strings.
bool IsValidUtf8(absl::string_view s);

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_WIRE_CHECK_H_
