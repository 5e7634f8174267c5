#include "manager/encryption/dek_file.h"

#include "common/files.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"
#include "pki/ossl.h"
#include "pki/unlock_key.h"

namespace shoal::manager::encryption {
namespace {

constexpr char kTempSuffix[] = ".tmp";
// Far above any real key set; bounds what a corrupt count can make Parse allocate.
constexpr uint32_t kMaxKeys = 1 << 16;

// Wipes its contents when it goes away: holds serialized keys.
struct WipedString {
  std::string s;
  ~WipedString() { OPENSSL_cleanse(s.data(), s.size()); }
};

absl::Status ErrnoError(absl::string_view what, const std::string& path, int err) {
  const std::string msg = absl::StrCat(what, " ", path, ": ", strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

absl::Status FsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoError("opening directory", dir, errno);
  if (::fsync(fd.get()) != 0) return ErrnoError("fsyncing directory", dir, errno);
  return absl::OkStatus();
}

std::string RaftDir(const std::string& state_dir) {
  return absl::StrCat(state_dir, "/", DekFile::kDirName);
}

absl::Status EnsureDir(const std::string& state_dir) {
  const std::string dir = RaftDir(state_dir);
  if (::mkdir(dir.c_str(), 0700) == 0) return FsyncDir(state_dir);
  if (errno == EEXIST) return absl::OkStatus();
  if (errno == ENOENT) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create ", dir, ": the state directory does not exist (check --state-dir)"));
  }
  return ErrnoError("creating", dir, errno);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("opening", path, errno);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      OPENSSL_cleanse(out.data(), out.size());
      return ErrnoError("reading", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  OPENSSL_cleanse(buf, sizeof(buf));
  return out;
}

// Writes `data` to `path` atomically (common/files.h), mode 0600.
absl::Status WriteFileAtomic(const std::string& /*dir*/, const std::string& path,
                             absl::string_view data) {
  return shoal::WriteFileAtomic(path, std::string(data), 0600);
}

void PutU32(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>((v >> 24) & 0xff));
  out->push_back(static_cast<char>((v >> 16) & 0xff));
  out->push_back(static_cast<char>((v >> 8) & 0xff));
  out->push_back(static_cast<char>(v & 0xff));
}

bool GetU32(absl::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(in->data());
  *v = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
  in->remove_prefix(4);
  return true;
}

absl::Status Corrupt(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("the Raft data-encryption key file is corrupt: ", what,
                                          " (restore it from a backup, or remove the manager "
                                          "from the swarm and re-join it)"));
}

}  // namespace

std::string DekFile::Path(const std::string& state_dir) {
  return absl::StrCat(RaftDir(state_dir), "/", kFileName);
}

absl::StatusOr<std::string> DekFile::Serialize(const DekState& state) {
  if (absl::Status s = ValidateDekState(state); !s.ok()) return s;
  WipedString body;
  body.s.push_back(static_cast<char>(kFormatVersion));
  PutU32(&body.s, state.current_id);
  PutU32(&body.s, static_cast<uint32_t>(state.keys.size()));
  for (const DataKey& k : state.keys) {
    PutU32(&body.s, k.id);
    PutU32(&body.s, static_cast<uint32_t>(k.key.size()));
    body.s.append(k.key);
  }
  pki::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio(bio.get(), kPemType, "", reinterpret_cast<const unsigned char*>(body.s.data()),
                    static_cast<long>(body.s.size())) <= 0) {
    return pki::OpenSslError("encoding the data-encryption key file");
  }
  std::string pem = pki::BioContents(bio.get());
  // The memory BIO's buffer held the encoded keys too.
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio.get(), &mem);
  if (mem != nullptr && mem->data != nullptr) OPENSSL_cleanse(mem->data, mem->length);
  return pem;
}

absl::StatusOr<DekState> DekFile::Parse(absl::string_view pem) {
  if (!absl::StrContains(pem, absl::StrCat("-----BEGIN ", kPemType, "-----"))) {
    return Corrupt(absl::StrCat("no \"", kPemType, "\" PEM block"));
  }
  pki::BioPtr bio = pki::MemBio(pem);
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long data_len = 0;
  if (PEM_read_bio(bio.get(), &name, &header, &data, &data_len) != 1) {
    ERR_clear_error();
    return Corrupt("malformed PEM");
  }
  const bool right_type = strcmp(name, kPemType) == 0;
  OPENSSL_free(name);
  OPENSSL_free(header);
  WipedString body{std::string(reinterpret_cast<char*>(data), static_cast<size_t>(data_len))};
  OPENSSL_clear_free(data, static_cast<size_t>(data_len));
  if (!right_type) return Corrupt(absl::StrCat("the first PEM block is not \"", kPemType, "\""));

  absl::string_view in = body.s;
  if (in.empty()) return Corrupt("empty body");
  if (static_cast<unsigned char>(in[0]) != kFormatVersion) {
    return absl::DataLossError(absl::StrCat(
        "the Raft data-encryption key file has format version ",
        static_cast<int>(static_cast<unsigned char>(in[0])), "; this shoald reads version ",
        static_cast<int>(kFormatVersion), " (was it written by a newer release?)"));
  }
  in.remove_prefix(1);
  DekState state;
  uint32_t count = 0;
  if (!GetU32(&in, &state.current_id) || !GetU32(&in, &count)) return Corrupt("truncated header");
  if (count > kMaxKeys) return Corrupt(absl::StrCat("implausible key count ", count));
  for (uint32_t i = 0; i < count; ++i) {
    DataKey k;
    uint32_t len = 0;
    if (!GetU32(&in, &k.id) || !GetU32(&in, &len) || in.size() < len) {
      WipeDekState(&state);
      return Corrupt(absl::StrCat("key ", i + 1, " of ", count, " is truncated"));
    }
    k.key = std::string(in.substr(0, len));
    in.remove_prefix(len);
    state.keys.push_back(std::move(k));
  }
  if (!in.empty()) {
    WipeDekState(&state);
    return Corrupt(absl::StrCat(in.size(), " trailing bytes"));
  }
  if (absl::Status s = ValidateDekState(state); !s.ok()) {
    WipeDekState(&state);
    return Corrupt(s.message());
  }
  return state;
}

