// ControlApi services: CreateService / GetService / UpdateService / RemoveService / ListServices
// on a MemoryStore fed by a DirectProposer and a FakeRaftControl — spec validation through the
// API, name uniqueness, reference resolution (secrets, configs, networks), port conflicts,
// versions and rollback, jobs, pending deletion, filters and statuses, and redaction.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/controlapi/control_api.h"
#include "manager/controlapi/test_fixture.h"

namespace shoal::manager {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class ServicesTest : public testing::ControlApiFixture {
 protected:
  api::Service Get(const std::string& id) {
    api::GetServiceRequest req;
    req.set_service_id(id);
    api::GetServiceResponse resp;
    grpc::Status s = api_->GetService(req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.service();
  }
  grpc::Status TryGet(const std::string& id) {
    api::GetServiceRequest req;
    req.set_service_id(id);
    api::GetServiceResponse resp;
    return api_->GetService(req, &resp);
  }
  // An update of the service as stored, with `fn` applied to its spec.
  api::UpdateServiceRequest UpdateOf(const std::string& id,
                                     const std::function<void(api::ServiceSpec*)>& fn = nullptr) {
    const api::Service s = Get(id);
    api::UpdateServiceRequest req;
    req.set_service_id(id);
    *req.mutable_version() = s.meta().version();
    *req.mutable_spec() = s.spec();
    if (fn) fn(req.mutable_spec());
    return req;
  }
  grpc::Status Update(const api::UpdateServiceRequest& req, api::Service* out = nullptr) {
    api::UpdateServiceResponse resp;
    grpc::Status s = api_->UpdateService(req, &resp);
    if (out != nullptr) *out = resp.service();
    return s;
  }
  api::UpdateServiceRequest RollbackOf(const std::string& id) {
    const api::Service s = Get(id);
    api::UpdateServiceRequest req;
    req.set_service_id(id);
    *req.mutable_version() = s.meta().version();
    req.set_rollback(true);
    return req;
  }
  grpc::Status Remove(const std::string& id) {
    api::RemoveServiceRequest req;
    req.set_service_id(id);
    api::RemoveServiceResponse resp;
    return api_->RemoveService(req, &resp);
  }
  std::vector<std::string> ListNames(const api::ListServicesRequest::Filters& f = {}) {
    api::ListServicesRequest req;
    *req.mutable_filters() = f;
    api::ListServicesResponse resp;
    grpc::Status s = api_->ListServices(req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> names;
    for (const api::Service& svc : resp.services())
      names.push_back(svc.spec().annotations().name());
    std::sort(names.begin(), names.end());
    return names;
  }
  void AddTask(const std::string& id, const std::string& service_id, const std::string& node,
               api::TaskState state, api::TaskState desired = api::TASK_STATE_RUNNING,
               int64_t job_iteration = -1) {
    api::Task t;
    t.set_id(id);
    t.set_service_id(service_id);
    t.set_node_id(node);
    t.mutable_status()->set_state(state);
    t.set_desired_state(desired);
    if (job_iteration >= 0) t.mutable_job_iteration()->set_index(job_iteration);
    Create(std::move(t));
  }
  static api::ServiceSpec WithPort(api::ServiceSpec spec, uint32_t published,
                                   api::PortConfig::PublishMode mode = api::PortConfig::INGRESS,
                                   api::PortConfig::Protocol proto = api::PortConfig::TCP) {
    api::PortConfig* p = spec.mutable_endpoint_spec()->add_ports();
    p->set_target_port(80);
    p->set_published_port(published);
    p->set_publish_mode(mode);
    p->set_protocol(proto);
    return spec;
  }
};

// ---------------------------------------------------------------------------------------------
// CreateService

TEST_F(ServicesTest, CreateStoresTheSpecWithAVersion) {
  AddNode("n1", api::NodeStatus::READY);  // the store is not empty: its version is > 0
  const uint64_t store_version = store_.version();
  api::ServiceSpec spec = Spec("web", 3);
  (*spec.mutable_annotations()->mutable_labels())["tier"] = "front";
  const api::Service created = CreateService(spec);
  ASSERT_FALSE(created.id().empty());
  EXPECT_EQ(created.spec().annotations().name(), "web");
  EXPECT_EQ(created.spec().replicated().replicas(), 3u);
  EXPECT_GT(created.meta().version().index(), 0u);
  EXPECT_TRUE(created.has_spec_version());
  EXPECT_EQ(created.spec_version().index(), store_version);
  EXPECT_FALSE(created.has_previous_spec());
  EXPECT_FALSE(created.has_job_status());
  EXPECT_FALSE(created.pending_delete());

  const api::Service stored = Stored<api::Service>(created.id());
  EXPECT_EQ(stored.SerializeAsString(), created.SerializeAsString());
}

TEST_F(ServicesTest, CreateRunsTheSpecValidation) {
  api::ServiceSpec spec = Spec("web");
  spec.mutable_task_template()->mutable_placement()->add_constraints("node.labels.zone=east");
  grpc::Status s = TryCreateService(spec);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("invalid constraint \"node.labels.zone=east\""));
  spec = Spec("bad.name");
  s = TryCreateService(spec);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("invalid service name \"bad.name\""));
  EXPECT_THAT(ListNames(), ElementsAre());
}

TEST_F(ServicesTest, CreateJobStartsItsIteration) {
  clock_.Advance(absl::Seconds(42));
  api::ServiceSpec spec = Spec("batch");
  spec.mutable_replicated_job()->set_total_completions(4);
  const api::Service job = CreateService(spec);
  ASSERT_TRUE(job.has_job_status());
  EXPECT_TRUE(job.job_status().has_job_iteration());
  EXPECT_EQ(job.job_status().job_iteration().index(), 0u);
  EXPECT_EQ(job.job_status().last_execution().seconds(), absl::ToUnixSeconds(clock_.Now()));

  api::ServiceSpec global = Spec("once-everywhere");
  global.mutable_global_job();
  EXPECT_TRUE(CreateService(global).has_job_status());
}

TEST_F(ServicesTest, CreateRefusesATakenName) {
  const api::Service web = CreateService(Spec("web"));
  for (const char* name : {"web", "WEB"}) {
    grpc::Status s = TryCreateService(Spec(name));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << name;
    EXPECT_THAT(s.error_message(),
                HasSubstr("a service named \"web\" already exists (ID " + web.id() + ")"));
  }
}

TEST_F(ServicesTest, ANameStaysTakenWhileItsServiceIsBeingRemoved) {
  const api::Service web = CreateService(Spec("web"));
  ASSERT_TRUE(Remove(web.id()).ok());
  grpc::Status s = TryCreateService(Spec("web"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(),
              HasSubstr("still held by service " + web.id() + ", which is being removed"));
  // Once the orchestrators deleted it, the name is free.
  ASSERT_TRUE(
      store_.Update([&](store::WriteTx& tx) { return tx.Delete<api::Service>(web.id()); }).ok());
  EXPECT_TRUE(TryCreateService(Spec("web")).ok());
}

TEST_F(ServicesTest, ConcurrentCreateOfTheSameNameNamesTheWinner) {
  proposer_.BeforeNext([&] {
    api::Service other;
    other.set_id("other1");
    *other.mutable_spec() = Spec("web");
    ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Create(other); }).ok());
  });
  grpc::Status s = TryCreateService(Spec("web"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("a service named \"web\" already exists (ID other1)"));
}

