#include "raft/storage/snapshot_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/unique_fd.h"

namespace shoal::raft {
namespace {

constexpr absl::string_view kMagic = "SHOALSNP";
constexpr size_t kFileHeaderSize = 16;  // magic + length
constexpr absl::string_view kSuffix = ".snap";
constexpr absl::string_view kTempSuffix = ".tmp";

absl::Status ErrnoError(absl::string_view what, const std::string& path, int err) {
  std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  return absl::InternalError(msg);
}

std::string AssociatedData(const SnapshotId& id) {
  std::string ad = "shoal.raft/snapshot-file/";
  AppendBigEndian64(&ad, id.term);
  AppendBigEndian64(&ad, id.index);
  return ad;
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot write", path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("cannot open", path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("cannot stat", path, errno);
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot read", path, errno);
    }
    if (n == 0) break;  // shrank while we read: the checks below report it
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

}  // namespace

absl::Status FsyncDirectory(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoError("cannot open directory", dir, errno);
  if (::fsync(fd.get()) != 0) return ErrnoError("cannot fsync directory", dir, errno);
  return absl::OkStatus();
}

absl::Status EnsureDirectory(const std::string& dir, unsigned mode) {
  if (dir.empty()) return absl::InvalidArgumentError("empty directory path");
  std::vector<std::string> paths;  // every ancestor, then dir itself
  for (size_t pos = dir.find('/', 1); pos != std::string::npos; pos = dir.find('/', pos + 1)) {
    paths.push_back(dir.substr(0, pos));
  }
  paths.push_back(dir);
  for (const std::string& path : paths) {
    if (path.back() == '/') continue;  // "a//b" or a trailing slash
    if (::mkdir(path.c_str(), mode) == 0) {
      // A new directory is only durable once its parent's entry for it is.
      const size_t slash = path.rfind('/');
      const std::string parent = slash == std::string::npos ? "."
                                 : slash == 0               ? "/"
                                                            : path.substr(0, slash);
      if (absl::Status s = FsyncDirectory(parent); !s.ok()) return s;
    } else if (errno != EEXIST) {
      return ErrnoError("cannot create directory", path, errno);
    }
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoError("cannot stat", dir, errno);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SnapshotFiles>> SnapshotFiles::Open(const std::string& dir,
                                                                   const RecordCodec* codec) {
  if (absl::Status s = EnsureDirectory(dir, 0700); !s.ok()) return s;
  return std::unique_ptr<SnapshotFiles>(new SnapshotFiles(dir, codec));
}

std::string SnapshotFiles::FileName(const SnapshotId& id) {
  return absl::StrFormat("%016x-%016x%s", id.term, id.index, std::string(kSuffix));
}

std::optional<SnapshotId> SnapshotFiles::ParseFileName(const std::string& name) {
  // 16 + 1 + 16 hex digits + suffix; anything else (including .tmp files) is not a snapshot.
  if (name.size() != 33 + kSuffix.size() || !absl::EndsWith(name, kSuffix) || name[16] != '-') {
    return std::nullopt;
  }
  SnapshotId id;
  if (!absl::SimpleHexAtoi(name.substr(0, 16), &id.term) ||
      !absl::SimpleHexAtoi(name.substr(17, 16), &id.index)) {
    return std::nullopt;
  }
  if (FileName(id) != name) return std::nullopt;  // e.g. a sign or upper-case digits
  return id;
}

std::string SnapshotFiles::PathOf(const SnapshotId& id) const {
  return absl::StrCat(dir_, "/", FileName(id));
}

absl::Status SnapshotFiles::Write(const raftpb::Snapshot& snapshot) {
  const SnapshotId id{snapshot.metadata().term(), snapshot.metadata().index()};
  std::string serialized;
  if (!snapshot.SerializeToString(&serialized)) {
    return absl::InvalidArgumentError("cannot serialize the snapshot (larger than 2 GiB?)");
  }
  return WritePlaintext(id, serialized);
}

absl::Status SnapshotFiles::WritePlaintext(const SnapshotId& id, absl::string_view plaintext) {
  absl::StatusOr<std::string> framed = codec_->Encode(plaintext, AssociatedData(id));
  if (!framed.ok()) return framed.status();

  std::string header(kMagic);
  AppendLittleEndian64(&header, framed->size());

  const std::string path = PathOf(id);
  const std::string temp = absl::StrCat(path, kTempSuffix);
  {
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return ErrnoError("cannot create", temp, errno);
    if (absl::Status s = WriteAll(fd.get(), header, temp); !s.ok()) return s;
    if (absl::Status s = WriteAll(fd.get(), *framed, temp); !s.ok()) return s;
    if (::fsync(fd.get()) != 0) return ErrnoError("cannot fsync", temp, errno);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) return ErrnoError("cannot rename", temp, errno);
  return FsyncDirectory(dir_);
}

absl::StatusOr<raftpb::Snapshot> SnapshotFiles::Read(const SnapshotId& id) const {
  raftpb::Snapshot snapshot;
  absl::StatusOr<std::string> plain = ReadPlaintext(id, &snapshot);
  if (!plain.ok()) return plain.status();
  return snapshot;
}

absl::Status SnapshotFiles::Reseal(const SnapshotId& id) {
  absl::StatusOr<std::string> plain;
  {
    raftpb::Snapshot parsed;  // only verified; dropped before the new copy is sealed
    plain = ReadPlaintext(id, &parsed);
  }
  if (!plain.ok()) return plain.status();
  return WritePlaintext(id, *plain);
}

absl::StatusOr<std::string> SnapshotFiles::ReadPlaintext(const SnapshotId& id,
                                                         raftpb::Snapshot* parsed) const {
  const std::string path = PathOf(id);
  absl::StatusOr<std::string> contents = ReadAll(path);
  if (!contents.ok()) return contents.status();
  const absl::string_view bytes = *contents;
  const std::string name = absl::StrCat("snapshot file ", path);
  if (bytes.size() < kFileHeaderSize || bytes.substr(0, kMagic.size()) != kMagic) {
    return absl::DataLossError(absl::StrCat(name, " has no valid header (", bytes.size(),
                                            " bytes): truncated or not a snapshot file"));
  }
  const uint64_t length = ReadLittleEndian64(bytes.substr(kMagic.size(), 8));
  const absl::string_view framed = bytes.substr(kFileHeaderSize);
  if (framed.size() != length) {
    return absl::DataLossError(absl::StrCat(name, " is ", bytes.size(),
                                            " bytes but its header says ", kFileHeaderSize + length,
                                            ": truncated or extended"));
  }
  absl::StatusOr<std::string> plain = codec_->Decode(framed, AssociatedData(id), name);
  if (!plain.ok()) return plain.status();
  std::string().swap(*contents);  // the sealed copy is no longer needed (views into it end here)
  if (!parsed->ParseFromString(*plain)) {
    return absl::DataLossError(absl::StrCat(name, " does not hold a parsable snapshot"));
  }
  if (parsed->metadata().term() != id.term || parsed->metadata().index() != id.index) {
    return absl::DataLossError(absl::StrCat(name, " holds the snapshot at term ",
                                            parsed->metadata().term(), " index ",
                                            parsed->metadata().index()));
  }
  return plain;
}

absl::StatusOr<std::vector<SnapshotId>> SnapshotFiles::List() const {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir_.c_str()), ::closedir);
  if (!d) return ErrnoError("cannot list", dir_, errno);
  std::vector<SnapshotId> ids;
  errno = 0;
  while (struct dirent* e = ::readdir(d.get())) {
    if (std::optional<SnapshotId> id = ParseFileName(e->d_name)) ids.push_back(*id);
  }
  if (errno != 0) return ErrnoError("cannot list", dir_, errno);
  std::sort(ids.begin(), ids.end(), [](const SnapshotId& a, const SnapshotId& b) {
    return std::tie(a.index, a.term) < std::tie(b.index, b.term);
  });
  return ids;
}

absl::Status SnapshotFiles::Prune(const std::optional<SnapshotId>& current, int keep) {
  std::vector<std::string> doomed;
  {
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir_.c_str()), ::closedir);
    if (!d) return ErrnoError("cannot list", dir_, errno);
    while (struct dirent* e = ::readdir(d.get())) {
      const std::string name = e->d_name;
      if (!absl::EndsWith(name, kTempSuffix)) continue;
      const std::optional<SnapshotId> id =
          ParseFileName(name.substr(0, name.size() - kTempSuffix.size()));
      if (id && !Pinned(*id)) doomed.push_back(name);
    }
  }
  absl::StatusOr<std::vector<SnapshotId>> ids = List();
  if (!ids.ok()) return ids.status();
  // Walk newest first: unrecorded newer files go, then `keep` files at or before current stay.
  int kept = 0;
  for (auto it = ids->rbegin(); it != ids->rend(); ++it) {
    const bool is_current = current && *it == *current;
    const bool newer = !current || it->index > current->index ||
                       (it->index == current->index && it->term != current->term);
    if (is_current || (!newer && kept < keep)) {
      ++kept;
    } else if (!Pinned(*it)) {
      doomed.push_back(FileName(*it));
    }
  }
  if (doomed.empty()) return absl::OkStatus();
  for (const std::string& name : doomed) {
    const std::string path = absl::StrCat(dir_, "/", name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoError("cannot remove", path, errno);
    }
  }
  return FsyncDirectory(dir_);
}

void SnapshotFiles::Pin(const SnapshotId& id) {
  absl::MutexLock lock(&mu_);
  ++pins_[id];
}

void SnapshotFiles::Unpin(const SnapshotId& id) {
  absl::MutexLock lock(&mu_);
  auto it = pins_.find(id);
  if (it != pins_.end() && --it->second == 0) pins_.erase(it);
}

bool SnapshotFiles::Pinned(const SnapshotId& id) const {
  absl::MutexLock lock(&mu_);
  return pins_.count(id) > 0;
}

}  // namespace shoal::raft
