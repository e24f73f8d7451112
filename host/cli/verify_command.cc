#include "host/cli/verify_command.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>

#include "ckptio/ckptio.h"
#include "host/cli/option_check.h"

namespace ckptio::cli {
namespace {

constexpr uint64_t kPiece = 64u << 20;  // plain storages are read in pieces of this size

std::string with_file(const std::string& msg, const std::string& file) {
  return msg.rfind(file, 0) == 0 ? msg : file + ": " + msg;
}

}  // namespace

std::vector<std::string> verify_checkpoint(const VerifyArgs& a, std::string* summary) {
  LoadOptions o;
  o.allow_objects = a.allow_objects;
  o.load_data = false;
  o.threads = 1;
  ContainerCheck container;
  o.format = a.format;
  try {
    // The container layer first, by the format's plugin: every bad record on its own line
    // (opening the file stops at the first problem). It also settles the format.
    container = check_container(a.file, o);
    o.format = container.format;
  } catch (const Error& e) {  // not a file, or no plugin reads it: that is the finding
    return {with_file(e.what(), a.file)};
  }
  o.plugin_options = checked_options(a.limits, "--limit", o.format, OptionUse::kRead, true);
  std::vector<std::string> problems = container.problems;
  const size_t container_problems = problems.size();
  o.verify = !container.offered;  // checksums the container check did not cover

  std::unique_ptr<Reader> r;
  try {
    r = Reader::open(a.file, o);
  } catch (const Error& e) {
    // A CRC error the plugin also saw (it verifies when asked) is already listed.
    std::string msg = e.what();
    bool dup = false;
    for (size_t i = 0; i < container_problems; ++i)
      dup |=
          msg.find(problems[i]) != std::string::npos || problems[i].find(msg) != std::string::npos;
    if (!dup) problems.push_back(with_file(msg, a.file));
    return problems;
  }

  const auto& storages = r->tree().storages;
  uint64_t bytes = 0;
  std::vector<uint8_t> scratch;
  for (uint32_t i = 0; i < storages.size(); ++i) {
    const uint64_t n = storages[i].nbytes;
    // Plain storages in pieces (bounds only); others whole, as their plugin decodes them.
    const uint64_t piece = r->plain(i) ? std::min(n, kPiece) : n;
    try {
      if (scratch.size() < piece) scratch.resize(piece);
      Status st;
      for (uint64_t off = 0; off < n && st.ok(); off += piece)
        st = r->read_range(i, off, scratch.data(), std::min(piece, n - off));
      if (!st.ok()) {
        problems.push_back(with_file(st.message(), a.file) + " (storage '" + storages[i].key +
                           "')");
        continue;
      }
    } catch (const std::bad_alloc&) {
      problems.push_back(a.file + ": storage '" + storages[i].key + "' of " + std::to_string(n) +
                         " bytes: out of memory decoding it");
      continue;
    }
    bytes += n;
  }
  if (summary)
    *summary = a.file + ": ok (" + r->format() + ", " + std::to_string(storages.size()) +
               " storages, " + std::to_string(bytes) + " bytes read" +
               (container.offered
                    ? ", " + std::to_string(container.checksums) + " record CRC32s checked"
                    : "") +
               ")";
  return problems;
}

int run_verify(const VerifyArgs& a) {
  std::string summary;
  std::vector<std::string> problems = verify_checkpoint(a, &summary);
  if (problems.empty()) {
    std::cout << summary << "\n";
    return 0;
  }
  for (const auto& p : problems) std::cout << p << "\n";
  std::cerr << "ckptio: " << a.file << ": " << problems.size()
            << (problems.size() == 1 ? " problem" : " problems") << " found\n";
  return 1;
}

}  // namespace ckptio::cli