TEST_F(ServicesTest, CreateResolvesSecretsConfigsAndNetworksToIds) {
  AddSecret("sec1", "db-password", "hunter2");
  AddConfig("cfg1", "app.conf", "x=1");
  AddNetwork("net1", "backend");
  AddNetwork("net2", "frontend");
  api::ServiceSpec spec = Spec("api");
  api::ContainerSpec* c = spec.mutable_task_template()->mutable_container_spec();
  c->add_secrets()->set_secret_name("DB-Password");  // names ignore case
  api::SecretReference* by_id = c->add_secrets();    // the same secret under another file
  by_id->set_secret_id("sec1");
  by_id->mutable_file()->set_name("pw");
  c->add_configs()->set_config_name("app.conf");
  spec.mutable_task_template()->add_networks()->set_target("backend");
  spec.mutable_task_template()->add_networks()->set_target("net2");  // by ID
  const api::Service svc = CreateService(spec);

  const api::ContainerSpec& got = svc.spec().task_template().container_spec();
  ASSERT_EQ(got.secrets_size(), 2);
  EXPECT_EQ(got.secrets(0).secret_id(), "sec1");
  EXPECT_EQ(got.secrets(0).secret_name(), "db-password");
  EXPECT_EQ(got.secrets(0).file().name(), "db-password");  // default target: the name
  EXPECT_EQ(got.secrets(1).secret_id(), "sec1");
  EXPECT_EQ(got.secrets(1).secret_name(), "db-password");
  EXPECT_EQ(got.secrets(1).file().name(), "pw");
  ASSERT_EQ(got.configs_size(), 1);
  EXPECT_EQ(got.configs(0).config_id(), "cfg1");
  EXPECT_EQ(got.configs(0).file().name(), "/app.conf");
  ASSERT_EQ(svc.spec().task_template().networks_size(), 2);
  EXPECT_EQ(svc.spec().task_template().networks(0).target(), "net1");
  EXPECT_EQ(svc.spec().task_template().networks(1).target(), "net2");
  // Stored as returned.
  EXPECT_EQ(Stored<api::Service>(svc.id()).spec().task_template().networks(0).target(), "net1");
}

