# Turns one of etcd's .proto files into plain proto3 that Debian's protoc compiles without
# gogoproto or googleapis: drops their imports, file options, field options and the grpc-gateway
# `option (google.api.http) = {...};` blocks. Messages, fields, numbers and package names are
# untouched, so the wire format is etcd's.
/^import "gogoproto\/gogo.proto";/ { next }
/^import "google\/api\/annotations.proto";/ { next }
/^option \(gogoproto\./ { next }
/option \(google\.api\.http\)/ { in_http = 1 }
in_http {
  if ($0 ~ /};/) in_http = 0
  next
}
{
  # Field options such as [(gogoproto.nullable) = false]; none in 3.4's KV protos, but cheap.
  gsub(/ *\[\(gogoproto\.[^]]*\]/, "")
  print
}
