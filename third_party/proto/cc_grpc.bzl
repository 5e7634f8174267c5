"""cc_grpc_library: C++ (and gRPC) code generated from .proto files with Debian's protoc.

Bazel 4's native proto rules want @com_google_protobuf from the network; a genrule running the
system protoc and grpc_cpp_plugin is simpler and fully offline. Imports are resolved relative to
the package directory, so `import "types.proto";` works between files of one package, and the
generated headers are included as "<file>.pb.h" or "<package>/<file>.pb.h".
"""

def cc_grpc_library(name, srcs, deps = [], proto_deps = [], grpc = True, visibility = None):
    """Generates and compiles C++ for `srcs`.

    proto_deps: .proto files that `srcs` import but whose code comes from a library in `deps`.
    """
    pkg = native.package_name()
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]

    grpc_flags = ""
    if grpc:
        grpc_flags = "--grpc_out=$(RULEDIR) --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin)"

    native.genrule(
        name = name + "_gen",
        srcs = srcs + proto_deps,
        outs = outs,
        cmd = "protoc -I{pkg} -I/usr/include --cpp_out=$(RULEDIR) {grpc} {files}".format(
            pkg = pkg or ".",
            grpc = grpc_flags,
            files = " ".join(["$(location %s)" % s for s in srcs]),
        ),
        message = "Generating C++ from " + ", ".join(srcs),
    )

    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = ["."],
        deps = deps + ["@grpc"],
        visibility = visibility,
    )
