#include "pki/certificate_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"
#include "pki/keys.h"
#include "pki/ossl.h"
#include "pki/unlock_key.h"

namespace shoal::pki {
namespace {

constexpr char kStagedSuffix[] = ".new";
constexpr char kTempSuffix[] = ".tmp";

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

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("opening", path, errno);
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("reading", path, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Writes `data` to dir/name through dir/name.tmp: write, fsync, rename, fsync the directory.
absl::Status WriteFileAtomic(const std::string& dir, const std::string& name,
                             absl::string_view data, mode_t mode) {
  const std::string path = absl::StrCat(dir, "/", name);
  const std::string tmp = absl::StrCat(path, kTempSuffix);
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd) return ErrnoError("creating", tmp, errno);
    // The umask may have narrowed the mode, and an old temp file may have had another one.
    if (::fchmod(fd.get(), mode) != 0) return ErrnoError("setting the mode of", tmp, errno);
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        ::unlink(tmp.c_str());
        return ErrnoError("writing", tmp, err);
      }
      off += static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      return ErrnoError("fsyncing", tmp, err);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError("renaming into place", path, err);
  }
  return FsyncDir(dir);
}

absl::Status Rename(const std::string& dir, const std::string& from, const std::string& to) {
  const std::string a = absl::StrCat(dir, "/", from);
  const std::string b = absl::StrCat(dir, "/", to);
  if (::rename(a.c_str(), b.c_str()) != 0) return ErrnoError("renaming", a, errno);
  return FsyncDir(dir);
}

}  // namespace

CertificateStore::CertificateStore(const std::string& state_dir)
    : dir_(absl::StrCat(state_dir, "/", kDirName)) {}

std::string CertificateStore::root_ca_path() const { return absl::StrCat(dir_, "/", kRootCaFile); }
std::string CertificateStore::cert_path() const { return absl::StrCat(dir_, "/", kCertFile); }
std::string CertificateStore::key_path() const { return absl::StrCat(dir_, "/", kKeyFile); }

absl::Status CertificateStore::EnsureDir() {
  if (::mkdir(dir_.c_str(), 0700) == 0) {
    const std::string parent = dir_.substr(0, dir_.rfind('/'));
    return FsyncDir(parent);
  }
  if (errno == EEXIST) return absl::OkStatus();
  if (errno == ENOENT) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create ", dir_, ": the state directory does not exist (check --state-dir)"));
  }
  return ErrnoError("creating", dir_, errno);
}

absl::Status CertificateStore::Recover() {
  if (!PathExists(dir_)) return absl::OkStatus();
  const std::string key_staged = absl::StrCat(kKeyFile, kStagedSuffix);
  const std::string cert_staged = absl::StrCat(kCertFile, kStagedSuffix);
  const bool have_key_staged = PathExists(absl::StrCat(dir_, "/", key_staged));
  const bool have_cert_staged = PathExists(absl::StrCat(dir_, "/", cert_staged));
  if (have_cert_staged) {
    // The staged pair was complete before any rename began: roll forward.
    if (have_key_staged) {
      if (absl::Status s = Rename(dir_, key_staged, kKeyFile); !s.ok()) return s;
    }
    if (absl::Status s = Rename(dir_, cert_staged, kCertFile); !s.ok()) return s;
  } else if (have_key_staged) {
    // Staging stopped before the certificate was written: the old pair is intact.
    const std::string path = absl::StrCat(dir_, "/", key_staged);
    if (::unlink(path.c_str()) != 0) return ErrnoError("removing", path, errno);
    if (absl::Status s = FsyncDir(dir_); !s.ok()) return s;
  }
  // Leftover temporaries of interrupted atomic writes are garbage.
  for (const char* file : {kRootCaFile, kCertFile, kKeyFile}) {
    for (const std::string& name :
         {absl::StrCat(file, kTempSuffix), absl::StrCat(file, kStagedSuffix, kTempSuffix)}) {
      ::unlink(absl::StrCat(dir_, "/", name).c_str());
    }
  }
  return absl::OkStatus();
}

absl::Status CertificateStore::Save(const NodeCertificates& certs, absl::string_view kek) {
  auto roots = ParseCertificates(certs.root_ca_pem, "root CA certificate");
  if (!roots.ok()) return roots.status();
  // Validate the pair before the root is written, so a bad call changes nothing.
  auto cert = ParseCertificate(certs.cert_pem, "node certificate", /*allow_more=*/true);
  if (!cert.ok()) return cert.status();
  auto key = ParsePrivateKey(certs.key_pem);
  if (!key.ok()) return key.status();
  if (!KeyMatchesCertificate(key->get(), cert->get())) {
    return absl::InvalidArgumentError("node key does not match the node certificate");
  }
  if (absl::Status s = SaveRootCA(certs.root_ca_pem); !s.ok()) return s;
  return SaveNodeCertificate(certs.cert_pem, certs.key_pem, kek);
}

