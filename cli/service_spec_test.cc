#include "cli/service_spec.h"

#include <set>

#include "absl/strings/match.h"
#include "cli/duration.h"
#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

// Builds ServiceFlags fluently.
class Flags {
 public:
  Flags() {
    f_.image = "nginx:1.25";
    f_.lookup_env = [](const std::string& key) -> std::optional<std::string> {
      if (key == "HOME_DIR") return std::string("/home/me");
      return std::nullopt;
    };
  }
  Flags& V(const std::string& name, const std::string& value) {
    f_.values[name] = value;
    return *this;
  }
  Flags& L(const std::string& name, std::vector<std::string> values) {
    f_.lists[name] = std::move(values);
    return *this;
  }
  Flags& B(const std::string& name, bool value = true) {
    f_.bools[name] = value;
    return *this;
  }
  Flags& Image(const std::string& image) {
    f_.image = image;
    return *this;
  }
  Flags& Args(std::vector<std::string> args) {
    f_.args = std::move(args);
    return *this;
  }
  Flags& NetworkId(const std::string& name, const std::string& id) {
    f_.network_ids[name] = id;
    return *this;
  }
  const ServiceFlags& get() const { return f_; }

 private:
  ServiceFlags f_;
};

api::ServiceSpec Build(const Flags& f) {
  absl::StatusOr<api::ServiceSpec> spec = BuildServiceSpec(f.get());
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : api::ServiceSpec();
}

// The error message of a create that must fail.
std::string CreateError(const Flags& f) {
  absl::StatusOr<api::ServiceSpec> spec = BuildServiceSpec(f.get());
  EXPECT_FALSE(spec.ok()) << spec->DebugString();
  if (spec.ok()) return "";
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(spec.status().message());
}

api::ServiceSpec Update(const Flags& f, api::ServiceSpec spec) {
  absl::Status s = UpdateServiceSpec(f.get(), &spec);
  EXPECT_TRUE(s.ok()) << s;
  return spec;
}

std::string UpdateError(const Flags& f, api::ServiceSpec spec) {
  absl::Status s = UpdateServiceSpec(f.get(), &spec);
  EXPECT_FALSE(s.ok());
  return std::string(s.message());
}

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& r) {
  return {r.begin(), r.end()};
}

int64_t Nanos(const google::protobuf::Duration& d) {
  return absl::ToInt64Nanoseconds(FromProto(d));
}

// --- create ------------------------------------------------------------------------------------

TEST(BuildServiceSpecTest, DefaultsLeavePoliciesUnset) {
  const api::ServiceSpec spec = Build(Flags());
  EXPECT_EQ(spec.task_template().container_spec().image(), "nginx:1.25");
  ASSERT_TRUE(spec.has_replicated());
  EXPECT_EQ(spec.replicated().replicas(), 1u);
  EXPECT_TRUE(spec.annotations().name().empty());
  EXPECT_FALSE(spec.has_update_config());
  EXPECT_FALSE(spec.has_rollback_config());
  EXPECT_FALSE(spec.task_template().has_restart_policy());
  EXPECT_FALSE(spec.task_template().has_resources());
  EXPECT_FALSE(spec.task_template().has_placement());
  EXPECT_FALSE(spec.has_endpoint_spec());
  EXPECT_FALSE(spec.task_template().container_spec().has_healthcheck());
}

TEST(BuildServiceSpecTest, NeedsAnImage) {
  EXPECT_EQ(CreateError(Flags().Image("")),
            "an image is required: shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]");
}

TEST(BuildServiceSpecTest, NameLabelsEnvAndArgs) {
  const api::ServiceSpec spec = Build(Flags()
                                          .V("name", "web")
                                          .L("label", {"tier=front", "canary"})
                                          .L("container-label", {"com.example=1"})
                                          .L("env", {"A=1", "B=x=y", "HOME_DIR", "UNSET_VAR"})
                                          .Args({"nginx", "-g", "daemon off;"}));
  EXPECT_EQ(spec.annotations().name(), "web");
  EXPECT_EQ(spec.annotations().labels().at("tier"), "front");
  EXPECT_EQ(spec.annotations().labels().at("canary"), "");
  const api::ContainerSpec& c = spec.task_template().container_spec();
  EXPECT_EQ(c.labels().at("com.example"), "1");
  EXPECT_EQ(Strings(c.env()),
            (std::vector<std::string>{"A=1", "B=x=y", "HOME_DIR=/home/me", "UNSET_VAR"}));
  EXPECT_EQ(Strings(c.args()), (std::vector<std::string>{"nginx", "-g", "daemon off;"}));
  EXPECT_EQ(c.command_size(), 0);
}

TEST(BuildServiceSpecTest, LabelAndEnvErrors) {
  EXPECT_EQ(CreateError(Flags().L("label", {"=x"})),
            "--label: invalid value \"=x\": the key is empty; use KEY=VALUE or KEY");
  EXPECT_EQ(CreateError(Flags().L("container-label", {"=x"})),
            "--container-label: invalid value \"=x\": the key is empty; use KEY=VALUE or KEY");
  EXPECT_EQ(CreateError(Flags().L("env", {"=x"})),
            "--env: invalid environment variable \"=x\": use KEY=VALUE");
  EXPECT_EQ(CreateError(Flags().L("env", {""})),
            "--env: invalid environment variable \"\": use KEY=VALUE");
}

TEST(BuildServiceSpecTest, Modes) {
  api::ServiceSpec spec = Build(Flags().V("replicas", "3"));
  EXPECT_EQ(spec.replicated().replicas(), 3u);
  spec = Build(Flags().V("mode", "replicated").V("replicas", "0"));
  EXPECT_EQ(spec.replicated().replicas(), 0u);
  spec = Build(Flags().V("mode", "global"));
  EXPECT_TRUE(spec.has_global());
  spec = Build(Flags().V("mode", "global-job"));
  EXPECT_TRUE(spec.has_global_job());
  spec = Build(Flags().V("mode", "replicated-job"));
  EXPECT_EQ(spec.replicated_job().total_completions(), 1u);
  EXPECT_EQ(spec.replicated_job().max_concurrent(), 1u);
  spec = Build(Flags().V("mode", "replicated-job").V("replicas", "10"));
  EXPECT_EQ(spec.replicated_job().total_completions(), 10u);
  EXPECT_EQ(spec.replicated_job().max_concurrent(), 10u);
  spec = Build(Flags().V("mode", "replicated-job").V("replicas", "10").V("max-concurrent", "2"));
  EXPECT_EQ(spec.replicated_job().total_completions(), 10u);
  EXPECT_EQ(spec.replicated_job().max_concurrent(), 2u);
}

TEST(BuildServiceSpecTest, ModeErrors) {
  EXPECT_EQ(CreateError(Flags().V("mode", "daemon")),
            "--mode: invalid mode \"daemon\": use replicated, global, replicated-job or "
            "global-job");
  EXPECT_EQ(CreateError(Flags().V("mode", "global").V("replicas", "2")),
            "--replicas: can only be used with --mode replicated or replicated-job");
  EXPECT_EQ(CreateError(Flags().V("mode", "global-job").V("replicas", "2")),
            "--replicas: can only be used with --mode replicated or replicated-job");
  EXPECT_EQ(CreateError(Flags().V("max-concurrent", "2")),
            "--max-concurrent: can only be used with --mode replicated-job");
  EXPECT_EQ(CreateError(Flags().V("replicas", "-1")),
            "--replicas: invalid number \"-1\": use a whole number, e.g. 3");
  EXPECT_EQ(CreateError(Flags().V("replicas", "three")),
            "--replicas: invalid number \"three\": use a whole number, e.g. 3");
  EXPECT_EQ(CreateError(Flags().V("mode", "replicated-job").V("max-concurrent", "x")),
            "--max-concurrent: invalid number \"x\": use a whole number, e.g. 3");
}

