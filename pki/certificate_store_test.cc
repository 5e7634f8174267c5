// CertificateStore: round trips, file modes, key wrapping, atomic replacement, and recovery from
// a save interrupted at every point of the staging protocol.
#include "pki/certificate_store.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/root_ca.h"
#include "pki/test_util.h"
#include "pki/unlock_key.h"

namespace shoal::pki {
namespace {

using ::shoal::pki::testing::IssueNode;
using ::shoal::pki::testing::NewRootCA;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

class CertificateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string templ = absl::StrCat(tmp ? tmp : "/tmp", "/state-XXXXXX");
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    state_dir_ = templ;
    a_ = IssueNode(ca_, "n1", Role::kManager, "c1");
    b_ = IssueNode(ca_, "n1", Role::kManager, "c1");
  }
  void TearDown() override {
    // Best effort; TEST_TMPDIR is cleaned by Bazel anyway.
    std::string cmd = absl::StrCat("rm -rf '", state_dir_, "'");
    (void)system(cmd.c_str());
  }

  NodeCertificates Certs(const testing::IssuedNode& n) {
    return {ca_.cert_pem(), n.cert_pem, n.key_pem};
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void Write(const std::string& path, const std::string& data) {
    std::ofstream(path) << data;
  }
  static mode_t Mode(const std::string& path) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return 0;
    return st.st_mode & 07777;
  }
  std::set<std::string> Files() {
    std::set<std::string> names;
    DIR* d = opendir(CertificateStore(state_dir_).dir().c_str());
    if (d == nullptr) return names;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.insert(n);
    }
    closedir(d);
    return names;
  }

  std::string state_dir_;
  RootCA ca_ = NewRootCA();
  testing::IssuedNode a_, b_;
};

TEST_F(CertificateStoreTest, RoundTripInTheClear) {
  CertificateStore store(state_dir_);
  EXPECT_EQ(store.dir(), state_dir_ + "/certificates");
  EXPECT_FALSE(*store.Exists());
  ASSERT_TRUE(store.Save(Certs(a_)).ok());
  EXPECT_TRUE(*store.Exists());
  EXPECT_FALSE(*store.KeyIsWrapped());
  auto loaded = store.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->root_ca_pem, ca_.cert_pem());
  EXPECT_EQ(loaded->cert_pem, a_.cert_pem);
  EXPECT_EQ(loaded->key_pem, a_.key_pem);
  EXPECT_EQ(Read(store.cert_path()), a_.cert_pem);  // operators can read it as is
  EXPECT_EQ(Mode(store.dir()), 0700u);
  EXPECT_EQ(Mode(store.key_path()), 0600u);
  EXPECT_EQ(Mode(store.cert_path()), 0644u);
  EXPECT_EQ(Mode(store.root_ca_path()), 0644u);
  EXPECT_THAT(Files(),
              UnorderedElementsAre("swarm-root-ca.crt", "swarm-node.crt", "swarm-node.key"));
}

TEST_F(CertificateStoreTest, KeyWrappedWithTheKek) {
  CertificateStore store(state_dir_);
  const std::string kek = GenerateUnlockKeyBytes();
  ASSERT_TRUE(store.Save(Certs(a_), kek).ok());
  EXPECT_TRUE(*store.KeyIsWrapped());
  EXPECT_TRUE(IsWrappedKey(Read(store.key_path())));
  EXPECT_EQ(Mode(store.key_path()), 0600u);

  auto locked = store.Load();
  EXPECT_EQ(locked.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(locked.status()), HasSubstr("shoal swarm unlock"));

  auto wrong = store.Load(GenerateUnlockKeyBytes());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(wrong.status()), HasSubstr("invalid unlock key"));

  auto loaded = store.Load(kek);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->key_pem, a_.key_pem);
}

TEST_F(CertificateStoreTest, ChangeKekRewrapsAndUnwraps) {
  CertificateStore store(state_dir_);
  ASSERT_TRUE(store.Save(Certs(a_)).ok());
  const std::string k1 = GenerateUnlockKeyBytes();
  const std::string k2 = GenerateUnlockKeyBytes();
  ASSERT_TRUE(store.ChangeKek("", k1).ok());  // autolock on
  EXPECT_TRUE(*store.KeyIsWrapped());
  EXPECT_FALSE(store.ChangeKek(k2, k2).ok());  // the old key must be the right one
  ASSERT_TRUE(store.ChangeKek(k1, k2).ok());   // unlock key rotated
  EXPECT_FALSE(store.Load(k1).ok());
  EXPECT_TRUE(store.Load(k2).ok());
  ASSERT_TRUE(store.ChangeKek(k2, "").ok());  // autolock off
  EXPECT_FALSE(*store.KeyIsWrapped());
  EXPECT_EQ(store.Load()->key_pem, a_.key_pem);
}

