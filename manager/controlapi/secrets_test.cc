// ControlApi secrets and configs: Create / Get / List / Remove, their validation, name
// uniqueness, refusal to remove what live services use, and — for secrets — that the data never
// appears in any response of any call.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/controlapi/control_api.h"
#include "manager/controlapi/spec_validation.h"
#include "manager/controlapi/test_fixture.h"

namespace shoal::manager {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kSecretData[] = "s3cr3t-Pa55w0rd-that-must-never-leave";

class SecretsTest : public testing::ControlApiFixture {
 protected:
  static api::SecretSpec SecretSpec(const std::string& name, const std::string& data) {
    api::SecretSpec spec;
    spec.mutable_annotations()->set_name(name);
    spec.set_data(data);
    return spec;
  }
  static api::ConfigSpec ConfigSpec(const std::string& name, const std::string& data) {
    api::ConfigSpec spec;
    spec.mutable_annotations()->set_name(name);
    spec.set_data(data);
    return spec;
  }
  grpc::Status CreateSecret(const api::SecretSpec& spec, api::Secret* out = nullptr) {
    api::CreateSecretRequest req;
    *req.mutable_spec() = spec;
    api::CreateSecretResponse resp;
    grpc::Status s = api_->CreateSecret(req, &resp);
    Check(resp);
    if (out != nullptr) *out = resp.secret();
    return s;
  }
  grpc::Status CreateConfig(const api::ConfigSpec& spec, api::Config* out = nullptr) {
    api::CreateConfigRequest req;
    *req.mutable_spec() = spec;
    api::CreateConfigResponse resp;
    grpc::Status s = api_->CreateConfig(req, &resp);
    if (out != nullptr) *out = resp.config();
    return s;
  }
  grpc::Status RemoveSecret(const std::string& id) {
    api::RemoveSecretRequest req;
    req.set_secret_id(id);
    api::RemoveSecretResponse resp;
    return api_->RemoveSecret(req, &resp);
  }
  grpc::Status RemoveConfig(const std::string& id) {
    api::RemoveConfigRequest req;
    req.set_config_id(id);
    api::RemoveConfigResponse resp;
    return api_->RemoveConfig(req, &resp);
  }
  std::vector<std::string> SecretNames(const api::ListSecretsRequest::Filters& f = {}) {
    api::ListSecretsRequest req;
    *req.mutable_filters() = f;
    api::ListSecretsResponse resp;
    grpc::Status s = api_->ListSecrets(req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    Check(resp);
    std::vector<std::string> names;
    for (const api::Secret& x : resp.secrets()) names.push_back(x.spec().annotations().name());
    std::sort(names.begin(), names.end());
    return names;
  }
  std::vector<std::string> ConfigNames(const api::ListConfigsRequest::Filters& f = {}) {
    api::ListConfigsRequest req;
    *req.mutable_filters() = f;
    api::ListConfigsResponse resp;
    grpc::Status s = api_->ListConfigs(req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> names;
    for (const api::Config& x : resp.configs()) names.push_back(x.spec().annotations().name());
    std::sort(names.begin(), names.end());
    return names;
  }
  // No response may carry the secret's data.
  static void Check(const google::protobuf::Message& m) {
    EXPECT_FALSE(absl::StrContains(m.SerializeAsString(), kSecretData)) << m.DebugString();
  }
};

// ---------------------------------------------------------------------------------------------
// Secrets

TEST_F(SecretsTest, CreateStoresTheDataButReturnsNone) {
  api::SecretSpec spec = SecretSpec("db-password", kSecretData);
  (*spec.mutable_annotations()->mutable_labels())["app"] = "db";
  api::Secret created;
  ASSERT_TRUE(CreateSecret(spec, &created).ok());
  EXPECT_FALSE(created.id().empty());
  EXPECT_EQ(created.spec().annotations().name(), "db-password");
  EXPECT_EQ(created.spec().annotations().labels().at("app"), "db");
  EXPECT_TRUE(created.spec().data().empty());
  EXPECT_GT(created.meta().version().index(), 0u);
  EXPECT_FALSE(created.internal());
  EXPECT_EQ(Stored<api::Secret>(created.id()).spec().data(), kSecretData);
}

TEST_F(SecretsTest, CreateValidates) {
  struct Case {
    api::SecretSpec spec;
    std::string message;
  };
  api::SecretSpec labels = SecretSpec("ok", "x");
  (*labels.mutable_annotations()->mutable_labels())[""] = "v";
  const std::vector<Case> cases = {
      {SecretSpec("", "x"), "a secret name is required"},
      {SecretSpec("bad name", "x"), "invalid secret name \"bad name\""},
      {SecretSpec("-dash", "x"), "invalid secret name \"-dash\""},
      {SecretSpec(std::string(65, 'a'), "x"), "invalid secret name"},
      {SecretSpec("empty", ""), "secret \"empty\" has no data"},
      {SecretSpec("big", std::string(kMaxSecretDataBytes + 1, 'x')),
       "secrets are limited to 500 KiB (512000 bytes)"},
      {labels, "secret labels need a non-empty key"},
  };
  for (const Case& c : cases) {
    grpc::Status s = CreateSecret(c.spec);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.message;
    EXPECT_THAT(s.error_message(), HasSubstr(c.message));
  }
  EXPECT_THAT(SecretNames(), ElementsAre());
  // Exactly 500 KiB is allowed.
  EXPECT_TRUE(CreateSecret(SecretSpec("max", std::string(kMaxSecretDataBytes, 'x'))).ok());
}

TEST_F(SecretsTest, NamesAreUnique) {
  api::Secret first;
  ASSERT_TRUE(CreateSecret(SecretSpec("token", kSecretData), &first).ok());
  grpc::Status s = CreateSecret(SecretSpec("TOKEN", "other"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(),
              HasSubstr("a secret named \"token\" already exists (ID " + first.id() + ")"));
  EXPECT_THAT(s.error_message(), HasSubstr("secrets cannot be changed"));
  EXPECT_EQ(Stored<api::Secret>(first.id()).spec().data(), kSecretData);

  // A concurrent create of the same name loses with the winner named.
  proposer_.BeforeNext([&] { AddSecret("racer", "race", "x"); });
  s = CreateSecret(SecretSpec("race", "y"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("(ID racer)"));
}

TEST_F(SecretsTest, GetClearsTheData) {
  AddSecret("sec1", "token", kSecretData);
  api::GetSecretRequest req;
  req.set_secret_id("sec1");
  api::GetSecretResponse resp;
  ASSERT_TRUE(api_->GetSecret(req, &resp).ok());
  Check(resp);
  EXPECT_EQ(resp.secret().id(), "sec1");
  EXPECT_EQ(resp.secret().spec().annotations().name(), "token");
  EXPECT_TRUE(resp.secret().spec().data().empty());

  req.set_secret_id("nope");
  grpc::Status s = api_->GetSecret(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "secret nope not found");
  req.clear_secret_id();
  EXPECT_EQ(api_->GetSecret(req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SecretsTest, ListFiltersAndOmitsInternalSecrets) {
  AddSecret("sec-a", "db-password", kSecretData);
  AddSecret("sec-b", "db-user", kSecretData);
  AddSecret("sec-c", "api-key", kSecretData);
  AddSecret("sec-i", "system-key", kSecretData, /*internal=*/true);
  Modify<api::Secret>("sec-b", [](api::Secret* s) {
    (*s->mutable_spec()->mutable_annotations()->mutable_labels())["env"] = "prod";
  });
  using F = api::ListSecretsRequest::Filters;
  EXPECT_THAT(SecretNames(), ElementsAre("api-key", "db-password", "db-user"));
  F f;
  f.add_name_prefixes("DB-");
  EXPECT_THAT(SecretNames(f), ElementsAre("db-password", "db-user"));
  f = F();
  f.add_names("API-KEY");
  EXPECT_THAT(SecretNames(f), ElementsAre("api-key"));
  f = F();
  f.add_id_prefixes("sec-a");
  f.add_id_prefixes("sec-c");
  EXPECT_THAT(SecretNames(f), ElementsAre("api-key", "db-password"));
  f = F();
  (*f.mutable_labels())["env"] = "prod";
  EXPECT_THAT(SecretNames(f), ElementsAre("db-user"));
  f = F();
  f.add_names("system-key");
  EXPECT_THAT(SecretNames(f), ElementsAre());
}

TEST_F(SecretsTest, RemoveIsRefusedWhileLiveServicesUseTheSecret) {
  AddSecret("sec1", "token", kSecretData);
  AddSecret("sec2", "unused", kSecretData);
  AddSecret("sys", "system-key", kSecretData, /*internal=*/true);
  api::ServiceSpec spec = Spec("web");
  spec.mutable_task_template()->mutable_container_spec()->add_secrets()->set_secret_name("token");
  const api::Service web = CreateService(spec);
  spec.mutable_annotations()->set_name("api");
  const api::Service api_svc = CreateService(spec);

  grpc::Status s = RemoveSecret("sec1");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(),
              HasSubstr("secret \"token\" (sec1) is in use by the following services: \"api\", "
                        "\"web\"; remove it from them first (shoal service update --secret-rm "
                        "token SERVICE)"));

  // Services being removed do not count.
  api::RemoveServiceRequest rm;
  api::RemoveServiceResponse rm_resp;
  rm.set_service_id(web.id());
  ASSERT_TRUE(api_->RemoveService(rm, &rm_resp).ok());
  s = RemoveSecret("sec1");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("in use by the following service: \"api\";"));
  rm.set_service_id(api_svc.id());
  ASSERT_TRUE(api_->RemoveService(rm, &rm_resp).ok());
  EXPECT_TRUE(RemoveSecret("sec1").ok());
  EXPECT_FALSE(Exists<api::Secret>("sec1"));

  EXPECT_TRUE(RemoveSecret("sec2").ok());
  s = RemoveSecret("sec2");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "secret sec2 not found");
  s = RemoveSecret("sys");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("managed by the swarm itself"));
  EXPECT_TRUE(Exists<api::Secret>("sys"));
  EXPECT_EQ(RemoveSecret("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SecretsTest, SecretDataNeverAppearsInAnyResponse) {
  api::Secret secret;
  ASSERT_TRUE(CreateSecret(SecretSpec("token", kSecretData), &secret).ok());
  api::ServiceSpec spec = Spec("web");
  spec.mutable_task_template()->mutable_container_spec()->add_secrets()->set_secret_name("token");

  api::CreateServiceRequest create;
  *create.mutable_spec() = spec;
  api::CreateServiceResponse created;
  ASSERT_TRUE(api_->CreateService(create, &created).ok());
  Check(created);

  api::GetSecretRequest get;
  get.set_secret_id(secret.id());
  api::GetSecretResponse got;
  ASSERT_TRUE(api_->GetSecret(get, &got).ok());
  Check(got);
  SecretNames();  // checks the list

  api::GetServiceRequest get_svc;
  get_svc.set_service_id(created.service().id());
  api::GetServiceResponse got_svc;
  ASSERT_TRUE(api_->GetService(get_svc, &got_svc).ok());
  Check(got_svc);

  api::UpdateServiceRequest update;
  update.set_service_id(created.service().id());
  *update.mutable_version() = got_svc.service().meta().version();
  *update.mutable_spec() = got_svc.service().spec();
  update.mutable_spec()->mutable_replicated()->set_replicas(3);
  api::UpdateServiceResponse updated;
  ASSERT_TRUE(api_->UpdateService(update, &updated).ok());
  Check(updated);

  api::ListServicesRequest list_req;
  list_req.set_include_status(true);
  api::ListServicesResponse list;
  ASSERT_TRUE(api_->ListServices(list_req, &list).ok());
  Check(list);

  // Errors do not carry it either.
  grpc::Status dup = CreateSecret(SecretSpec("token", kSecretData));
  EXPECT_FALSE(absl::StrContains(dup.error_message(), kSecretData));
  grpc::Status in_use = RemoveSecret(secret.id());
  EXPECT_FALSE(absl::StrContains(in_use.error_message(), kSecretData));
}

// ---------------------------------------------------------------------------------------------
// Configs

TEST_F(SecretsTest, ConfigsReturnTheirData) {
  api::Config created;
  ASSERT_TRUE(CreateConfig(ConfigSpec("app.conf", "listen=80\n"), &created).ok());
  EXPECT_EQ(created.spec().data(), "listen=80\n");
  api::GetConfigRequest get;
  get.set_config_id(created.id());
  api::GetConfigResponse got;
  ASSERT_TRUE(api_->GetConfig(get, &got).ok());
  EXPECT_EQ(got.config().spec().data(), "listen=80\n");
  api::ListConfigsResponse list;
  ASSERT_TRUE(api_->ListConfigs({}, &list).ok());
  ASSERT_EQ(list.configs_size(), 1);
  EXPECT_EQ(list.configs(0).spec().data(), "listen=80\n");

  get.set_config_id("nope");
  grpc::Status s = api_->GetConfig(get, &got);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "config nope not found");
  get.clear_config_id();
  EXPECT_EQ(api_->GetConfig(get, &got).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SecretsTest, ConfigCreateValidatesAndNamesAreUnique) {
  EXPECT_TRUE(CreateConfig(ConfigSpec("big", std::string(kMaxConfigDataBytes, 'x'))).ok());
  grpc::Status s = CreateConfig(ConfigSpec("bigger", std::string(kMaxConfigDataBytes + 1, 'x')));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("configs are limited to 1000 KiB"));
  s = CreateConfig(ConfigSpec("", "x"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("a config name is required"));
  s = CreateConfig(ConfigSpec("no data", ""));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = CreateConfig(ConfigSpec("BIG", "x"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("a config named \"big\" already exists"));
  EXPECT_THAT(ConfigNames(), ElementsAre("big"));
}

TEST_F(SecretsTest, ListConfigsFilters) {
  AddConfig("c1", "nginx.conf", "a");
  AddConfig("c2", "nginx-site", "b");
  AddConfig("c3", "redis.conf", "c");
  Modify<api::Config>("c3", [](api::Config* c) {
    (*c->mutable_spec()->mutable_annotations()->mutable_labels())["app"] = "cache";
  });
  using F = api::ListConfigsRequest::Filters;
  EXPECT_THAT(ConfigNames(), ElementsAre("nginx-site", "nginx.conf", "redis.conf"));
  F f;
  f.add_name_prefixes("nginx");
  EXPECT_THAT(ConfigNames(f), ElementsAre("nginx-site", "nginx.conf"));
  f = F();
  f.add_names("Redis.Conf");
  EXPECT_THAT(ConfigNames(f), ElementsAre("redis.conf"));
  f = F();
  f.add_id_prefixes("c2");
  EXPECT_THAT(ConfigNames(f), ElementsAre("nginx-site"));
  f = F();
  (*f.mutable_labels())["app"] = "";
  EXPECT_THAT(ConfigNames(f), ElementsAre("redis.conf"));
}

TEST_F(SecretsTest, RemoveConfigIsRefusedWhileLiveServicesUseIt) {
  AddConfig("cfg1", "app.conf", "x");
  api::ServiceSpec spec = Spec("web");
  spec.mutable_task_template()->mutable_container_spec()->add_configs()->set_config_name(
      "app.conf");
  const api::Service web = CreateService(spec);
  grpc::Status s = RemoveConfig("cfg1");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(),
              HasSubstr("config \"app.conf\" (cfg1) is in use by the following service: \"web\"; "
                        "remove it from them first (shoal service update --config-rm app.conf "
                        "SERVICE)"));
  // Once the service no longer uses it, it can go.
  api::GetServiceRequest get;
  get.set_service_id(web.id());
  api::GetServiceResponse got;
  ASSERT_TRUE(api_->GetService(get, &got).ok());
  api::UpdateServiceRequest update;
  update.set_service_id(web.id());
  *update.mutable_version() = got.service().meta().version();
  *update.mutable_spec() = got.service().spec();
  update.mutable_spec()->mutable_task_template()->mutable_container_spec()->clear_configs();
  api::UpdateServiceResponse updated;
  ASSERT_TRUE(api_->UpdateService(update, &updated).ok());
  EXPECT_TRUE(RemoveConfig("cfg1").ok());
  EXPECT_FALSE(Exists<api::Config>("cfg1"));
  EXPECT_EQ(RemoveConfig("cfg1").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(RemoveConfig("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SecretsTest, EveryCallWaitsForTheBarrier) {
  AddSecret("sec1", "token", kSecretData);
  AddConfig("cfg1", "app.conf", "x");
  raft_.FailReadsWith(absl::UnavailableError("no leader"));
  EXPECT_EQ(CreateSecret(SecretSpec("new", "x")).error_code(), grpc::StatusCode::UNAVAILABLE);
  api::GetSecretRequest gs;
  gs.set_secret_id("sec1");
  api::GetSecretResponse gs_resp;
  EXPECT_EQ(api_->GetSecret(gs, &gs_resp).error_code(), grpc::StatusCode::UNAVAILABLE);
  api::ListSecretsResponse ls;
  EXPECT_EQ(api_->ListSecrets({}, &ls).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(RemoveSecret("sec1").error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(CreateConfig(ConfigSpec("new", "x")).error_code(), grpc::StatusCode::UNAVAILABLE);
  api::GetConfigRequest gc;
  gc.set_config_id("cfg1");
  api::GetConfigResponse gc_resp;
  EXPECT_EQ(api_->GetConfig(gc, &gc_resp).error_code(), grpc::StatusCode::UNAVAILABLE);
  api::ListConfigsResponse lc;
  EXPECT_EQ(api_->ListConfigs({}, &lc).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(RemoveConfig("cfg1").error_code(), grpc::StatusCode::UNAVAILABLE);
  raft_.FailReadsWith(absl::OkStatus());
  EXPECT_TRUE(Exists<api::Secret>("sec1"));
  EXPECT_TRUE(Exists<api::Config>("cfg1"));
  EXPECT_THAT(SecretNames(), ElementsAre("token"));
}

}  // namespace
}  // namespace shoal::manager