TEST(BuildServiceSpecTest, Placement) {
  const api::ServiceSpec spec =
      Build(Flags()
                .L("constraint", {"node.role==manager", "node.labels.z!=b"})
                .L("placement-pref", {"spread=node.labels.zone"})
                .V("replicas-max-per-node", "2"));
  const api::Placement& p = spec.task_template().placement();
  EXPECT_EQ(Strings(p.constraints()),
            (std::vector<std::string>{"node.role==manager", "node.labels.z!=b"}));
  ASSERT_EQ(p.preferences_size(), 1);
  EXPECT_EQ(p.preferences(0).spread().spread_descriptor(), "node.labels.zone");
  EXPECT_EQ(p.max_replicas(), 2u);
}

TEST(BuildServiceSpecTest, PlacementErrors) {
  EXPECT_EQ(CreateError(Flags().L("constraint", {" "})),
            "--constraint: empty constraint; use e.g. node.role==manager");
  EXPECT_EQ(CreateError(Flags().L("placement-pref", {"pack=node.id"})),
            "--placement-pref: invalid placement preference \"pack=node.id\": use "
            "spread=node.labels.KEY (spread is the only strategy)");
  EXPECT_EQ(CreateError(Flags().L("placement-pref", {"spread="})),
            "--placement-pref: invalid placement preference \"spread=\": use "
            "spread=node.labels.KEY (spread is the only strategy)");
  EXPECT_EQ(CreateError(Flags().V("mode", "global").V("replicas-max-per-node", "1")),
            "--replicas-max-per-node: can only be used with replicated or replicated-job mode "
            "(this service is global)");
  EXPECT_EQ(CreateError(Flags().V("replicas-max-per-node", "many")),
            "--replicas-max-per-node: invalid number \"many\": use a whole number, e.g. 3");
}

TEST(BuildServiceSpecTest, PublishForms) {
  const api::ServiceSpec spec = Build(Flags().L(
      "publish", {"8080:80", "9000", "53:53/udp", "7000-7001:70-71/tcp",
                  "published=443,target=8443,protocol=tcp,mode=host", "target=22,mode=ingress"}));
  const auto& ports = spec.endpoint_spec().ports();
  ASSERT_EQ(ports.size(), 7);
  EXPECT_EQ(ports[0].published_port(), 8080u);
  EXPECT_EQ(ports[0].target_port(), 80u);
  EXPECT_EQ(ports[0].protocol(), api::PortConfig::TCP);
  EXPECT_EQ(ports[0].publish_mode(), api::PortConfig::INGRESS);
  EXPECT_EQ(ports[1].published_port(), 0u);  // the managers pick one
  EXPECT_EQ(ports[1].target_port(), 9000u);
  EXPECT_EQ(ports[2].protocol(), api::PortConfig::UDP);
  EXPECT_EQ(ports[3].published_port(), 7000u);
  EXPECT_EQ(ports[3].target_port(), 70u);
  EXPECT_EQ(ports[4].published_port(), 7001u);
  EXPECT_EQ(ports[4].target_port(), 71u);
  EXPECT_EQ(ports[5].published_port(), 443u);
  EXPECT_EQ(ports[5].target_port(), 8443u);
  EXPECT_EQ(ports[5].publish_mode(), api::PortConfig::HOST);
  EXPECT_EQ(ports[6].target_port(), 22u);
  EXPECT_EQ(ports[6].published_port(), 0u);
}

TEST(BuildServiceSpecTest, PublishErrors) {
  const std::string usage =
      "use [PUBLISHED:]TARGET[/PROTOCOL] (e.g. 8080:80/udp) or "
      "published=8080,target=80,protocol=tcp,mode=ingress|host";
  EXPECT_EQ(
      CreateError(Flags().L("publish", {"8080:http"})),
      "--publish: invalid port \"8080:http\" (invalid port number \"http\": use 1 to 65535); " +
          usage);
  EXPECT_EQ(
      CreateError(Flags().L("publish", {"0:80"})),
      "--publish: invalid port \"0:80\" (invalid port number \"0\": use 1 to 65535); " + usage);
  EXPECT_EQ(CreateError(Flags().L("publish", {"70000"})),
            "--publish: invalid port \"70000\" (invalid port number \"70000\": use 1 to 65535); " +
                usage);
  EXPECT_EQ(CreateError(Flags().L("publish", {"127.0.0.1:8080:80"})),
            "--publish: invalid port \"127.0.0.1:8080:80\": publishing on a given IP address is "
            "not supported in swarm mode (the port is published on every address); " +
                usage);
  EXPECT_EQ(CreateError(Flags().L("publish", {"8080-8082:80-81"})),
            "--publish: invalid port \"8080-8082:80-81\": the published and target ranges differ "
            "in length");
  EXPECT_EQ(CreateError(Flags().L("publish", {"90-80"})),
            "--publish: invalid port \"90-80\" (invalid port range \"90-80\": the end is before "
            "the start); " +
                usage);
  EXPECT_EQ(CreateError(Flags().L("publish", {"80/icmp"})),
            "--publish: invalid protocol \"icmp\": use tcp, udp or sctp");
  EXPECT_EQ(CreateError(Flags().L("publish", {""})), "--publish: empty port; " + usage);
  EXPECT_EQ(CreateError(Flags().L("publish", {"published=8080"})),
            "--publish: missing target port in \"published=8080\": add target=PORT");
  EXPECT_EQ(CreateError(Flags().L("publish", {"target=80,color=red"})),
            "--publish: unknown field \"color\" in \"target=80,color=red\": use published, "
            "target, protocol and mode");
  EXPECT_EQ(
      CreateError(Flags().L("publish", {"target=80,host"})),
      "--publish: invalid field \"host\" in \"target=80,host\": each field is KEY=VALUE; " + usage);
  EXPECT_EQ(CreateError(Flags().L("publish", {"target=80,mode=mesh"})),
            "--publish: invalid publish mode \"mesh\": use ingress or host");
  EXPECT_EQ(CreateError(Flags().L("publish", {"target=80,protocol=raw"})),
            "--publish: invalid protocol \"raw\": use tcp, udp or sctp");
  EXPECT_EQ(CreateError(Flags().L("publish", {"target=x"})),
            "--publish: invalid port number \"x\": use 1 to 65535");
  EXPECT_EQ(CreateError(Flags().L("publish", {"target=80,published=0"})),
            "--publish: invalid port number \"0\": use 1 to 65535");
}

