#include "manager/encryption/dek_file.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/encryption/key_ring_encrypter.h"
#include "pki/unlock_key.h"

namespace shoal::manager::encryption {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class DekFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string templ = absl::StrCat(tmp ? tmp : "/tmp", "/dekXXXXXX");
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }

  std::string ReadAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void WriteAll(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
  }
  mode_t Mode(const std::string& path) {
    struct stat st;
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 0777;
  }

  static void ExpectSameState(const DekState& a, const DekState& b) {
    EXPECT_EQ(a.current_id, b.current_id);
    ASSERT_EQ(a.keys.size(), b.keys.size());
    for (size_t i = 0; i < a.keys.size(); ++i) {
      EXPECT_EQ(a.keys[i].id, b.keys[i].id);
      EXPECT_EQ(a.keys[i].key, b.keys[i].key);
    }
  }

  std::string dir_;
};

TEST_F(DekFileTest, NewDekStateHasOneFreshKey) {
  const DekState a = NewDekState();
  const DekState b = NewDekState();
  ASSERT_EQ(a.keys.size(), 1u);
  EXPECT_EQ(a.current_id, 1u);
  EXPECT_EQ(a.keys[0].id, 1u);
  EXPECT_EQ(a.keys[0].key.size(), kDataKeySize);
  EXPECT_NE(a.keys[0].key, b.keys[0].key);
  EXPECT_TRUE(ValidateDekState(a).ok());
}

TEST_F(DekFileTest, MissingFileIsNotFound) {
  auto loaded = DekFile::Load(dir_, "");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound) << loaded.status();
  EXPECT_EQ(DekFile::IsWrapped(dir_).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DekFileTest, PlainRoundTrip) {
  DekState state = NewDekState();
  state.keys.push_back(NewDataKey(2));
  state.current_id = 2;
  ASSERT_TRUE(DekFile::Save(dir_, state, "").ok());

  const std::string path = DekFile::Path(dir_);
  EXPECT_EQ(path, dir_ + "/raft/dek.pem");
  EXPECT_EQ(Mode(dir_ + "/raft"), 0700u);
  EXPECT_EQ(Mode(path), 0600u);
  EXPECT_THAT(ReadAll(path), StartsWith("-----BEGIN SHOAL RAFT DEK-----\n"));
  auto wrapped = DekFile::IsWrapped(dir_);
  ASSERT_TRUE(wrapped.ok());
  EXPECT_FALSE(*wrapped);

  auto loaded = DekFile::Load(dir_, "");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameState(*loaded, state);
  // A plain file loads whatever KEK is given.
  loaded = DekFile::Load(dir_, pki::GenerateUnlockKeyBytes());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameState(*loaded, state);
}

TEST_F(DekFileTest, WrappedRoundTrip) {
  const std::string kek = pki::GenerateUnlockKeyBytes();
  const DekState state = NewDekState();
  ASSERT_TRUE(DekFile::Save(dir_, state, kek).ok());
  EXPECT_THAT(ReadAll(DekFile::Path(dir_)),
              StartsWith("-----BEGIN SHOAL ENCRYPTED PRIVATE KEY-----\n"));
  auto wrapped = DekFile::IsWrapped(dir_);
  ASSERT_TRUE(wrapped.ok());
  EXPECT_TRUE(*wrapped);
  auto loaded = DekFile::Load(dir_, kek);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameState(*loaded, state);
}

// The two-step KEK change: a staged file wins only once the new KEK is the one given (the node
// key, the commit point, was re-wrapped); otherwise it is discarded.
TEST_F(DekFileTest, StagedChangeIsDiscardedUnlessItsKekIsGiven) {
  const std::string k1 = pki::GenerateUnlockKeyBytes();
  const std::string k2 = pki::GenerateUnlockKeyBytes();
  const DekState before = NewDekState();
  ASSERT_TRUE(DekFile::Save(dir_, before, k1).ok());
  DekState after = before;
  after.keys.push_back(NewDataKey(2));
  after.current_id = 2;
  ASSERT_TRUE(DekFile::SaveStaged(dir_, after, k2).ok());
  // Crash before the commit point: the old KEK is still the one in use.
  absl::StatusOr<DekState> loaded = DekFile::Load(dir_, k1);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->current_id, before.current_id);
  EXPECT_FALSE(std::filesystem::exists(DekFile::StagedPath(dir_)));

  // Crash after the commit point: the new KEK opens the staged file, which is put in place.
  ASSERT_TRUE(DekFile::SaveStaged(dir_, after, k2).ok());
  loaded = DekFile::Load(dir_, k2);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->current_id, 2u);
  EXPECT_EQ(loaded->keys.size(), 2u);
  EXPECT_FALSE(std::filesystem::exists(DekFile::StagedPath(dir_)));
  EXPECT_TRUE(DekFile::Load(dir_, k2).ok());
  EXPECT_FALSE(DekFile::Load(dir_, k1).ok());

  // A normal change: stage, commit.
  ASSERT_TRUE(DekFile::SaveStaged(dir_, before, "").ok());
  ASSERT_TRUE(DekFile::CommitStaged(dir_).ok());
  loaded = DekFile::Load(dir_, "");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->current_id, before.current_id);
}

