#include "formats/safetensors/safetensors_dedup.h"

#include <algorithm>
#include <set>
#include <tuple>

namespace ckptio::safetensors {

namespace {

// Every group _filter_shared_not_shared returns, singletons included, each sorted.
std::vector<std::vector<std::string>> all_groups(const std::vector<TensorSpan>& tensors) {
  // By storage; empty storages share nothing (torch.py skips storage_size 0).
  std::map<uint32_t, std::vector<const TensorSpan*>> by_storage;
  for (const TensorSpan& t : tensors)
    if (t.storage_nbytes != 0) by_storage[t.storage].push_back(&t);
  std::vector<std::vector<std::string>> groups;
  for (auto& [storage, members] : by_storage) {
    // _filter_shared_not_shared: sorted by (start, stop, name), a name joins the current
    // group when it starts before the previous one's stop (the previous, not the furthest:
    // kept as the reference computes it).
    std::sort(members.begin(), members.end(), [](const TensorSpan* a, const TensorSpan* b) {
      return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
    });
    std::vector<std::vector<std::string>> split{{members[0]->name}};
    uint64_t last_stop = members[0]->end;
    for (size_t i = 1; i < members.size(); ++i) {
      if (members[i]->begin >= last_stop)
        split.push_back({members[i]->name});
      else
        split.back().push_back(members[i]->name);
      last_stop = members[i]->end;
    }
    for (auto& g : split) {
      std::sort(g.begin(), g.end());
      groups.push_back(std::move(g));
    }
  }
  return groups;
}

}  // namespace

std::vector<std::vector<std::string>> shared_groups(const std::vector<TensorSpan>& tensors) {
  std::vector<std::vector<std::string>> groups;
  for (auto& g : all_groups(tensors))
    if (g.size() > 1) groups.push_back(std::move(g));
  return groups;
}

Result<std::map<std::string, std::string>> names_to_drop(const std::vector<TensorSpan>& tensors,
                                                         const std::string& file) {
  std::map<std::string, const TensorSpan*> by_name;
  for (const TensorSpan& t : tensors) by_name[t.name] = &t;
  std::map<std::string, std::string> drop;
  // Singletons too: save_model refuses a lone view that covers only part of its storage.
  for (const auto& group : all_groups(tensors)) {
    // The group is sorted: the first complete name is the smallest.
    const std::string* keep = nullptr;
    for (const std::string& n : group)
      if (by_name[n]->complete) {
        keep = &n;
        break;
      }
    if (!keep) {
      std::string names;
      for (const std::string& n : group) names += (names.empty() ? "'" : ", '") + n + "'";
      return Status(Code::kUnsupported,
                    file + ": " + (group.size() > 1 ? "tensors " : "tensor ") + names +
                        (group.size() > 1 ? " share a storage and none covers all of it"
                                          : " covers only part of its storage") +
                        ": no name to keep with dedup"
                        " (safetensors.torch.save_model refuses it too)");
    }
    for (const std::string& n : group)
      if (n != *keep) drop[n] = *keep;
  }
  return drop;
}

}  // namespace ckptio::safetensors