TEST(BuildServiceSpecTest, Networks) {
  const api::ServiceSpec spec = Build(
      Flags().L("network", {"backend", "name=front,alias=web,alias=www,driver-opt=mtu=1400"}));
  const auto& nets = spec.task_template().networks();
  ASSERT_EQ(nets.size(), 2);
  EXPECT_EQ(nets[0].target(), "backend");
  EXPECT_EQ(nets[1].target(), "front");
  EXPECT_EQ(Strings(nets[1].aliases()), (std::vector<std::string>{"web", "www"}));
  EXPECT_EQ(nets[1].driver_attachment_opts().at("mtu"), "1400");
  EXPECT_EQ(CreateError(Flags().L("network", {""})),
            "--network: empty network name; use NAME or name=NAME,alias=ALIAS");
  EXPECT_EQ(CreateError(Flags().L("network", {"alias=x"})),
            "--network: missing network name in \"alias=x\": add name=NETWORK");
  EXPECT_EQ(CreateError(Flags().L("network", {"name=a,color=b"})),
            "--network: unknown field \"color\" in \"name=a,color=b\": use name, alias and "
            "driver-opt");
  EXPECT_EQ(CreateError(Flags().L("network", {"name=a,alias"})),
            "--network: invalid field \"alias\" in \"name=a,alias\": use "
            "name=NAME,alias=ALIAS,driver-opt=KEY=VALUE");
  EXPECT_EQ(CreateError(Flags().L("network", {"name=a,driver-opt==1"})),
            "--network: invalid value \"=1\": the key is empty; use driver-opt=KEY=VALUE");
}

TEST(BuildServiceSpecTest, SecretsAndConfigs) {
  const api::ServiceSpec spec =
      Build(Flags()
                .L("secret", {"db_pass", "source=tls_key,target=key.pem,uid=100,gid=101,mode=0400"})
                .L("config", {"nginx_conf", "src=app,target=/etc/app.yml,mode=644"}));
  const api::ContainerSpec& c = spec.task_template().container_spec();
  ASSERT_EQ(c.secrets_size(), 2);
  EXPECT_EQ(c.secrets(0).secret_name(), "db_pass");
  EXPECT_TRUE(c.secrets(0).file().name().empty());  // the managers default it to the name
  EXPECT_EQ(c.secrets(1).secret_name(), "tls_key");
  EXPECT_EQ(c.secrets(1).file().name(), "key.pem");
  EXPECT_EQ(c.secrets(1).file().uid(), "100");
  EXPECT_EQ(c.secrets(1).file().gid(), "101");
  EXPECT_EQ(c.secrets(1).file().mode(), 0400u);
  ASSERT_EQ(c.configs_size(), 2);
  EXPECT_EQ(c.configs(0).config_name(), "nginx_conf");
  EXPECT_EQ(c.configs(1).config_name(), "app");
  EXPECT_EQ(c.configs(1).file().name(), "/etc/app.yml");
  EXPECT_EQ(c.configs(1).file().mode(), 0644u);
}

TEST(BuildServiceSpecTest, SecretAndConfigErrors) {
  EXPECT_EQ(CreateError(Flags().L("secret", {""})),
            "--secret: empty secret name; use NAME or source=NAME,target=PATH");
  EXPECT_EQ(CreateError(Flags().L("secret", {"target=x"})),
            "--secret: missing source in \"target=x\": add source=NAME (the secret)");
  EXPECT_EQ(CreateError(Flags().L("secret", {"source=a,mode=0999"})),
            "--secret: invalid file mode \"0999\": use octal digits, e.g. 0400");
  EXPECT_EQ(CreateError(Flags().L("secret", {"source=a,owner=me"})),
            "--secret: unknown field \"owner\" in \"source=a,owner=me\": use source, target, "
            "uid, gid and mode");
  EXPECT_EQ(CreateError(Flags().L("secret", {"source=a,target"})),
            "--secret: invalid field \"target\" in \"source=a,target\": each field is "
            "KEY=VALUE, e.g. source=NAME,target=PATH");
  EXPECT_EQ(CreateError(Flags().L("config", {"target=/x"})),
            "--config: missing source in \"target=/x\": add source=NAME (the config)");
  EXPECT_EQ(CreateError(Flags().L("config", {""})),
            "--config: empty config name; use NAME or source=NAME,target=PATH");
}

TEST(BuildServiceSpecTest, Mounts) {
  const api::ServiceSpec spec = Build(Flags().L(
      "mount",
      {"type=bind,source=/srv/data,target=/data,readonly,bind-propagation=rshared,"
       "bind-nonrecursive",
       "source=cache,destination=/cache,volume-nocopy=true,volume-label=a=b,volume-driver=local,"
       "volume-opt=type=nfs",
       "type=tmpfs,dst=/tmp,tmpfs-size=64m,tmpfs-mode=1777", "type=volume,target=/anon,ro=false"}));
  const auto& m = spec.task_template().container_spec().mounts();
  ASSERT_EQ(m.size(), 4);
  EXPECT_EQ(m[0].type(), api::Mount::BIND);
  EXPECT_EQ(m[0].source(), "/srv/data");
  EXPECT_EQ(m[0].target(), "/data");
  EXPECT_TRUE(m[0].readonly());
  EXPECT_EQ(m[0].bind_options().propagation(), api::Mount::BindOptions::RSHARED);
  EXPECT_TRUE(m[0].bind_options().non_recursive());
  EXPECT_EQ(m[1].type(), api::Mount::VOLUME);
  EXPECT_EQ(m[1].source(), "cache");
  EXPECT_EQ(m[1].target(), "/cache");
  EXPECT_TRUE(m[1].volume_options().nocopy());
  EXPECT_EQ(m[1].volume_options().labels().at("a"), "b");
  EXPECT_EQ(m[1].volume_options().driver_config().name(), "local");
  EXPECT_EQ(m[1].volume_options().driver_config().options().at("type"), "nfs");
  EXPECT_EQ(m[2].type(), api::Mount::TMPFS);
  EXPECT_EQ(m[2].tmpfs_options().size_bytes(), 64 << 20);
  EXPECT_EQ(m[2].tmpfs_options().mode(), 01777u);
  EXPECT_FALSE(m[3].readonly());
}

TEST(BuildServiceSpecTest, MountErrors) {
  EXPECT_EQ(CreateError(Flags().L("mount", {"type=bind,source=/a"})),
            "--mount: missing target in \"type=bind,source=/a\": add target=/path/in/container");
  EXPECT_EQ(CreateError(Flags().L("mount", {"type=bind,target=/a"})),
            "--mount: a bind mount needs a source (the path on the node) in "
            "\"type=bind,target=/a\": add source=/path");
  EXPECT_EQ(CreateError(Flags().L("mount", {"type=tmpfs,source=x,target=/a"})),
            "--mount: a tmpfs mount takes no source, in \"type=tmpfs,source=x,target=/a\"");
  EXPECT_EQ(CreateError(Flags().L("mount", {"type=nfs,target=/a"})),
            "--mount: invalid mount type \"nfs\": use bind, volume or tmpfs");
  EXPECT_EQ(CreateError(Flags().L("mount", {"target=/a,bind-propagation=shared"})),
            "--mount: mount option bind-propagation is only valid with type=bind");
  EXPECT_EQ(CreateError(Flags().L("mount", {"type=bind,source=/a,target=/a,tmpfs-size=1m"})),
            "--mount: mount option tmpfs-size is only valid with type=tmpfs");
  EXPECT_EQ(CreateError(Flags().L("mount", {"type=tmpfs,target=/a,volume-nocopy"})),
            "--mount: mount option volume-nocopy is only valid with type=volume");
  EXPECT_EQ(CreateError(Flags().L("mount", {"type=bind,source=/a,target=/a,bind-propagation=up"})),
            "--mount: invalid bind-propagation \"up\": use rprivate, private, rshared, shared, "
            "rslave or slave");
  EXPECT_EQ(CreateError(Flags().L("mount", {"target=/a,readonly=maybe"})),
            "--mount: mount option readonly: invalid boolean \"maybe\": use true or false");
  EXPECT_EQ(CreateError(Flags().L("mount", {"target=/a,size=1"})),
            "--mount: unknown mount option \"size\": use type, source, target, readonly, "
            "bind-propagation, bind-nonrecursive, volume-nocopy, volume-label, volume-driver, "
            "volume-opt, tmpfs-size or tmpfs-mode");
  EXPECT_EQ(CreateError(Flags().L("mount", {"target=/a,source"})),
            "--mount: invalid field \"source\" in \"target=/a,source\": use KEY=VALUE, e.g. "
            "type=bind,source=/data,target=/data");
  EXPECT_EQ(CreateError(Flags().L("mount", {"type=tmpfs,target=/a,tmpfs-size=big"})),
            "--mount: tmpfs-size: invalid size \"big\": use a number of bytes with an optional "
            "unit (b, k, m, g, t, p), e.g. 512m or 1g");
  EXPECT_EQ(CreateError(Flags().L("mount", {"type=tmpfs,target=/a,tmpfs-mode=9"})),
            "--mount: tmpfs-mode: invalid file mode \"9\": use octal digits, e.g. 0400");
  EXPECT_EQ(CreateError(Flags().L("mount", {"target=/a,volume-label==b"})),
            "--mount: invalid value \"=b\": the key is empty; use volume-label=KEY=VALUE");
  EXPECT_EQ(CreateError(Flags().L("mount", {"target=/a,volume-opt==b"})),
            "--mount: invalid value \"=b\": the key is empty; use volume-opt=KEY=VALUE");
}