TEST_F(ServicesTest, CreateRefusesMissingOrUnusableReferences) {
  AddSecret("sec1", "s1", "data");
  AddConfig("cfg1", "c1", "data");
  AddNetwork("ing", "ingress", /*ingress=*/true);
  AddNetwork("gone", "old-net");
  Modify<api::Network>("gone", [](api::Network* n) { n->set_pending_delete(true); });
  AddNetwork("net1", "backend");

  struct Case {
    std::function<void(api::ServiceSpec*)> mutate;
    grpc::StatusCode code;
    std::string message;
  };
  auto c = [](api::ServiceSpec* s) { return s->mutable_task_template()->mutable_container_spec(); };
  const std::vector<Case> cases = {
      {[&](auto* s) { c(s)->add_secrets()->set_secret_name("nope"); }, grpc::StatusCode::NOT_FOUND,
       "secret \"nope\" not found; create it first with `shoal secret create nope FILE`"},
      {[&](auto* s) { c(s)->add_secrets()->set_secret_id("missing-id"); },
       grpc::StatusCode::NOT_FOUND, "secret \"missing-id\" not found"},
      {[&](auto* s) { c(s)->add_configs()->set_config_name("nope"); }, grpc::StatusCode::NOT_FOUND,
       "config \"nope\" not found; create it first with `shoal config create nope FILE`"},
      {[&](auto* s) { s->mutable_task_template()->add_networks()->set_target("nope"); },
       grpc::StatusCode::NOT_FOUND,
       "network \"nope\" not found; create it with `shoal network create -d overlay nope`"},
      {[&](auto* s) { s->mutable_task_template()->add_networks()->set_target("old-net"); },
       grpc::StatusCode::NOT_FOUND, "network \"old-net\" (gone) is being removed"},
      {[&](auto* s) { s->mutable_task_template()->add_networks()->set_target("ingress"); },
       grpc::StatusCode::INVALID_ARGUMENT,
       "a service cannot be attached to the ingress network \"ingress\" explicitly"},
      {[&](auto* s) {
         s->mutable_task_template()->add_networks()->set_target("backend");
         s->mutable_task_template()->add_networks()->set_target("net1");
       },
       grpc::StatusCode::INVALID_ARGUMENT, "network \"backend\" is attached more than once"},
      {[&](auto* s) {
         c(s)->add_secrets()->set_secret_name("s1");
         c(s)->add_secrets()->set_secret_id("sec1");  // same default target
       },
       grpc::StatusCode::INVALID_ARGUMENT, "secret target \"s1\" is used by more than one secret"},
      {[&](auto* s) {
         c(s)->add_configs()->set_config_name("c1");
         api::ConfigReference* r = c(s)->add_configs();
         r->set_config_id("cfg1");
         r->mutable_file()->set_name("c1");  // relative to /: the same file
       },
       grpc::StatusCode::INVALID_ARGUMENT, "config target \"/c1\" is used by more than one"},
  };
  for (const Case& tc : cases) {
    api::ServiceSpec spec = Spec("svc");
    tc.mutate(&spec);
    grpc::Status s = TryCreateService(spec);
    EXPECT_EQ(s.error_code(), tc.code) << tc.message;
    EXPECT_THAT(s.error_message(), HasSubstr(tc.message));
  }
  EXPECT_THAT(ListNames(), ElementsAre());
}

TEST_F(ServicesTest, IngressPortsAreUniqueAcrossServices) {
  const api::Service web = CreateService(WithPort(Spec("web"), 8080));
  grpc::Status s = TryCreateService(WithPort(Spec("web2"), 8080));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(),
              HasSubstr("port 8080/tcp is already published by service \"web\" (" + web.id() +
                        ") on every node (ingress); publish another port"));
  // A host-mode port cannot take a number the routing mesh holds either...
  s = TryCreateService(WithPort(Spec("web3"), 8080, api::PortConfig::HOST));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // ...but another protocol can, and host-mode ports may repeat across services.
  EXPECT_TRUE(
      TryCreateService(WithPort(Spec("dns"), 8080, api::PortConfig::INGRESS, api::PortConfig::UDP))
          .ok());
  EXPECT_TRUE(TryCreateService(WithPort(Spec("h1"), 9000, api::PortConfig::HOST)).ok());
  EXPECT_TRUE(TryCreateService(WithPort(Spec("h2"), 9000, api::PortConfig::HOST)).ok());
  s = TryCreateService(WithPort(Spec("mesh"), 9000));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("in host mode"));

  // Ports the allocator picked (endpoint.ports) count too.
  const api::Service dyn = CreateService(WithPort(Spec("dyn"), 0));
  Modify<api::Service>(dyn.id(), [](api::Service* svc) {
    api::PortConfig* p = svc->mutable_endpoint()->add_ports();
    p->set_target_port(80);
    p->set_published_port(30001);
  });
  s = TryCreateService(WithPort(Spec("late"), 30001));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("service \"dyn\""));

  // A service being removed no longer holds its ports (the allocator frees them).
  ASSERT_TRUE(Remove(web.id()).ok());
  EXPECT_TRUE(TryCreateService(WithPort(Spec("web4"), 8080)).ok());
}

