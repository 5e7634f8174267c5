#include "cli/secret_command.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/node_format.h"
#include "cli/output.h"
#include "cli/resolve.h"
#include "cli/secret_format.h"
#include "cli/service_json.h"

namespace shoal::cli {
namespace {

constexpr int kUsageError = 2;

[[noreturn]] void UsageError(const std::string& message) {
  throw CommandError{message, kUsageError};
}

// What differs between secrets and configs.
template <typename T>
struct Kind;

template <>
struct Kind<api::Secret> {
  static constexpr char kName[] = "secret";
  static constexpr size_t kMaxBytes = kMaxSecretBytes;
  using ListRequest = api::ListSecretsRequest;

  static std::string Create(Context& ctx, const api::Annotations& a, const std::string& data) {
    api::CreateSecretRequest req;
    *req.mutable_spec()->mutable_annotations() = a;
    req.mutable_spec()->set_data(data);
    api::CreateSecretResponse resp;
    auto call = CallContext();
    ctx.Check(ctx.control().CreateSecret(call.get(), req, &resp));
    return resp.secret().id();
  }
  static std::vector<api::Secret> List(Context& ctx, const ListRequest& req) {
    api::ListSecretsResponse resp;
    auto call = CallContext();
    ctx.Check(ctx.control().ListSecrets(call.get(), req, &resp));
    return {resp.secrets().begin(), resp.secrets().end()};
  }
  static api::Secret Find(Context& ctx, const std::string& ref) { return ResolveSecret(ctx, ref); }
  static void Remove(Context& ctx, const std::string& id) {
    api::RemoveSecretRequest req;
    req.set_secret_id(id);
    api::RemoveSecretResponse resp;
    auto call = CallContext();
    ctx.Check(ctx.control().RemoveSecret(call.get(), req, &resp));
  }
  static nlohmann::ordered_json Json(const api::Secret& s) { return SecretJson(s); }
  static void Pretty(std::ostream& out, const api::Secret& s) { PrintSecretPretty(out, s); }
};

template <>
struct Kind<api::Config> {
  static constexpr char kName[] = "config";
  static constexpr size_t kMaxBytes = kMaxConfigBytes;
  using ListRequest = api::ListConfigsRequest;