TEST(BuildServiceSpecTest, Resources) {
  const api::ServiceSpec spec = Build(Flags()
                                          .V("reserve-cpu", "0.5")
                                          .V("reserve-memory", "512M")
                                          .V("limit-cpu", "2")
                                          .V("limit-memory", "1.5g")
                                          .V("limit-pids", "100"));
  const api::ResourceRequirements& r = spec.task_template().resources();
  EXPECT_EQ(r.reservations().nano_cpus(), 500000000);
  EXPECT_EQ(r.reservations().memory_bytes(), 512LL << 20);
  EXPECT_EQ(r.limits().nano_cpus(), 2000000000);
  EXPECT_EQ(r.limits().memory_bytes(), 3LL << 29);
  EXPECT_EQ(r.pids_limit(), 100);
}

TEST(BuildServiceSpecTest, ResourceErrors) {
  EXPECT_EQ(CreateError(Flags().V("reserve-cpu", "half")),
            "--reserve-cpu: invalid number of CPUs \"half\": use a decimal number, e.g. 0.5 or 2");
  EXPECT_EQ(CreateError(Flags().V("limit-cpu", "0.0000000001")),
            "--limit-cpu: number of CPUs \"0.0000000001\" is too precise: use at most 9 decimal "
            "places");
  EXPECT_EQ(CreateError(Flags().V("limit-cpu", "-1")),
            "--limit-cpu: invalid number of CPUs \"-1\": use a decimal number, e.g. 0.5 or 2");
  EXPECT_EQ(CreateError(Flags().V("reserve-memory", "1x")),
            "--reserve-memory: invalid size \"1x\": use a number of bytes with an optional unit "
            "(b, k, m, g, t, p), e.g. 512m or 1g");
  EXPECT_EQ(CreateError(Flags().V("limit-memory", "")),
            "--limit-memory: invalid size \"\": use a number of bytes with an optional unit (b, "
            "k, m, g, t, p), e.g. 512m or 1g");
  EXPECT_EQ(CreateError(Flags().V("limit-pids", "-5")),
            "--limit-pids: must not be negative (0 = unlimited)");
  EXPECT_EQ(CreateError(Flags().V("limit-pids", "lots")),
            "--limit-pids: invalid number \"lots\": use a whole number, e.g. 3");
}

TEST(BuildServiceSpecTest, RestartPolicy) {
  const api::ServiceSpec spec = Build(Flags()
                                          .V("restart-condition", "on-failure")
                                          .V("restart-delay", "10s")
                                          .V("restart-max-attempts", "3")
                                          .V("restart-window", "2m"));
  const api::RestartPolicy& p = spec.task_template().restart_policy();
  EXPECT_EQ(p.condition(), api::RestartPolicy::ON_FAILURE);
  EXPECT_EQ(p.delay().seconds(), 10);
  EXPECT_EQ(p.max_attempts(), 3u);
  EXPECT_EQ(p.window().seconds(), 120);
  EXPECT_EQ(
      Build(Flags().V("restart-condition", "none")).task_template().restart_policy().condition(),
      api::RestartPolicy::NONE);
  EXPECT_EQ(
      Build(Flags().V("restart-condition", "any")).task_template().restart_policy().condition(),
      api::RestartPolicy::ANY);
  EXPECT_EQ(CreateError(Flags().V("restart-condition", "always")),
            "--restart-condition: invalid condition \"always\": use none, on-failure or any");
  EXPECT_TRUE(
      absl::StartsWith(CreateError(Flags().V("restart-delay", "5")),
                       "--restart-delay: invalid duration \"5\": use a number with a unit"));
  EXPECT_TRUE(absl::StartsWith(CreateError(Flags().V("restart-window", "soon")),
                               "--restart-window: invalid duration \"soon\""));
  EXPECT_EQ(CreateError(Flags().V("restart-max-attempts", "1.5")),
            "--restart-max-attempts: invalid number \"1.5\": use a whole number, e.g. 3");
}

TEST(BuildServiceSpecTest, UpdateAndRollbackConfigsStartFromDockersDefaults) {
  api::ServiceSpec spec = Build(Flags().V("update-delay", "10s"));
  ASSERT_TRUE(spec.has_update_config());
  EXPECT_EQ(spec.update_config().parallelism(), 1u);
  EXPECT_EQ(spec.update_config().delay().seconds(), 10);
  EXPECT_EQ(spec.update_config().monitor().seconds(), 5);
  EXPECT_EQ(spec.update_config().failure_action(), api::UpdateConfig::PAUSE);
  EXPECT_FALSE(spec.has_rollback_config());

  spec = Build(Flags()
                   .V("update-parallelism", "0")
                   .V("update-failure-action", "rollback")
                   .V("update-monitor", "30s")
                   .V("update-max-failure-ratio", "0.25")
                   .V("update-order", "start-first")
                   .V("rollback-parallelism", "2")
                   .V("rollback-delay", "1s")
                   .V("rollback-failure-action", "continue")
                   .V("rollback-monitor", "1m")
                   .V("rollback-max-failure-ratio", "1")
                   .V("rollback-order", "stop-first"));
  const api::UpdateConfig& u = spec.update_config();
  EXPECT_EQ(u.parallelism(), 0u);
  EXPECT_EQ(u.failure_action(), api::UpdateConfig::ROLLBACK);
  EXPECT_EQ(u.monitor().seconds(), 30);
  EXPECT_FLOAT_EQ(u.max_failure_ratio(), 0.25f);
  EXPECT_EQ(u.order(), api::UpdateConfig::START_FIRST);
  const api::UpdateConfig& rb = spec.rollback_config();
  EXPECT_EQ(rb.parallelism(), 2u);
  EXPECT_EQ(rb.delay().seconds(), 1);
  EXPECT_EQ(rb.failure_action(), api::UpdateConfig::CONTINUE);
  EXPECT_EQ(rb.monitor().seconds(), 60);
  EXPECT_FLOAT_EQ(rb.max_failure_ratio(), 1.0f);
  EXPECT_EQ(rb.order(), api::UpdateConfig::STOP_FIRST);
  EXPECT_EQ(Build(Flags().V("update-failure-action", "pause")).update_config().failure_action(),
            api::UpdateConfig::PAUSE);
}