TEST_F(ServicesTest, RegistryCredentialsAreNeverReturnedAndSurviveUpdates) {
  api::ServiceSpec spec = Spec("private");
  spec.mutable_task_template()->mutable_container_spec()->mutable_pull_options()->set_registry_auth(
      "c2VjcmV0LWNyZWRlbnRpYWxz");
  const api::Service created = CreateService(spec);
  EXPECT_FALSE(absl::StrContains(created.SerializeAsString(), "c2VjcmV0LWNyZWRlbnRpYWxz"));
  EXPECT_EQ(Stored<api::Service>(created.id())
                .spec()
                .task_template()
                .container_spec()
                .pull_options()
                .registry_auth(),
            "c2VjcmV0LWNyZWRlbnRpYWxz");

  // An update echoing the redacted spec keeps the stored credentials.
  api::Service updated;
  ASSERT_TRUE(
      Update(UpdateOf(created.id(), [](auto* s) { s->mutable_replicated()->set_replicas(2); }),
             &updated)
          .ok());
  const std::string kAuth = "c2VjcmV0LWNyZWRlbnRpYWxz";
  EXPECT_FALSE(absl::StrContains(updated.SerializeAsString(), kAuth));
  api::Service stored = Stored<api::Service>(created.id());
  EXPECT_EQ(stored.spec().task_template().container_spec().pull_options().registry_auth(), kAuth);
  // previous_spec holds them too, and is redacted the same way.
  EXPECT_EQ(stored.previous_spec().task_template().container_spec().pull_options().registry_auth(),
            kAuth);

  // New credentials replace them.
  ASSERT_TRUE(Update(UpdateOf(created.id(), [](auto* s) {
                s->mutable_task_template()
                    ->mutable_container_spec()
                    ->mutable_pull_options()
                    ->set_registry_auth("bmV3");
              })).ok());
  EXPECT_EQ(Stored<api::Service>(created.id())
                .spec()
                .task_template()
                .container_spec()
                .pull_options()
                .registry_auth(),
            "bmV3");

  // Nor do Get, List, or tasks.
  EXPECT_FALSE(absl::StrContains(Get(created.id()).SerializeAsString(), "bmV3"));
  api::ListServicesResponse list;
  ASSERT_TRUE(api_->ListServices({}, &list).ok());
  EXPECT_FALSE(absl::StrContains(list.SerializeAsString(), "bmV3"));
  EXPECT_FALSE(absl::StrContains(list.SerializeAsString(), kAuth));
  api::Task t;
  t.set_id("task1");
  t.set_service_id(created.id());
  *t.mutable_spec() = stored.spec().task_template();
  Create(t);
  api::ListTasksResponse tasks;
  ASSERT_TRUE(api_->ListTasks({}, &tasks).ok());
  ASSERT_EQ(tasks.tasks_size(), 1);
  EXPECT_FALSE(absl::StrContains(tasks.SerializeAsString(), kAuth));
  api::GetTaskRequest get_task;
  get_task.set_task_id("task1");
  api::GetTaskResponse task;
  ASSERT_TRUE(api_->GetTask(get_task, &task).ok());
  EXPECT_FALSE(absl::StrContains(task.SerializeAsString(), kAuth));
}

// ---------------------------------------------------------------------------------------------
// GetService, RemoveService

TEST_F(ServicesTest, GetService) {
  const api::Service web = CreateService(Spec("web"));
  EXPECT_EQ(Get(web.id()).SerializeAsString(), web.SerializeAsString());
  grpc::Status s = TryGet("nope");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "service nope not found");
  s = TryGet("");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "a service ID is required");
}