TEST_F(DekFileTest, WrappedWithoutKekIsLocked) {
  ASSERT_TRUE(DekFile::Save(dir_, NewDekState(), pki::GenerateUnlockKeyBytes()).ok());
  auto loaded = DekFile::Load(dir_, "");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("the swarm is locked"));
}

TEST_F(DekFileTest, WrongKekIsInvalidUnlockKey) {
  ASSERT_TRUE(DekFile::Save(dir_, NewDekState(), pki::GenerateUnlockKeyBytes()).ok());
  auto loaded = DekFile::Load(dir_, pki::GenerateUnlockKeyBytes());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loaded.status().message()), StartsWith("invalid unlock key"));
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("dek.pem"));
  // A KEK of the wrong size.
  loaded = DekFile::Load(dir_, "short");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loaded.status().message()), StartsWith("invalid unlock key"));
}

TEST_F(DekFileTest, KeysNeverAppearInAWrappedFile) {
  const std::string kek = pki::GenerateUnlockKeyBytes();
  DekState state = NewDekState();
  // A recognisable key, so that every encoding of it can be looked for.
  state.keys[0].key = std::string("MARKER-DEK-KEY-0123456789abcdef!");
  ASSERT_EQ(state.keys[0].key.size(), kDataKeySize);
  ASSERT_TRUE(DekFile::Save(dir_, state, kek).ok());
  const std::string content = ReadAll(DekFile::Path(dir_));
  EXPECT_FALSE(absl::StrContains(content, "MARKER"));
  EXPECT_FALSE(absl::StrContains(content, absl::Base64Escape(state.keys[0].key).substr(0, 20)));
  EXPECT_FALSE(absl::StrContains(content, "SHOAL RAFT DEK"));
  EXPECT_FALSE(absl::StrContains(content, absl::Base64Escape(kek).substr(0, 20)));

  // In the clear the same key is (base64-)visible: the check above is meaningful.
  ASSERT_TRUE(DekFile::Save(dir_, state, "").ok());
  auto plain = DekFile::Serialize(state);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(ReadAll(DekFile::Path(dir_)), *plain);
}