TEST(BuildServiceSpecTest, UpdateAndRollbackConfigErrors) {
  EXPECT_EQ(CreateError(Flags().V("update-failure-action", "retry")),
            "--update-failure-action: invalid action \"retry\": use pause, continue or rollback");
  EXPECT_EQ(CreateError(Flags().V("rollback-failure-action", "rollback")),
            "--rollback-failure-action: invalid action \"rollback\": use pause or continue");
  EXPECT_EQ(CreateError(Flags().V("update-order", "random")),
            "--update-order: invalid order \"random\": use start-first or stop-first");
  EXPECT_EQ(CreateError(Flags().V("rollback-order", "x")),
            "--rollback-order: invalid order \"x\": use start-first or stop-first");
  EXPECT_EQ(
      CreateError(Flags().V("update-max-failure-ratio", "1.5")),
      "--update-max-failure-ratio: invalid ratio \"1.5\": use a number from 0 to 1, e.g. 0.2");
  EXPECT_EQ(CreateError(Flags().V("rollback-max-failure-ratio", "lots")),
            "--rollback-max-failure-ratio: invalid ratio \"lots\": use a number from 0 to 1, e.g. "
            "0.2");
  EXPECT_EQ(CreateError(Flags().V("update-parallelism", "-1")),
            "--update-parallelism: invalid number \"-1\": use a whole number, e.g. 3");
  EXPECT_EQ(CreateError(Flags().V("rollback-parallelism", "x")),
            "--rollback-parallelism: invalid number \"x\": use a whole number, e.g. 3");
  for (const char* flag :
       {"update-delay", "update-monitor", "rollback-delay", "rollback-monitor"}) {
    EXPECT_TRUE(absl::StartsWith(CreateError(Flags().V(flag, "1")),
                                 absl::StrCat("--", flag, ": invalid duration \"1\"")))
        << flag;
  }
}

TEST(BuildServiceSpecTest, Healthcheck) {
  const api::ServiceSpec spec = Build(Flags()
                                          .V("health-cmd", "curl -f http://localhost/")
                                          .V("health-interval", "10s")
                                          .V("health-timeout", "2s")
                                          .V("health-retries", "4")
                                          .V("health-start-period", "1m")
                                          .V("health-start-interval", "1s"));
  const api::HealthConfig& h = spec.task_template().container_spec().healthcheck();
  EXPECT_EQ(Strings(h.test()),
            (std::vector<std::string>{"CMD-SHELL", "curl -f http://localhost/"}));
  EXPECT_EQ(h.interval().seconds(), 10);
  EXPECT_EQ(h.timeout().seconds(), 2);
  EXPECT_EQ(h.retries(), 4);
  EXPECT_EQ(h.start_period().seconds(), 60);
  EXPECT_EQ(h.start_interval().seconds(), 1);

  const api::ServiceSpec none = Build(Flags().B("no-healthcheck"));
  EXPECT_EQ(Strings(none.task_template().container_spec().healthcheck().test()),
            (std::vector<std::string>{"NONE"}));
}

TEST(BuildServiceSpecTest, HealthcheckErrors) {
  EXPECT_EQ(CreateError(Flags().B("no-healthcheck").V("health-interval", "5s")),
            "--no-healthcheck conflicts with --health-interval: give one or the other");
  EXPECT_EQ(CreateError(Flags().V("health-retries", "-1")),
            "--health-retries: invalid number \"-1\": use a whole number, e.g. 3");
  for (const char* flag :
       {"health-interval", "health-timeout", "health-start-period", "health-start-interval"}) {
    EXPECT_TRUE(absl::StartsWith(CreateError(Flags().V(flag, "often")),
                                 absl::StrCat("--", flag, ": invalid duration \"often\"")))
        << flag;
  }
}

TEST(BuildServiceSpecTest, ContainerSettings) {
  const api::ServiceSpec spec = Build(Flags()
                                          .V("stop-grace-period", "30s")
                                          .V("stop-signal", "SIGINT")
                                          .V("user", "1000:1000")
                                          .V("workdir", "/app")
                                          .V("hostname", "{{.Service.Name}}-{{.Task.Slot}}")
                                          .V("entrypoint", "/bin/sh -c 'echo hi there'")
                                          .V("endpoint-mode", "dnsrr")
                                          .B("tty")
                                          .B("read-only")
                                          .B("init", false)
                                          .L("group", {"audio", "video"})
                                          .L("sysctl", {"net.core.somaxconn=1024"})
                                          .L("cap-add", {"net_admin", "CAP_SYS_TIME"})
                                          .L("cap-drop", {"mknod"}));
  const api::ContainerSpec& c = spec.task_template().container_spec();
  EXPECT_EQ(c.stop_grace_period().seconds(), 30);
  EXPECT_EQ(c.stop_signal(), "SIGINT");
  EXPECT_EQ(c.user(), "1000:1000");
  EXPECT_EQ(c.dir(), "/app");
  EXPECT_EQ(c.hostname(), "{{.Service.Name}}-{{.Task.Slot}}");
  EXPECT_EQ(Strings(c.command()), (std::vector<std::string>{"/bin/sh", "-c", "echo hi there"}));
  EXPECT_EQ(spec.endpoint_spec().mode(), api::EndpointSpec::DNSRR);
  EXPECT_TRUE(c.tty());
  EXPECT_TRUE(c.read_only());
  ASSERT_TRUE(c.has_init());
  EXPECT_FALSE(c.init().value());
  EXPECT_EQ(Strings(c.groups()), (std::vector<std::string>{"audio", "video"}));
  EXPECT_EQ(c.sysctls().at("net.core.somaxconn"), "1024");
  EXPECT_EQ(Strings(c.capability_add()),
            (std::vector<std::string>{"CAP_NET_ADMIN", "CAP_SYS_TIME"}));
  EXPECT_EQ(Strings(c.capability_drop()), (std::vector<std::string>{"CAP_MKNOD"}));
  EXPECT_EQ(Build(Flags().V("endpoint-mode", "vip")).endpoint_spec().mode(),
            api::EndpointSpec::VIP);
}

TEST(BuildServiceSpecTest, ContainerSettingErrors) {
  EXPECT_EQ(CreateError(Flags().V("endpoint-mode", "nat")),
            "--endpoint-mode: invalid mode \"nat\": use vip or dnsrr");
  EXPECT_EQ(CreateError(Flags().V("entrypoint", "sh -c 'oops")),
            "--entrypoint: unterminated single quote in \"sh -c 'oops\"");
  EXPECT_TRUE(absl::StartsWith(CreateError(Flags().V("stop-grace-period", "ten")),
                               "--stop-grace-period: invalid duration \"ten\""));
  EXPECT_EQ(CreateError(Flags().L("sysctl", {"net.core.somaxconn"})),
            "--sysctl: invalid value \"net.core.somaxconn\": use KEY=VALUE, e.g. "
            "net.core.somaxconn=1024");
}

TEST(BuildServiceSpecTest, LogDriver) {
  const api::ServiceSpec spec =
      Build(Flags().V("log-driver", "json-file").L("log-opt", {"max-size=10m", "max-file=3"}));
  const api::Driver& d = spec.task_template().log_driver();
  EXPECT_EQ(d.name(), "json-file");
  EXPECT_EQ(d.options().at("max-size"), "10m");
  EXPECT_EQ(d.options().at("max-file"), "3");
  EXPECT_EQ(CreateError(Flags().L("log-opt", {"max-size=10m"})),
            "--log-opt: log options need a log driver: add --log-driver NAME");
  EXPECT_EQ(CreateError(Flags().V("log-driver", "x").L("log-opt", {"max-size"})),
            "--log-opt: invalid value \"max-size\": use KEY=VALUE, e.g. max-size=10m");
}

