// Whole-file reads and writes for tests. A file that cannot be read or written throws (the
// test fails naming the path) rather than reading as empty and failing later for no reason.
#pragma once

#include <string>
#include <vector>

namespace test_support {

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& data);

// The names in a directory, sorted.
std::vector<std::string> list_dir(const std::string& dir);

}  // namespace test_support