TEST_F(DekFileTest, ChangeKek) {
  const std::string kek1 = pki::GenerateUnlockKeyBytes();
  const std::string kek2 = pki::GenerateUnlockKeyBytes();
  const DekState state = NewDekState();
  ASSERT_TRUE(DekFile::Save(dir_, state, "").ok());
  ASSERT_TRUE(DekFile::ChangeKek(dir_, "", kek1).ok());  // autolock on
  EXPECT_TRUE(*DekFile::IsWrapped(dir_));
  ASSERT_TRUE(DekFile::ChangeKek(dir_, kek1, kek2).ok());  // unlock key rotated
  EXPECT_EQ(DekFile::Load(dir_, kek1).status().code(), absl::StatusCode::kInvalidArgument);
  auto loaded = DekFile::Load(dir_, kek2);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameState(*loaded, state);
  EXPECT_EQ(DekFile::ChangeKek(dir_, kek1, "").code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(DekFile::ChangeKek(dir_, kek2, "").ok());  // autolock off
  EXPECT_FALSE(*DekFile::IsWrapped(dir_));
}

TEST_F(DekFileTest, LeftoverTempFileIsIgnored) {
  const DekState state = NewDekState();
  ASSERT_TRUE(DekFile::Save(dir_, state, "").ok());
  // A save that crashed after writing part of its temp file.
  const std::string tmp = DekFile::Path(dir_) + ".tmp";
  WriteAll(tmp, "-----BEGIN SHOAL RAFT DEK-----\nAAAA");
  auto loaded = DekFile::Load(dir_, "");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameState(*loaded, state);

  // The next save replaces the leftover and leaves no temp file behind.
  const DekState next = NewDekState();
  ASSERT_TRUE(DekFile::Save(dir_, next, "").ok());
  EXPECT_NE(::access(tmp.c_str(), F_OK), 0);
  loaded = DekFile::Load(dir_, "");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameState(*loaded, next);
}

TEST_F(DekFileTest, CorruptFilesAreDataLoss) {
  ASSERT_TRUE(DekFile::Save(dir_, NewDekState(), "").ok());
  const std::string path = DekFile::Path(dir_);
  const std::string good = ReadAll(path);

  WriteAll(path, "not a pem file");
  EXPECT_EQ(DekFile::Load(dir_, "").status().code(), absl::StatusCode::kDataLoss);

  WriteAll(path, "-----BEGIN SHOAL RAFT DEK-----\nAAAA\n-----END SHOAL RAFT DEK-----\n");
  EXPECT_EQ(DekFile::Load(dir_, "").status().code(), absl::StatusCode::kDataLoss);

  // Truncated in the middle of the base64 body.
  WriteAll(path, good.substr(0, good.size() / 2));
  EXPECT_EQ(DekFile::Load(dir_, "").status().code(), absl::StatusCode::kDataLoss);

  // A future format version is named in the error.
  auto pem = DekFile::Serialize(NewDekState());
  ASSERT_TRUE(pem.ok());
  const size_t begin = pem->find('\n') + 1;
  const size_t end = pem->find("-----END");
  std::string body;
  ASSERT_TRUE(absl::Base64Unescape(
      absl::StrReplaceAll(pem->substr(begin, end - begin), {{"\n", ""}}), &body));
  ASSERT_EQ(body[0], 1);
  body[0] = 2;
  std::string b64 = absl::Base64Escape(body);
  std::string lines;
  for (size_t i = 0; i < b64.size(); i += 64) absl::StrAppend(&lines, b64.substr(i, 64), "\n");
  WriteAll(path, absl::StrCat("-----BEGIN SHOAL RAFT DEK-----\n", lines,
                              "-----END SHOAL RAFT DEK-----\n"));
  auto loaded = DekFile::Load(dir_, "");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("format version 2"));

  // A wrapped file whose ciphertext was altered cannot be told from a wrong key.
  const std::string kek = pki::GenerateUnlockKeyBytes();
  ASSERT_TRUE(DekFile::Save(dir_, NewDekState(), kek).ok());
  std::string wrapped = ReadAll(path);
  const size_t pos = wrapped.find('\n') + 10;
  wrapped[pos] = wrapped[pos] == 'A' ? 'B' : 'A';
  WriteAll(path, wrapped);
  EXPECT_EQ(DekFile::Load(dir_, kek).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DekFileTest, SaveValidates) {
  DekState bad;
  EXPECT_EQ(DekFile::Save(dir_, bad, "").code(), absl::StatusCode::kInvalidArgument);
  bad = NewDekState();
  bad.current_id = 9;
  EXPECT_EQ(DekFile::Save(dir_, bad, "").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DekFile::Save(dir_, NewDekState(), "short-kek").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DekFile::Save(dir_ + "/missing", NewDekState(), "").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DekFile::Load(dir_, "").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DekFileTest, SavedKeysSealAndOpenAcrossRestart) {
  const std::string kek = pki::GenerateUnlockKeyBytes();
  auto ring = KeyRingEncrypter::Create(NewDekState());
  ASSERT_TRUE(ring.ok());
  auto sealed = (*ring)->Seal("entry", "e1");
  ASSERT_TRUE((*ring)->AddKeyAndMakeCurrent(NewDataKey(2)).ok());
  ASSERT_TRUE(DekFile::Save(dir_, (*ring)->State(), kek).ok());

  auto loaded = DekFile::Load(dir_, kek);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto restarted = KeyRingEncrypter::Create(*loaded);
  ASSERT_TRUE(restarted.ok());
  EXPECT_EQ((*restarted)->current_id(), 2u);
  auto opened = (*restarted)->Open(*sealed, "e1");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "entry");
}

}  // namespace
}  // namespace shoal::manager::encryption