TEST(BuildServiceSpecTest, FlagsOfTheOtherCommandAreRefused) {
  EXPECT_EQ(CreateError(Flags().V("image", "x")),
            "--image is not a flag of `shoal service create`");
  EXPECT_EQ(CreateError(Flags().L("env-add", {"A=1"})),
            "--env-add is not a flag of `shoal service create`");
  EXPECT_EQ(UpdateError(Flags().L("env", {"A=1"}), Build(Flags())),
            "--env is not a flag of `shoal service update`");
}

// Every flag of the table is read by the command that offers it (a valid value of each kind is
// accepted), and no two flags share a name.
TEST(ServiceFlagTableTest, EveryFlagIsHandled) {
  const std::map<std::string, std::string> kSamples = {
      {"name", "web"},
      {"mode", "replicated"},
      {"replicas", "2"},
      {"max-concurrent", "1"},
      {"image", "nginx"},
      {"args", "a b"},
      {"replicas-max-per-node", "1"},
      {"reserve-cpu", "1"},
      {"reserve-memory", "1g"},
      {"limit-cpu", "1"},
      {"limit-memory", "1g"},
      {"limit-pids", "1"},
      {"restart-condition", "any"},
      {"restart-delay", "1s"},
      {"restart-max-attempts", "1"},
      {"restart-window", "1s"},
      {"update-parallelism", "1"},
      {"update-delay", "1s"},
      {"update-failure-action", "pause"},
      {"update-monitor", "1s"},
      {"update-max-failure-ratio", "0.1"},
      {"update-order", "stop-first"},
      {"rollback-parallelism", "1"},
      {"rollback-delay", "1s"},
      {"rollback-failure-action", "pause"},
      {"rollback-monitor", "1s"},
      {"rollback-max-failure-ratio", "0.1"},
      {"rollback-order", "stop-first"},
      {"health-cmd", "true"},
      {"health-interval", "1s"},
      {"health-retries", "1"},
      {"health-timeout", "1s"},
      {"health-start-period", "1s"},
      {"health-start-interval", "1s"},
      {"stop-grace-period", "1s"},
      {"stop-signal", "SIGTERM"},
      {"user", "me"},
      {"workdir", "/"},
      {"entrypoint", "sh"},
      {"hostname", "h"},
      {"log-driver", "json-file"},
      {"endpoint-mode", "vip"},
      // Lists.
      {"env", "A=1"},
      {"env-add", "A=1"},
      {"env-rm", "A"},
      {"label", "a=b"},
      {"label-add", "a=b"},
      {"label-rm", "a"},
      {"container-label", "a=b"},
      {"container-label-add", "a=b"},
      {"container-label-rm", "a"},
      {"constraint", "node.role==worker"},
      {"constraint-add", "node.role==worker"},
      {"constraint-rm", "node.role==worker"},
      {"placement-pref", "spread=node.labels.z"},
      {"placement-pref-add", "spread=node.labels.z"},
      {"placement-pref-rm", "spread=node.labels.z"},
      {"publish", "80"},
      {"publish-add", "80"},
      {"publish-rm", "80"},
      {"network", "n"},
      {"network-add", "n"},
      {"network-rm", "n"},
      {"secret", "s"},
      {"secret-add", "s"},
      {"secret-rm", "s"},
      {"config", "c"},
      {"config-add", "c"},
      {"config-rm", "c"},
      {"mount", "target=/m"},
      {"mount-add", "target=/m"},
      {"mount-rm", "/m"},
      {"group", "g"},
      {"group-add", "g"},
      {"group-rm", "g"},
      {"sysctl", "a=b"},
      {"sysctl-add", "a=b"},
      {"sysctl-rm", "a"},
      {"cap-add", "NET_ADMIN"},
      {"cap-drop", "MKNOD"},
      {"log-opt", "a=b"},
  };
  std::set<std::string> names;
  for (const ServiceFlagInfo& info : ServiceFlagTable()) {
    SCOPED_TRACE(info.name);
    EXPECT_TRUE(names.insert(info.name).second) << "duplicate flag";
    EXPECT_TRUE(info.create || info.update);
    const std::string name = info.name;
    Flags f;
    if (info.kind != FlagKind::kBool) {
      auto it = kSamples.find(name);
      ASSERT_NE(it, kSamples.end()) << "no sample value for --" << name;
      if (info.kind == FlagKind::kValue) {
        f.V(name, it->second);
      } else {
        f.L(name, {it->second});
      }
    } else {
      f.B(name);
    }
    if (name == "log-opt") f.V("log-driver", "json-file");
    // --max-concurrent needs a replicated job.
    const bool job = name == "max-concurrent";
    if (info.create) {
      Flags create = f;
      if (job) create.V("mode", "replicated-job");
      absl::StatusOr<api::ServiceSpec> spec = BuildServiceSpec(create.get());
      EXPECT_TRUE(spec.ok()) << spec.status();
    }
    if (info.update) {
      api::ServiceSpec spec = job ? Build(Flags().V("mode", "replicated-job")) : Build(Flags());
      absl::Status s = UpdateServiceSpec(f.get(), &spec);
      EXPECT_TRUE(s.ok()) << s;
    }
  }
}

// --- update ------------------------------------------------------------------------------------

api::ServiceSpec Existing() {
  return Build(Flags()
                   .V("name", "web")
                   .V("replicas", "2")
                   .L("env", {"A=1", "B=2"})
                   .L("label", {"tier=front"})
                   .L("container-label", {"c=1"})
                   .L("constraint", {"node.role==worker"})
                   .L("placement-pref", {"spread=node.labels.zone"})
                   .L("publish", {"8080:80", "53:53/udp"})
                   .L("secret", {"db_pass", "source=tls,target=key.pem"})
                   .L("config", {"app_conf"})
                   .L("network", {"net-id-1"})
                   .L("mount", {"type=volume,source=data,target=/data"})
                   .L("group", {"audio"})
                   .L("sysctl", {"a=1"})
                   .V("log-driver", "json-file")
                   .L("log-opt", {"max-size=10m"}));
}

TEST(UpdateServiceSpecTest, ImageArgsAndReplicas) {
  const api::ServiceSpec spec =
      Update(Flags().V("image", "nginx:1.26").V("args", "-g 'daemon off;'").V("replicas", "5"),
             Existing());
  EXPECT_EQ(spec.task_template().container_spec().image(), "nginx:1.26");
  EXPECT_EQ(Strings(spec.task_template().container_spec().args()),
            (std::vector<std::string>{"-g", "daemon off;"}));
  EXPECT_EQ(spec.replicated().replicas(), 5u);
  EXPECT_EQ(spec.annotations().name(), "web");
  EXPECT_EQ(UpdateError(Flags().V("image", ""), Existing()),
            "--image: empty image; give an image reference");
  EXPECT_EQ(UpdateError(Flags().V("args", "\"open"), Existing()),
            "--args: unterminated double quote in \"\"open\"");
}