TEST_F(ServicesTest, RemoveMarksPendingDeleteAndHidesTheService) {
  const api::Service web = CreateService(Spec("web"));
  const api::Service api = CreateService(Spec("api"));
  AddTask("t1", web.id(), "n1", api::TASK_STATE_RUNNING);
  ASSERT_TRUE(Remove(web.id()).ok());

  const api::Service stored = Stored<api::Service>(web.id());
  EXPECT_TRUE(stored.pending_delete());
  EXPECT_EQ(stored.spec().SerializeAsString(), web.spec().SerializeAsString());
  // The tasks are the orchestrators' to shut down.
  EXPECT_EQ(Stored<api::Task>("t1").desired_state(), api::TASK_STATE_RUNNING);

  EXPECT_EQ(TryGet(web.id()).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(ListNames(), ElementsAre("api"));
  grpc::Status s = Remove(web.id());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "service " + web.id() + " not found");
  s = Update(UpdateOf(api.id()));  // unrelated: still fine
  EXPECT_TRUE(s.ok()) << s.error_message();
  api::UpdateServiceRequest req;
  req.set_service_id(web.id());
  *req.mutable_version() = stored.meta().version();
  *req.mutable_spec() = stored.spec();
  EXPECT_EQ(Update(req).error_code(), grpc::StatusCode::NOT_FOUND);

  EXPECT_EQ(Remove("nope").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Remove("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// ---------------------------------------------------------------------------------------------
// UpdateService

TEST_F(ServicesTest, UpdateKeepsThePreviousSpecAndMovesTheSpecVersion) {
  const api::Service v1 = CreateService(Spec("web", 1));
  api::Service v2;
  ASSERT_TRUE(
      Update(UpdateOf(v1.id(), [](auto* s) { s->mutable_replicated()->set_replicas(5); }), &v2)
          .ok());
  EXPECT_EQ(v2.spec().replicated().replicas(), 5u);
  EXPECT_GT(v2.meta().version().index(), v1.meta().version().index());
  EXPECT_GT(v2.spec_version().index(), v1.spec_version().index());
  EXPECT_EQ(v2.previous_spec().SerializeAsString(), v1.spec().SerializeAsString());
  EXPECT_EQ(v2.previous_spec_version().index(), v1.spec_version().index());
  EXPECT_EQ(Stored<api::Service>(v1.id()).SerializeAsString(), v2.SerializeAsString());

  // An empty name in the request keeps the service's.
  api::Service v3;
  ASSERT_TRUE(Update(UpdateOf(v1.id(),
                              [](auto* s) {
                                s->mutable_annotations()->clear_name();
                                (*s->mutable_annotations()->mutable_labels())["x"] = "y";
                              }),
                     &v3)
                  .ok());
  EXPECT_EQ(v3.spec().annotations().name(), "web");
  EXPECT_EQ(v3.spec().annotations().labels().at("x"), "y");
  EXPECT_EQ(v3.previous_spec().replicated().replicas(), 5u);
  EXPECT_GT(v3.spec_version().index(), v2.spec_version().index());
}

TEST_F(ServicesTest, ForceUpdatePassesThroughAndIsAChange) {
  const api::Service v1 = CreateService(Spec("web"));
  api::Service v2;
  ASSERT_TRUE(Update(UpdateOf(v1.id(),
                              [](auto* s) {
                                s->mutable_task_template()->set_force_update(
                                    s->task_template().force_update() + 1);
                              }),
                     &v2)
                  .ok());
  EXPECT_EQ(v2.spec().task_template().force_update(), 1u);
  EXPECT_NE(v2.spec_version().index(), v1.spec_version().index());
}

TEST_F(ServicesTest, AnUpdateThatChangesNothingWritesNothing) {
  const api::Service v1 = CreateService(Spec("web"));
  ASSERT_TRUE(
      Update(UpdateOf(v1.id(), [](auto* s) { s->mutable_replicated()->set_replicas(2); })).ok());
  const api::Service v2 = Get(v1.id());
  const uint64_t store_version = store_.version();
  api::Service same;
  ASSERT_TRUE(Update(UpdateOf(v1.id()), &same).ok());
  EXPECT_EQ(store_.version(), store_version);
  EXPECT_EQ(same.SerializeAsString(), v2.SerializeAsString());
  // Still checked against the version read.
  api::UpdateServiceRequest stale = UpdateOf(v1.id());
  stale.mutable_version()->set_index(v1.meta().version().index());
  EXPECT_EQ(Update(stale).error_code(), grpc::StatusCode::ABORTED);
}

TEST_F(ServicesTest, UpdateWithAStaleVersionIsAborted) {
  const api::Service v1 = CreateService(Spec("web"));
  api::UpdateServiceRequest req =
      UpdateOf(v1.id(), [](auto* s) { s->mutable_replicated()->set_replicas(2); });
  ASSERT_TRUE(Update(req).ok());
  req.mutable_spec()->mutable_replicated()->set_replicas(7);
  grpc::Status s = Update(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("service \"web\" (" + v1.id() +
                        ") was changed since you read it; re-read and retry (read at version " +
                        std::to_string(v1.meta().version().index())));
  EXPECT_EQ(Stored<api::Service>(v1.id()).spec().replicated().replicas(), 2u);
}

TEST_F(ServicesTest, ConcurrentUpdateLosesWithAborted) {
  const api::Service v1 = CreateService(Spec("web"));
  api::UpdateServiceRequest req =
      UpdateOf(v1.id(), [](auto* s) { s->mutable_replicated()->set_replicas(3); });
  // Another writer (the allocator, say) changes the service between our transaction and its
  // commit: applying our entry must refuse it.
  proposer_.BeforeNext([&] {
    Modify<api::Service>(v1.id(), [](api::Service* s) {
      s->mutable_endpoint()->mutable_spec()->set_mode(api::EndpointSpec::VIP);
    });
  });
  grpc::Status s = Update(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(s.error_message(), HasSubstr("was changed since you read it; re-read and retry"));
  EXPECT_EQ(Stored<api::Service>(v1.id()).spec().replicated().replicas(), 1u);
}

TEST_F(ServicesTest, UpdateRefusals) {
  const api::Service web = CreateService(Spec("web"));
  CreateService(Spec("other"));

  grpc::Status s =
      Update(UpdateOf(web.id(), [](auto* s) { s->mutable_annotations()->set_name("web2"); }));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("services cannot be renamed"));

  s = Update(UpdateOf(web.id(), [](auto* s) { s->mutable_global(); }));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("cannot change from replicated to global; remove the service and create "
                        "it again"));

  s = Update(
      UpdateOf(web.id(), [](auto* s) { s->mutable_update_config()->set_max_failure_ratio(2); }));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("--update-max-failure-ratio must be between 0 and 1"));

  s = Update(UpdateOf(web.id(), [](auto* s) {
    s->mutable_task_template()->mutable_container_spec()->add_secrets()->set_secret_name("nope");
  }));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("secret \"nope\" not found"));

  api::UpdateServiceRequest req = UpdateOf(web.id());
  req.set_service_id("nope");
  s = Update(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "service nope not found");
  req.set_service_id("");
  EXPECT_EQ(Update(req).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Nothing changed.
  EXPECT_EQ(Stored<api::Service>(web.id()).SerializeAsString(), web.SerializeAsString());
}

TEST_F(ServicesTest, UpdateChecksPortsAgainstOtherServicesOnly) {
  const api::Service web = CreateService(WithPort(Spec("web"), 8080));
  CreateService(WithPort(Spec("other"), 9090));
  // Its own port is no conflict.
  EXPECT_TRUE(
      Update(UpdateOf(web.id(), [](auto* s) { s->mutable_replicated()->set_replicas(4); })).ok());
  grpc::Status s = Update(UpdateOf(web.id(), [](auto* s) {
    s->mutable_endpoint_spec()->mutable_ports(0)->set_published_port(9090);
  }));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(),
              HasSubstr("port 9090/tcp is already published by service \"other\""));
}

