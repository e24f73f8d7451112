// consumer [--extract-state-dict] FILE: loads FILE with the installed libckptio, prints
// "<format> <tensors>" and one line per tensor "path dtype numel". Exercises the exported
// value-tree API (Value factories, dtype_name, check_tensor_view, for_each_tensor) and, with
// the flag, extract_state_dict on a whole-model pickle (loaded with allow_objects).
#include <iostream>
#include <string>

#include "ckptio/ckptio.h"

int main(int argc, char** argv) {
  const bool extract = argc == 3 && std::string(argv[1]) == "--extract-state-dict";
  if (argc != 2 && !extract) return 2;
  try {
    ckptio::LoadOptions o;
    o.allow_objects = extract;
    ckptio::Checkpoint c = ckptio::load(argv[argc - 1], o);
    if (extract) c = ckptio::extract_state_dict(c);
    size_t n = 0;
    std::string lines;
    for_each_tensor(c.tree.root, [&](const ckptio::ValuePtr& t, const std::string& path) {
      ckptio::Status st = ckptio::check_tensor_view(t->tensor, c.tree.storages, path);
      if (!st.ok()) throw ckptio::Error(st);
      ++n;
      lines += path + " " + std::string(ckptio::dtype_name(t->tensor.dtype)) + " " +
               std::to_string(t->tensor.numel()) + "\n";
    });
    ckptio::ValuePtr probe = ckptio::Value::str("ok");
    std::cout << c.format << " " << n << " " << probe->s << "\n" << lines;
  } catch (const ckptio::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