absl::Status CertificateStore::SaveRootCA(absl::string_view root_ca_pem) {
  auto roots = ParseCertificates(root_ca_pem, "root CA certificate");
  if (!roots.ok()) return roots.status();
  if (absl::Status s = EnsureDir(); !s.ok()) return s;
  if (absl::Status s = Recover(); !s.ok()) return s;
  return WriteFileAtomic(dir_, kRootCaFile, root_ca_pem, 0644);
}

absl::Status CertificateStore::SaveNodeCertificate(absl::string_view cert_pem,
                                                   absl::string_view key_pem,
                                                   absl::string_view kek) {
  auto cert = ParseCertificate(cert_pem, "node certificate", /*allow_more=*/true);
  if (!cert.ok()) return cert.status();
  auto key = ParsePrivateKey(key_pem);
  if (!key.ok()) return key.status();
  if (!KeyMatchesCertificate(key->get(), cert->get())) {
    return absl::InvalidArgumentError("node key does not match the node certificate");
  }
  std::string key_data(key_pem);
  if (!kek.empty()) {
    auto wrapped = WrapKey(key_pem, kek);
    if (!wrapped.ok()) return wrapped.status();
    key_data = *std::move(wrapped);
  }
  if (absl::Status s = EnsureDir(); !s.ok()) return s;
  if (absl::Status s = Recover(); !s.ok()) return s;
  const std::string key_staged = absl::StrCat(kKeyFile, kStagedSuffix);
  const std::string cert_staged = absl::StrCat(kCertFile, kStagedSuffix);
  // Order matters; see the protocol in the header.
  if (absl::Status s = WriteFileAtomic(dir_, key_staged, key_data, 0600); !s.ok()) return s;
  if (absl::Status s = WriteFileAtomic(dir_, cert_staged, cert_pem, 0644); !s.ok()) return s;
  if (absl::Status s = Rename(dir_, key_staged, kKeyFile); !s.ok()) return s;
  return Rename(dir_, cert_staged, kCertFile);
}

absl::StatusOr<NodeCertificates> CertificateStore::Load(absl::string_view kek) {
  if (absl::Status s = Recover(); !s.ok()) return s;
  auto root = ReadFile(root_ca_path());
  auto cert = ReadFile(cert_path());
  auto key = ReadFile(key_path());
  for (const auto* r : {&root, &cert, &key}) {
    if (!r->ok()) {
      if (absl::IsNotFound(r->status())) {
        return absl::NotFoundError(absl::StrCat("no node certificates in ", dir_, " (",
                                                r->status().message(),
                                                "): this node has not joined a swarm"));
      }
      return r->status();
    }
  }
  NodeCertificates out;
  out.root_ca_pem = *std::move(root);
  out.cert_pem = *std::move(cert);
  if (IsWrappedKey(*key)) {
    if (kek.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          key_path(),
          " is encrypted: the swarm is autolocked; unlock this node with `shoal swarm unlock`"));
    }
    auto unwrapped = UnwrapKey(*key, kek);
    if (!unwrapped.ok()) return unwrapped.status();
    out.key_pem = *std::move(unwrapped);
  } else {
    out.key_pem = *std::move(key);
  }

  auto data_loss = [&](const absl::Status& s, const std::string& file) {
    return absl::DataLossError(
        absl::StrCat(file, ": ", s.message(), "; the node must leave and rejoin the swarm"));
  };
  if (auto roots = ParseCertificates(out.root_ca_pem, "root CA certificate"); !roots.ok()) {
    return data_loss(roots.status(), root_ca_path());
  }
  auto parsed_cert = ParseCertificate(out.cert_pem, "node certificate", /*allow_more=*/true);
  if (!parsed_cert.ok()) return data_loss(parsed_cert.status(), cert_path());
  auto parsed_key = ParsePrivateKey(out.key_pem);
  if (!parsed_key.ok()) return data_loss(parsed_key.status(), key_path());
  if (!KeyMatchesCertificate(parsed_key->get(), parsed_cert->get())) {
    return data_loss(absl::DataLossError("the key does not match the node certificate"),
                     key_path());
  }
  return out;
}

absl::StatusOr<bool> CertificateStore::Exists() {
  if (absl::Status s = Recover(); !s.ok()) return s;
  return PathExists(cert_path()) && PathExists(key_path());
}

absl::StatusOr<bool> CertificateStore::KeyIsWrapped() {
  if (absl::Status s = Recover(); !s.ok()) return s;
  auto key = ReadFile(key_path());
  if (!key.ok()) return key.status();
  return IsWrappedKey(*key);
}

absl::Status CertificateStore::ChangeKek(absl::string_view old_kek, absl::string_view new_kek) {
  auto certs = Load(old_kek);
  if (!certs.ok()) return certs.status();
  return SaveNodeCertificate(certs->cert_pem, certs->key_pem, new_kek);
}

}  // namespace shoal::pki