TEST_F(ServicesTest, JobUpdatesStartANewIteration) {
  api::ServiceSpec spec = Spec("batch");
  spec.mutable_replicated_job()->set_total_completions(2);
  const api::Service v1 = CreateService(spec);
  clock_.Advance(absl::Minutes(1));
  api::Service v2;
  ASSERT_TRUE(
      Update(UpdateOf(v1.id(), [](auto* s) { s->mutable_task_template()->set_force_update(1); }),
             &v2)
          .ok());
  EXPECT_EQ(v2.job_status().job_iteration().index(), 1u);
  EXPECT_EQ(v2.job_status().last_execution().seconds(), absl::ToUnixSeconds(clock_.Now()));
  // No change, no new run.
  ASSERT_TRUE(Update(UpdateOf(v1.id()), &v2).ok());
  EXPECT_EQ(v2.job_status().job_iteration().index(), 1u);
  // A rollback runs the job again too.
  ASSERT_TRUE(Update(RollbackOf(v1.id()), &v2).ok());
  EXPECT_EQ(v2.job_status().job_iteration().index(), 2u);
  EXPECT_EQ(v2.spec().task_template().force_update(), 0u);
}

TEST_F(ServicesTest, RollbackSwapsSpecAndPreviousSpec) {
  const api::Service v1 = CreateService(Spec("web", 1));
  clock_.Advance(absl::Seconds(10));
  api::Service v2;
  ASSERT_TRUE(
      Update(UpdateOf(v1.id(), [](auto* s) { s->mutable_replicated()->set_replicas(6); }), &v2)
          .ok());
  Modify<api::Service>(v1.id(), [](api::Service* s) {
    s->mutable_update_status()->set_state(api::UpdateStatus::PAUSED);
  });

  api::UpdateServiceRequest req = RollbackOf(v1.id());
  // The request's spec is ignored for a rollback.
  *req.mutable_spec() = Spec("whatever", 99);
  api::Service back;
  ASSERT_TRUE(Update(req, &back).ok());
  EXPECT_EQ(back.spec().SerializeAsString(), v1.spec().SerializeAsString());
  EXPECT_EQ(back.spec_version().index(), v1.spec_version().index());
  EXPECT_EQ(back.previous_spec().SerializeAsString(), v2.spec().SerializeAsString());
  EXPECT_EQ(back.previous_spec_version().index(), v2.spec_version().index());
  EXPECT_EQ(back.update_status().state(), api::UpdateStatus::ROLLBACK_STARTED);
  EXPECT_EQ(back.update_status().message(), "manually requested rollback");
  EXPECT_EQ(back.update_status().started_at().seconds(), absl::ToUnixSeconds(clock_.Now()));

  // Rolling back again returns to the second spec.
  api::Service again;
  ASSERT_TRUE(Update(RollbackOf(v1.id()), &again).ok());
  EXPECT_EQ(again.spec().replicated().replicas(), 6u);
  EXPECT_EQ(again.spec_version().index(), v2.spec_version().index());

  // A plain update clears the update status: a new update starts.
  api::Service v4;
  ASSERT_TRUE(
      Update(UpdateOf(v1.id(), [](auto* s) { s->mutable_replicated()->set_replicas(2); }), &v4)
          .ok());
  EXPECT_FALSE(v4.has_update_status());
}