absl::StatusOr<DekState> DekFile::Load(const std::string& state_dir, absl::string_view kek) {
  // A staged file left by an interrupted KEK change wins if the KEK opens it (the node key,
  // the commit point, was already re-wrapped); otherwise the change never happened.
  if (FileExists(StagedPath(state_dir))) {
    absl::StatusOr<DekState> staged = LoadFrom(StagedPath(state_dir), kek);
    if (staged.ok()) {
      if (absl::Status s = CommitStaged(state_dir); !s.ok()) return s;
      return staged;
    }
    DiscardStaged(state_dir);
  }
  return LoadFrom(Path(state_dir), kek);
}

std::string DekFile::StagedPath(const std::string& state_dir) {
  return absl::StrCat(Path(state_dir), ".new");
}

absl::Status DekFile::SaveStaged(const std::string& state_dir, const DekState& state,
                                 absl::string_view kek) {
  return SaveTo(state_dir, StagedPath(state_dir), state, kek);
}

absl::Status DekFile::CommitStaged(const std::string& state_dir) {
  if (::rename(StagedPath(state_dir).c_str(), Path(state_dir).c_str()) != 0) {
    return ErrnoError("renaming into place", StagedPath(state_dir), errno);
  }
  return FsyncDir(RaftDir(state_dir));
}

void DekFile::DiscardStaged(const std::string& state_dir) {
  ::unlink(StagedPath(state_dir).c_str());
}

absl::StatusOr<DekState> DekFile::LoadFrom(const std::string& path, absl::string_view kek) {
  auto read = ReadFile(path);
  if (!read.ok()) {
    if (absl::IsNotFound(read.status())) {
      return absl::NotFoundError(absl::StrCat("no Raft data-encryption key file at ", path));
    }
    return read.status();
  }
  WipedString content{*std::move(read)};
  if (!pki::IsWrappedKey(content.s)) return Parse(content.s);

  if (kek.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the swarm is locked: ", path,
        " is encrypted with the swarm's unlock key; run `shoal swarm unlock` and enter it"));
  }
  auto unwrapped = pki::UnwrapKey(content.s, kek);
  if (!unwrapped.ok()) {
    const absl::Status& s = unwrapped.status();
    if (absl::IsInvalidArgument(s) && absl::StrContains(s.message(), "does not decrypt")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid unlock key: it does not decrypt ", path,
          " (was the unlock key rotated? `shoal swarm unlock-key` on an unlocked manager prints "
          "the current one)"));
    }
    if (absl::IsInvalidArgument(s) && absl::StartsWith(s.message(), "invalid unlock key")) {
      return s;
    }
    return Corrupt(s.message());
  }
  WipedString plain{*std::move(unwrapped)};
  return Parse(plain.s);
}

absl::Status DekFile::Save(const std::string& state_dir, const DekState& state,
                           absl::string_view kek) {
  return SaveTo(state_dir, Path(state_dir), state, kek);
}

absl::Status DekFile::SaveTo(const std::string& state_dir, const std::string& path,
                             const DekState& state, absl::string_view kek) {
  auto serialized = Serialize(state);
  if (!serialized.ok()) return serialized.status();
  WipedString plain{*std::move(serialized)};
  std::string content;
  if (kek.empty()) {
    content = plain.s;
  } else {
    auto wrapped = pki::WrapKey(plain.s, kek);
    if (!wrapped.ok()) return wrapped.status();
    content = *std::move(wrapped);
  }
  WipedString to_write{std::move(content)};
  if (absl::Status s = EnsureDir(state_dir); !s.ok()) return s;
  return WriteFileAtomic(RaftDir(state_dir), path, to_write.s);
}

absl::StatusOr<bool> DekFile::IsWrapped(const std::string& state_dir) {
  const std::string path = Path(state_dir);
  auto read = ReadFile(path);
  if (!read.ok()) {
    if (absl::IsNotFound(read.status())) {
      return absl::NotFoundError(absl::StrCat("no Raft data-encryption key file at ", path));
    }
    return read.status();
  }
  WipedString content{*std::move(read)};
  return pki::IsWrappedKey(content.s);
}

absl::Status DekFile::ChangeKek(const std::string& state_dir, absl::string_view old_kek,
                                absl::string_view new_kek) {
  auto state = Load(state_dir, old_kek);
  if (!state.ok()) return state.status();
  absl::Status s = Save(state_dir, *state, new_kek);
  WipeDekState(&*state);
  return s;
}

}  // namespace shoal::manager::encryption