TEST(UpdateServiceSpecTest, ReplicasFollowTheMode) {
  api::ServiceSpec job = Build(Flags().V("mode", "replicated-job").V("replicas", "4"));
  job = Update(Flags().V("replicas", "8").V("max-concurrent", "3"), job);
  EXPECT_EQ(job.replicated_job().total_completions(), 8u);
  EXPECT_EQ(job.replicated_job().max_concurrent(), 3u);
  const api::ServiceSpec global = Build(Flags().V("mode", "global"));
  EXPECT_EQ(UpdateError(Flags().V("replicas", "2"), global),
            "--replicas: can only be used with replicated or replicated-job services (this "
            "service is global)");
  EXPECT_EQ(UpdateError(Flags().V("max-concurrent", "2"), Existing()),
            "--max-concurrent: can only be used with replicated-job services (this service is "
            "replicated)");
  EXPECT_EQ(UpdateError(Flags().V("replicas-max-per-node", "2"), global),
            "--replicas-max-per-node: can only be used with replicated or replicated-job mode "
            "(this service is global)");
  EXPECT_EQ(UpdateError(Flags().V("replicas", "x"), Existing()),
            "--replicas: invalid number \"x\": use a whole number, e.g. 3");
}

TEST(UpdateServiceSpecTest, EnvLabelsAndContainerLabels) {
  const api::ServiceSpec spec = Update(Flags()
                                           .L("env-add", {"B=3", "C=4"})
                                           .L("env-rm", {"A"})
                                           .L("label-add", {"owner=me"})
                                           .L("label-rm", {"tier", "absent"})
                                           .L("container-label-add", {"d=2"})
                                           .L("container-label-rm", {"c"}),
                                       Existing());
  EXPECT_EQ(Strings(spec.task_template().container_spec().env()),
            (std::vector<std::string>{"B=3", "C=4"}));
  EXPECT_EQ(spec.annotations().labels().size(), 1u);
  EXPECT_EQ(spec.annotations().labels().at("owner"), "me");
  EXPECT_EQ(spec.task_template().container_spec().labels().size(), 1u);
  EXPECT_EQ(spec.task_template().container_spec().labels().at("d"), "2");
  EXPECT_EQ(UpdateError(Flags().L("env-add", {"=1"}), Existing()),
            "--env-add: invalid environment variable \"=1\": use KEY=VALUE");
  EXPECT_EQ(UpdateError(Flags().L("label-add", {"=1"}), Existing()),
            "--label-add: invalid value \"=1\": the key is empty; use KEY=VALUE or KEY");
  EXPECT_EQ(UpdateError(Flags().L("container-label-add", {"=1"}), Existing()),
            "--container-label-add: invalid value \"=1\": the key is empty; use KEY=VALUE or KEY");
}

TEST(UpdateServiceSpecTest, Placement) {
  const api::ServiceSpec spec =
      Update(Flags()
                 .L("constraint-add", {"node.labels.ssd==true", "node.role==worker"})
                 .L("constraint-rm", {"node.role==worker"})
                 .L("placement-pref-add", {"spread=node.labels.rack"})
                 .L("placement-pref-rm", {"spread=node.labels.zone"}),
             Existing());
  const api::Placement& p = spec.task_template().placement();
  EXPECT_EQ(Strings(p.constraints()), (std::vector<std::string>{"node.labels.ssd==true"}));
  ASSERT_EQ(p.preferences_size(), 1);
  EXPECT_EQ(p.preferences(0).spread().spread_descriptor(), "node.labels.rack");
  EXPECT_EQ(UpdateError(Flags().L("constraint-add", {""}), Existing()),
            "--constraint-add: empty constraint; use e.g. node.role==manager");
  EXPECT_TRUE(absl::StartsWith(UpdateError(Flags().L("placement-pref-add", {"x"}), Existing()),
                               "--placement-pref-add: invalid placement preference \"x\""));
  EXPECT_TRUE(absl::StartsWith(UpdateError(Flags().L("placement-pref-rm", {"x"}), Existing()),
                               "--placement-pref-rm: invalid placement preference \"x\""));
}

TEST(UpdateServiceSpecTest, PortsAreRemovedByTargetThenAdded) {
  api::ServiceSpec spec = Update(
      Flags().L("publish-rm", {"80"}).L("publish-add", {"9090:80", "53:5353/udp"}), Existing());
  auto ports = spec.endpoint_spec().ports();
  ASSERT_EQ(ports.size(), 2);
  // 53/udp was replaced (same published port and protocol), 80 removed then added anew.
  EXPECT_EQ(ports[0].published_port(), 9090u);
  EXPECT_EQ(ports[0].target_port(), 80u);
  EXPECT_EQ(ports[1].published_port(), 53u);
  EXPECT_EQ(ports[1].target_port(), 5353u);
  EXPECT_EQ(ports[1].protocol(), api::PortConfig::UDP);
  // A removal naming another published port, or the other protocol, leaves the port.
  spec = Update(Flags().L("publish-rm", {"1234:80", "5353/tcp"}), spec);
  EXPECT_EQ(spec.endpoint_spec().ports_size(), 2);
  spec = Update(Flags().L("publish-rm", {"53:5353/udp"}), spec);
  EXPECT_EQ(spec.endpoint_spec().ports_size(), 1);
  EXPECT_TRUE(absl::StartsWith(UpdateError(Flags().L("publish-add", {"x"}), Existing()),
                               "--publish-add: invalid port \"x\""));
  EXPECT_TRUE(absl::StartsWith(UpdateError(Flags().L("publish-rm", {"x"}), Existing()),
                               "--publish-rm: invalid port \"x\""));
}

TEST(UpdateServiceSpecTest, SecretsConfigsNetworksAndMounts) {
  api::ServiceSpec existing = Existing();
  existing.mutable_task_template()->mutable_container_spec()->mutable_secrets(0)->set_secret_id(
      "sec-id-1");
  const api::ServiceSpec spec =
      Update(Flags()
                 .L("secret-rm", {"sec-id-1"})
                 .L("secret-add", {"source=tls,target=key.pem,mode=0400", "api_key"})
                 .L("config-rm", {"app_conf"})
                 .L("config-add", {"source=app_conf_v2,target=/etc/app.conf"})
                 .L("network-rm", {"backend"})
                 .NetworkId("backend", "net-id-1")
                 .L("network-add", {"name=front,alias=web"})
                 .L("mount-add", {"type=volume,source=data2,target=/data", "type=tmpfs,target=/t"})
                 .L("mount-rm", {"/t"})
                 .L("group-add", {"video", "audio"})
                 .L("group-rm", {"audio"})
                 .L("sysctl-add", {"b=2"})
                 .L("sysctl-rm", {"a"}),
             existing);
  const api::ContainerSpec& c = spec.task_template().container_spec();
  ASSERT_EQ(c.secrets_size(), 2);
  EXPECT_EQ(c.secrets(0).secret_name(), "tls");  // replaced: same secret, same target
  EXPECT_EQ(c.secrets(0).file().mode(), 0400u);
  EXPECT_EQ(c.secrets(1).secret_name(), "api_key");
  ASSERT_EQ(c.configs_size(), 1);
  EXPECT_EQ(c.configs(0).config_name(), "app_conf_v2");
  ASSERT_EQ(spec.task_template().networks_size(), 1);
  EXPECT_EQ(spec.task_template().networks(0).target(), "front");
  ASSERT_EQ(c.mounts_size(), 1);
  EXPECT_EQ(c.mounts(0).source(), "data2");
  EXPECT_EQ(Strings(c.groups()), (std::vector<std::string>{"video"}));
  EXPECT_EQ(c.sysctls().size(), 1u);
  EXPECT_EQ(c.sysctls().at("b"), "2");
  EXPECT_TRUE(absl::StartsWith(UpdateError(Flags().L("secret-add", {""}), Existing()),
                               "--secret-add: empty secret name"));
  EXPECT_TRUE(absl::StartsWith(UpdateError(Flags().L("config-add", {"target=x"}), Existing()),
                               "--config-add: missing source"));
  EXPECT_TRUE(absl::StartsWith(UpdateError(Flags().L("network-add", {"alias=x"}), Existing()),
                               "--network-add: missing network name"));
  EXPECT_TRUE(absl::StartsWith(UpdateError(Flags().L("mount-add", {"source=x"}), Existing()),
                               "--mount-add: missing target"));
  EXPECT_TRUE(absl::StartsWith(UpdateError(Flags().L("sysctl-add", {"x"}), Existing()),
                               "--sysctl-add: invalid value \"x\""));
}