TEST_F(ServicesTest, RollbackNeedsAPreviousSpecWhoseReferencesStillExist) {
  const api::Service fresh = CreateService(Spec("fresh"));
  grpc::Status s = Update(RollbackOf(fresh.id()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("service \"fresh\" (" + fresh.id() +
                                           ") has no previous spec to roll back to"));

  // The previous spec used a secret that was removed after the service stopped using it.
  AddSecret("sec1", "old-secret", "data");
  api::ServiceSpec spec = Spec("web");
  spec.mutable_task_template()->mutable_container_spec()->add_secrets()->set_secret_name(
      "old-secret");
  const api::Service web = CreateService(spec);
  ASSERT_TRUE(Update(UpdateOf(web.id(), [](auto* s) {
                s->mutable_task_template()->mutable_container_spec()->clear_secrets();
              })).ok());
  api::RemoveSecretRequest rm;
  rm.set_secret_id("sec1");
  api::RemoveSecretResponse rm_resp;
  ASSERT_TRUE(api_->RemoveSecret(rm, &rm_resp).ok());
  s = Update(RollbackOf(web.id()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("cannot roll back service \"web\" (" + web.id() +
                                           "): secret \"old-secret\" (ID sec1) not found"));
}

// ---------------------------------------------------------------------------------------------
// ListServices

TEST_F(ServicesTest, ListFilters) {
  api::ServiceSpec web = Spec("web");
  (*web.mutable_annotations()->mutable_labels())["tier"] = "front";
  api::ServiceSpec webapi = Spec("web-api");
  (*webapi.mutable_annotations()->mutable_labels())["tier"] = "back";
  const api::Service w = CreateService(web);
  CreateService(webapi);
  CreateService(Spec("db"));

  using F = api::ListServicesRequest::Filters;
  EXPECT_THAT(ListNames(), ElementsAre("db", "web", "web-api"));
  {
    F f;
    f.add_names("WEB");
    f.add_names("db");
    EXPECT_THAT(ListNames(f), ElementsAre("db", "web"));
  }
  {
    F f;
    f.add_name_prefixes("We");
    EXPECT_THAT(ListNames(f), ElementsAre("web", "web-api"));
  }
  {
    F f;
    f.add_id_prefixes(w.id().substr(0, 10));
    EXPECT_THAT(ListNames(f), ElementsAre("web"));
  }
  {
    F f;
    (*f.mutable_labels())["tier"] = "";
    EXPECT_THAT(ListNames(f), ElementsAre("web", "web-api"));
    (*f.mutable_labels())["tier"] = "back";
    EXPECT_THAT(ListNames(f), ElementsAre("web-api"));
    f.add_name_prefixes("db");  // AND between filters
    EXPECT_THAT(ListNames(f), ElementsAre());
  }
  api::ListServicesResponse resp;
  ASSERT_TRUE(api_->ListServices({}, &resp).ok());
  EXPECT_EQ(resp.statuses_size(), 0);  // not asked for
}

TEST_F(ServicesTest, ListWithStatusCountsTasks) {
  AddNode("n1", api::NodeStatus::READY, api::NODE_AVAILABILITY_ACTIVE, "east");
  AddNode("n2", api::NodeStatus::READY, api::NODE_AVAILABILITY_ACTIVE, "west");
  AddNode("n3", api::NodeStatus::DOWN, api::NODE_AVAILABILITY_ACTIVE, "east");
  AddNode("n4", api::NodeStatus::READY, api::NODE_AVAILABILITY_DRAIN, "east");
  AddNode("n5", api::NodeStatus::READY, api::NODE_AVAILABILITY_PAUSE, "east");

  const api::Service web = CreateService(Spec("web", 4));
  AddTask("w1", web.id(), "n1", api::TASK_STATE_RUNNING);
  AddTask("w2", web.id(), "n2", api::TASK_STATE_RUNNING);
  AddTask("w3", web.id(), "n3", api::TASK_STATE_RUNNING);  // its node is down
  AddTask("w4", web.id(), "n1", api::TASK_STATE_PREPARING);
  AddTask("w5", web.id(), "n2", api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN);

  api::ServiceSpec global = Spec("agent");
  global.mutable_global();
  global.mutable_task_template()->mutable_placement()->add_constraints("node.labels.zone==east");
  const api::Service agent = CreateService(global);
  AddTask("g1", agent.id(), "n1", api::TASK_STATE_RUNNING);
  AddTask("g5", agent.id(), "n5", api::TASK_STATE_RUNNING);  // paused node keeps its task

  api::ServiceSpec job = Spec("batch");
  job.mutable_replicated_job()->set_max_concurrent(2);
  job.mutable_replicated_job()->set_total_completions(5);
  const api::Service batch = CreateService(job);
  ASSERT_TRUE(Update(UpdateOf(batch.id(), [](auto* s) {
                s->mutable_task_template()->set_force_update(1);
              })).ok());  // iteration 1
  AddTask("j0", batch.id(), "n1", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE, 0);
  AddTask("j1", batch.id(), "n1", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE, 1);
  AddTask("j2", batch.id(), "n2", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE, 1);
  AddTask("j3", batch.id(), "n2", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE, 1);
  AddTask("j4", batch.id(), "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_COMPLETE, 1);

  api::ServiceSpec gjob = Spec("everywhere");
  gjob.mutable_global_job();
  const api::Service ev = CreateService(gjob);
  AddTask("e1", ev.id(), "n1", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE, 0);

  api::ListServicesRequest req;
  req.set_include_status(true);
  api::ListServicesResponse resp;
  ASSERT_TRUE(api_->ListServices(req, &resp).ok());
  ASSERT_EQ(resp.statuses_size(), 4);
  const api::ServiceStatus& w = resp.statuses().at(web.id());
  EXPECT_EQ(w.running_tasks(), 2u);
  EXPECT_EQ(w.desired_tasks(), 4u);
  EXPECT_EQ(w.completed_tasks(), 0u);
  const api::ServiceStatus& g = resp.statuses().at(agent.id());
  EXPECT_EQ(g.running_tasks(), 2u);
  EXPECT_EQ(g.desired_tasks(), 2u);  // n1 (active, east) and n5 (paused, holds a task)
  const api::ServiceStatus& j = resp.statuses().at(batch.id());
  EXPECT_EQ(j.running_tasks(), 1u);
  EXPECT_EQ(j.completed_tasks(), 3u);  // of iteration 1 only
  EXPECT_EQ(j.desired_tasks(), 2u);    // min(max concurrent 2, 5 - 3 left)
  const api::ServiceStatus& e = resp.statuses().at(ev.id());
  EXPECT_EQ(e.completed_tasks(), 1u);
  EXPECT_EQ(e.desired_tasks(), 1u);  // eligible n1, n2 minus the one that completed

  // Removed services have no status either.
  ASSERT_TRUE(Remove(web.id()).ok());
  resp.Clear();
  ASSERT_TRUE(api_->ListServices(req, &resp).ok());
  EXPECT_EQ(resp.statuses().count(web.id()), 0u);
}

// ---------------------------------------------------------------------------------------------
// The read barrier

TEST_F(ServicesTest, EveryCallWaitsForTheBarrier) {
  const api::Service web = CreateService(Spec("web"));
  api::UpdateServiceRequest update = UpdateOf(web.id());
  raft_.FailReadsWith(absl::UnavailableError("no leader"));
  EXPECT_EQ(TryCreateService(Spec("x")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(TryGet(web.id()).error_code(), grpc::StatusCode::UNAVAILABLE);
  api::ListServicesResponse list;
  grpc::Status s = api_->ListServices({}, &list);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("majority of the managers"));
  EXPECT_EQ(Update(update).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Remove(web.id()).error_code(), grpc::StatusCode::UNAVAILABLE);
  raft_.FailReadsWith(absl::OkStatus());
  EXPECT_FALSE(Stored<api::Service>(web.id()).pending_delete());
  EXPECT_THAT(ListNames(), ElementsAre("web"));
}

}  // namespace
}  // namespace shoal::manager