  static std::string Create(Context& ctx, const api::Annotations& a, const std::string& data) {
    api::CreateConfigRequest req;
    *req.mutable_spec()->mutable_annotations() = a;
    req.mutable_spec()->set_data(data);
    api::CreateConfigResponse resp;
    auto call = CallContext();
    ctx.Check(ctx.control().CreateConfig(call.get(), req, &resp));
    return resp.config().id();
  }
  static std::vector<api::Config> List(Context& ctx, const ListRequest& req) {
    api::ListConfigsResponse resp;
    auto call = CallContext();
    ctx.Check(ctx.control().ListConfigs(call.get(), req, &resp));
    return {resp.configs().begin(), resp.configs().end()};
  }
  static api::Config Find(Context& ctx, const std::string& ref) { return ResolveConfig(ctx, ref); }
  static void Remove(Context& ctx, const std::string& id) {
    api::RemoveConfigRequest req;
    req.set_config_id(id);
    api::RemoveConfigResponse resp;
    auto call = CallContext();
    ctx.Check(ctx.control().RemoveConfig(call.get(), req, &resp));
  }
  static nlohmann::ordered_json Json(const api::Config& c) { return ConfigJson(c); }
  static void Pretty(std::ostream& out, const api::Config& c) { PrintConfigPretty(out, c); }
};

template <typename T>
void AddCreate(CLI::App& group, Context& ctx) {
  using K = Kind<T>;
  struct Options {
    std::string name, file;
    std::vector<std::string> labels;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = group.add_subcommand(
      "create", absl::StrCat("Create a ", K::kName, " from a file or STDIN as content"));
  cmd->add_option("-l,--label", o->labels, absl::StrCat(K::kName, " labels (KEY=VALUE)"))
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  cmd->add_option("NAME", o->name, absl::StrCat("Name of the ", K::kName))->required();
  cmd->add_option("FILE", o->file, "File with the content, or - to read it from STDIN")->required();
  cmd->callback([&ctx, o] {
    api::Annotations a;
    a.set_name(o->name);
    for (const std::string& l : o->labels) {
      const size_t eq = l.find('=');
      if (eq == 0 || l.empty()) {
        UsageError(absl::StrCat("--label: invalid label \"", l, "\": use KEY=VALUE or KEY"));
      }
      (*a.mutable_labels())[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
    }
    absl::StatusOr<std::string> data = ReadObjectData(ctx.in(), o->file, K::kMaxBytes, K::kName);
    if (!data.ok()) throw CommandError{std::string(data.status().message())};
    ctx.out() << K::Create(ctx, a, *data) << "\n";
  });
}

template <typename T>
void AddLs(CLI::App& group, Context& ctx) {
  using K = Kind<T>;
  struct Options {
    bool quiet = false;
    std::string format;
    std::vector<std::string> filters;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = group.add_subcommand("ls", absl::StrCat("List ", K::kName, "s"));
  cmd->alias("list");
  cmd->add_flag("-q,--quiet", o->quiet, "Only display IDs");
  cmd->add_option("--format", o->format, "Output format: table (default) or json");
  cmd->add_option("-f,--filter", o->filters,
                  "Filter output based on conditions provided (id=, name=, label=)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  cmd->callback([&ctx, o] {
    Format format;
    if (!ParseFormat(o->format, &format)) {
      UsageError("unknown --format \"" + o->format + "\"; use json, or omit it");
    }
    typename K::ListRequest req;
    for (const std::string& f : o->filters) {
      const size_t eq = f.find('=');
      const std::string key = f.substr(0, eq);
      const std::string value = eq == std::string::npos ? "" : f.substr(eq + 1);
      if (key == "id" && !value.empty()) {
        req.mutable_filters()->add_id_prefixes(value);
      } else if (key == "name" && !value.empty()) {
        req.mutable_filters()->add_name_prefixes(value);
      } else if (key == "label" && !value.empty()) {
        const size_t leq = value.find('=');
        (*req.mutable_filters()->mutable_labels())[value.substr(0, leq)] =
            leq == std::string::npos ? "" : value.substr(leq + 1);
      } else {
        UsageError(absl::StrCat("invalid filter \"", f, "\": use id=, name= or label="));
      }
    }
    std::vector<T> objects = K::List(ctx, req);
    std::sort(objects.begin(), objects.end(), [](const T& a, const T& b) {
      return NaturalLess(a.spec().annotations().name(), b.spec().annotations().name());
    });
    if (o->quiet) {
      for (const T& x : objects) ctx.out() << x.id() << "\n";
      return;
    }
    std::vector<SecretListRow> rows;
    for (const T& x : objects) {
      rows.push_back(
          MakeSecretListRow(x.id(), x.spec().annotations(), x.meta(), ctx.clock().Now()));
    }
    if (format == Format::kJson) {
      for (const SecretListRow& row : rows) PrintJsonLine(ctx.out(), SecretListRowJson(row));
    } else {
      PrintSecretTable(ctx.out(), rows);
    }
  });
}

template <typename T>
void AddInspect(CLI::App& group, Context& ctx) {
  using K = Kind<T>;
  struct Options {
    bool pretty = false;
    std::vector<std::string> refs;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = group.add_subcommand(
      "inspect", absl::StrCat("Display detailed information on one or more ", K::kName, "s"));
  cmd->add_flag("--pretty", o->pretty, "Print the information in a human friendly format");
  cmd->add_option(absl::AsciiStrToUpper(K::kName), o->refs,
                  absl::StrCat(K::kName, " name, ID or ID prefix"))
      ->required()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([&ctx, o] {
    std::vector<T> found;
    std::vector<std::string> errors;
    for (const std::string& ref : o->refs) {
      try {
        found.push_back(K::Find(ctx, ref));
      } catch (const CommandError& e) {
        errors.push_back(e.message);
      }
    }
    if (o->pretty) {
      for (size_t i = 0; i < found.size(); ++i) {
        if (i > 0) ctx.out() << "\n";
        K::Pretty(ctx.out(), found[i]);
      }
    } else if (!found.empty() || errors.empty()) {
      nlohmann::ordered_json all = nlohmann::ordered_json::array();
      for (const T& x : found) all.push_back(K::Json(x));
      ctx.out() << all.dump(4) << "\n";
    }
    if (!errors.empty()) throw CommandError{absl::StrJoin(errors, "\n")};
  });
}

template <typename T>
void AddRm(CLI::App& group, Context& ctx) {
  using K = Kind<T>;
  auto refs = std::make_shared<std::vector<std::string>>();
  auto* cmd = group.add_subcommand("rm", absl::StrCat("Remove one or more ", K::kName, "s"));
  cmd->alias("remove");
  cmd->add_option(absl::AsciiStrToUpper(K::kName), *refs,
                  absl::StrCat(K::kName, " name, ID or ID prefix"))
      ->required()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([&ctx, refs] {
    std::vector<std::string> errors;
    for (const std::string& ref : *refs) {
      try {
        K::Remove(ctx, K::Find(ctx, ref).id());
        ctx.out() << ref << "\n";
      } catch (const CommandError& e) {
        errors.push_back(e.message);
      }
    }
    if (!errors.empty()) throw CommandError{absl::StrJoin(errors, "\n")};
  });
}

template <typename T>
void AddGroup(CLI::App& app, Context& ctx, const std::string& help) {
  auto* group = app.add_subcommand(Kind<T>::kName, help);
  group->require_subcommand(1);
  AddCreate<T>(*group, ctx);
  AddInspect<T>(*group, ctx);
  AddLs<T>(*group, ctx);
  AddRm<T>(*group, ctx);
}

}  // namespace

absl::StatusOr<std::string> ReadObjectData(std::istream& in, const std::string& path,
                                           size_t max_bytes, const std::string& kind) {
  std::string data;
  auto read_all = [&](std::istream& from) {
    // Read one byte past the limit: enough to know it is too much without reading it all.
    std::vector<char> buf(max_bytes + 1);
    from.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    data.assign(buf.data(), static_cast<size_t>(from.gcount()));
  };
  if (path == "-") {
    read_all(in);
  } else {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
      return absl::NotFoundError(absl::StrCat("cannot read ", kind, " file ", path, ": ",
                                              std::strerror(errno),
                                              "; check the path, or give - to read STDIN"));
    }
    read_all(file);
    if (file.bad()) {
      return absl::DataLossError(
          absl::StrCat("cannot read ", kind, " file ", path, ": ", std::strerror(errno)));
    }
  }
  if (data.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, " data is too large: more than ", max_bytes / 1024, " KiB (", max_bytes,
                     " bytes) is not allowed; ", kind == "secret" ? "secrets" : "configs",
                     " are for small items (keys, certificates, configuration files)"));
  }
  return data;
}

void AddSecretCommand(CLI::App& app, Context& ctx) {
  AddGroup<api::Secret>(app, ctx, "Manage swarm secrets");
}

void AddConfigCommand(CLI::App& app, Context& ctx) {
  AddGroup<api::Config>(app, ctx, "Manage swarm configs");
}

}  // namespace shoal::cli