TEST_F(CertificateStoreTest, ReplacesAtomicallyByRename) {
  CertificateStore store(state_dir_);
  ASSERT_TRUE(store.Save(Certs(a_)).ok());
  struct stat before_key, before_cert;
  ASSERT_EQ(stat(store.key_path().c_str(), &before_key), 0);
  ASSERT_EQ(stat(store.cert_path().c_str(), &before_cert), 0);
  ASSERT_TRUE(store.SaveNodeCertificate(b_.cert_pem, b_.key_pem).ok());
  struct stat after_key, after_cert;
  ASSERT_EQ(stat(store.key_path().c_str(), &after_key), 0);
  ASSERT_EQ(stat(store.cert_path().c_str(), &after_cert), 0);
  // New inodes: the files were renamed over, never rewritten in place.
  EXPECT_NE(before_key.st_ino, after_key.st_ino);
  EXPECT_NE(before_cert.st_ino, after_cert.st_ino);
  EXPECT_EQ(store.Load()->cert_pem, b_.cert_pem);
  EXPECT_THAT(Files(),
              UnorderedElementsAre("swarm-root-ca.crt", "swarm-node.crt", "swarm-node.key"));
}

TEST_F(CertificateStoreTest, MismatchedPairIsRefusedAndNothingWritten) {
  CertificateStore store(state_dir_);
  ASSERT_TRUE(store.Save(Certs(a_)).ok());
  NodeCertificates bad = Certs(b_);
  bad.key_pem = a_.key_pem;
  const absl::Status s = store.Save(bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("does not match"));
  EXPECT_EQ(store.Load()->cert_pem, a_.cert_pem);
}

TEST_F(CertificateStoreTest, LoadDetectsAMismatchedPairOnDisk) {
  CertificateStore store(state_dir_);
  ASSERT_TRUE(store.Save(Certs(a_)).ok());
  Write(store.key_path(), b_.key_pem);  // what a naive two-file write could leave
  auto loaded = store.Load();
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(loaded.status()), HasSubstr("does not match"));
}

// The states a crash can leave during SaveNodeCertificate(b) over a stored pair a.
TEST_F(CertificateStoreTest, RecoversFromACrashAfterStaging) {
  CertificateStore store(state_dir_);
  ASSERT_TRUE(store.Save(Certs(a_)).ok());
  Write(store.key_path() + ".new", b_.key_pem);
  Write(store.cert_path() + ".new", b_.cert_pem);
  auto loaded = store.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->cert_pem, b_.cert_pem);  // rolled forward
  EXPECT_EQ(loaded->key_pem, b_.key_pem);
  EXPECT_THAT(Files(),
              UnorderedElementsAre("swarm-root-ca.crt", "swarm-node.crt", "swarm-node.key"));
}

TEST_F(CertificateStoreTest, RecoversFromACrashBetweenTheRenames) {
  CertificateStore store(state_dir_);
  ASSERT_TRUE(store.Save(Certs(a_)).ok());
  Write(store.key_path(), b_.key_pem);  // key.new already renamed over the key
  Write(store.cert_path() + ".new", b_.cert_pem);
  auto loaded = store.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->cert_pem, b_.cert_pem);
  EXPECT_EQ(loaded->key_pem, b_.key_pem);
}

TEST_F(CertificateStoreTest, DiscardsAnIncompleteStage) {
  CertificateStore store(state_dir_);
  ASSERT_TRUE(store.Save(Certs(a_)).ok());
  Write(store.key_path() + ".new", b_.key_pem);         // crashed before the cert was staged
  Write(store.cert_path() + ".new.tmp", "half a cer");  // ... while writing it
  Write(store.root_ca_path() + ".tmp", "torn");
  auto loaded = store.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->cert_pem, a_.cert_pem);  // the old pair stands
  EXPECT_EQ(loaded->key_pem, a_.key_pem);
  EXPECT_THAT(Files(),
              UnorderedElementsAre("swarm-root-ca.crt", "swarm-node.crt", "swarm-node.key"));
}

TEST_F(CertificateStoreTest, RootRotationProgressAndMissingState) {
  CertificateStore store(state_dir_);
  auto empty = store.Load();
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(empty.status()), HasSubstr("has not joined a swarm"));
  ASSERT_TRUE(store.Save(Certs(a_)).ok());
  RootCA next = NewRootCA();
  ASSERT_TRUE(store.SaveRootCA(ca_.cert_pem() + next.cert_pem()).ok());
  EXPECT_EQ(store.Load()->root_ca_pem, ca_.cert_pem() + next.cert_pem());
  EXPECT_FALSE(store.SaveRootCA("not a certificate").ok());

  CertificateStore nowhere(state_dir_ + "/does/not/exist");
  const absl::Status s = nowhere.Save(Certs(a_));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(s), HasSubstr("--state-dir"));
}

}  // namespace
}  // namespace shoal::pki