TEST(UpdateServiceSpecTest, NetworkRemovedByItsIdWhenNamedAsStored) {
  const api::ServiceSpec spec = Update(Flags().L("network-rm", {"net-id-1"}), Existing());
  EXPECT_EQ(spec.task_template().networks_size(), 0);
}

TEST(UpdateServiceSpecTest, ForceBumpsForceUpdate) {
  api::ServiceSpec spec = Update(Flags().B("force"), Existing());
  EXPECT_EQ(spec.task_template().force_update(), 1u);
  spec = Update(Flags().B("force"), spec);
  EXPECT_EQ(spec.task_template().force_update(), 2u);
  spec = Update(Flags().B("force", false), spec);
  EXPECT_EQ(spec.task_template().force_update(), 2u);
}

TEST(UpdateServiceSpecTest, PoliciesKeepWhatIsSetAndStartFromDefaults) {
  api::ServiceSpec spec = Update(Flags().V("update-delay", "10s"), Existing());
  EXPECT_EQ(spec.update_config().parallelism(), 1u);
  EXPECT_EQ(spec.update_config().monitor().seconds(), 5);
  spec = Update(Flags().V("update-parallelism", "3"), spec);
  EXPECT_EQ(spec.update_config().parallelism(), 3u);
  EXPECT_EQ(spec.update_config().delay().seconds(), 10);  // kept
  spec = Update(Flags().V("restart-delay", "1s"), spec);
  EXPECT_EQ(spec.task_template().restart_policy().condition(), api::RestartPolicy::ANY);
  EXPECT_EQ(Nanos(spec.task_template().restart_policy().delay()), 1000000000);
}

TEST(UpdateServiceSpecTest, HealthcheckOnAndOff) {
  api::ServiceSpec spec = Update(Flags().B("no-healthcheck"), Existing());
  EXPECT_EQ(Strings(spec.task_template().container_spec().healthcheck().test()),
            (std::vector<std::string>{"NONE"}));
  spec = Update(Flags().B("no-healthcheck", false), spec);
  EXPECT_EQ(spec.task_template().container_spec().healthcheck().test_size(), 0);
  spec = Update(Flags().V("health-cmd", "true").V("health-retries", "2"), spec);
  EXPECT_EQ(Strings(spec.task_template().container_spec().healthcheck().test()),
            (std::vector<std::string>{"CMD-SHELL", "true"}));
  spec = Update(Flags().V("health-cmd", ""), spec);  // back to the image's check
  EXPECT_EQ(spec.task_template().container_spec().healthcheck().test_size(), 0);
  EXPECT_EQ(spec.task_template().container_spec().healthcheck().retries(), 2);
}

TEST(UpdateServiceSpecTest, LogOptionsMergeUnlessTheDriverChanges) {
  api::ServiceSpec spec = Update(Flags().L("log-opt", {"max-file=3"}), Existing());
  EXPECT_EQ(spec.task_template().log_driver().options().size(), 2u);
  spec = Update(Flags().V("log-driver", "syslog").L("log-opt", {"tag=x"}), spec);
  EXPECT_EQ(spec.task_template().log_driver().name(), "syslog");
  EXPECT_EQ(spec.task_template().log_driver().options().size(), 1u);
  EXPECT_EQ(spec.task_template().log_driver().options().at("tag"), "x");
}

TEST(UpdateServiceSpecTest, CapabilitiesMoveBetweenAddAndDrop) {
  api::ServiceSpec spec = Update(Flags().L("cap-add", {"net_admin"}), Existing());
  spec = Update(Flags().L("cap-drop", {"NET_ADMIN"}), spec);
  EXPECT_EQ(spec.task_template().container_spec().capability_add_size(), 0);
  EXPECT_EQ(Strings(spec.task_template().container_spec().capability_drop()),
            (std::vector<std::string>{"CAP_NET_ADMIN"}));
}

// --- value parsers -----------------------------------------------------------------------------

TEST(ParsersTest, MemoryBytes) {
  EXPECT_EQ(*ParseMemoryBytes("512"), 512);
  EXPECT_EQ(*ParseMemoryBytes("512b"), 512);
  EXPECT_EQ(*ParseMemoryBytes("1k"), 1024);
  EXPECT_EQ(*ParseMemoryBytes("1K"), 1024);
  EXPECT_EQ(*ParseMemoryBytes("512m"), 512LL << 20);
  EXPECT_EQ(*ParseMemoryBytes("512MiB"), 512LL << 20);
  EXPECT_EQ(*ParseMemoryBytes("512mb"), 512LL << 20);
  EXPECT_EQ(*ParseMemoryBytes("1G"), 1LL << 30);
  EXPECT_EQ(*ParseMemoryBytes("0.5g"), 1LL << 29);
  EXPECT_EQ(*ParseMemoryBytes("2t"), 2LL << 40);
  EXPECT_EQ(*ParseMemoryBytes("1p"), 1LL << 50);
  EXPECT_EQ(*ParseMemoryBytes("1 g"), 1LL << 30);
  for (const char* bad : {"", "g", "1.2.3g", "-1g", "1gb2", "1x", "1e9"}) {
    EXPECT_FALSE(ParseMemoryBytes(bad).ok()) << bad;
  }
}

TEST(ParsersTest, NanoCpus) {
  EXPECT_EQ(*ParseNanoCpus("1"), 1000000000);
  EXPECT_EQ(*ParseNanoCpus("0.5"), 500000000);
  EXPECT_EQ(*ParseNanoCpus(".25"), 250000000);
  EXPECT_EQ(*ParseNanoCpus("1.000000001"), 1000000001);
  EXPECT_EQ(*ParseNanoCpus("0"), 0);
  for (const char* bad : {"", ".", "1.2.3", "abc", "-0.5", "1e3", "1234567890"}) {
    EXPECT_FALSE(ParseNanoCpus(bad).ok()) << bad;
  }
}

TEST(ParsersTest, ShellWords) {
  EXPECT_EQ(*SplitShellWords(""), std::vector<std::string>{});
  EXPECT_EQ(*SplitShellWords("  a  b\tc "), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(*SplitShellWords("sh -c 'echo $HOME; ls'"),
            (std::vector<std::string>{"sh", "-c", "echo $HOME; ls"}));
  EXPECT_EQ(*SplitShellWords(R"(a "b \"c\" \\ d" e\ f '')"),
            (std::vector<std::string>{"a", R"(b "c" \ d)", "e f", ""}));
  EXPECT_EQ(*SplitShellWords(R"("\n")"), (std::vector<std::string>{R"(\n)"}));
  EXPECT_EQ(SplitShellWords("'a").status().message(), "unterminated single quote in \"'a\"");
  EXPECT_EQ(SplitShellWords("\"a").status().message(), "unterminated double quote in \"\"a\"");
  EXPECT_EQ(SplitShellWords("a\\").status().message(), "trailing backslash in \"a\\\"");
}

}  // namespace
}  // namespace shoal::cli
