# Turns one of containerd's API .proto files into plain proto3 that Debian's protoc 3.21 compiles
# without gogoproto or containerd's fieldpath plugin: drops their imports, file/message/enum
# options and field options, and rewrites any other `import weak` (protoc 3.21 aborts on it) to a
# plain import. Messages, fields, numbers and package names are untouched, so the wire format and
# the gRPC method paths are containerd's.
/^import weak "gogoproto\/gogo\.proto";/ { next }
/^import weak ".*\/protobuf\/plugin\/fieldpath\.proto";/ { next }
/^[ \t]*option \((gogoproto|containerd\.plugin)\./ { next }
{
  sub(/^import weak /, "import ")
  # Field and enum-value options such as [(gogoproto.nullable) = false, (gogoproto.stdtime) = true]
  gsub(/[ \t]*\[\(gogoproto\.[^]]*\]/, "")
  print
}
