// The restricted pickle VM: an iterative loop over opcodes with an explicit stack, a mark
// stack and a sparse memo. Every length is checked against the remaining input before
// anything is allocated; what the allow-listed globals mean lives in pickle_globals.cc.
// A first pass notes which memo keys are ever read: values put under other keys are not
// kept, so torch.save's per-tensor tuples are freed as the pickle runs, not at its end.
//
// Nesting is bounded without recursion: each container's height (longest chain of children
// below it) is tracked, and creating or growing a container past PickleLimits::max_depth is
// a kLimit error. That keeps every later recursive walk of the tree (and shared_ptr
// destruction) shallow. A container that was fetched again from the memo (or DUPed) may be
// referenced from elsewhere, so it may not grow taller: that is what a recursive structure
// would need, and Python's pickler never produces it otherwise.
#include "formats/pickle/unpickler.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "formats/pickle/pickle_error.h"
#include "formats/pickle/pickle_globals.h"
#include "formats/pickle/pickle_numpy.h"
#include "formats/pickle/pickle_opcodes.h"
#include "formats/pickle/pickle_text.h"

namespace ckptio {
namespace {

using pickle_detail::at;
using pickle_detail::CallSite;
using pickle_detail::fail;
using pickle_detail::Op;
using pickle_detail::op_byte;
using pickle_detail::op_name;
using pickle_detail::PickleError;

// Longest LONG1/LONG4 payload converted to decimal (quadratic); ~39000 decimal digits,
// far beyond anything a checkpoint holds (Python itself caps int<->str at 4300 digits).
constexpr size_t kMaxLongBytes = 16384;

bool is_container(Kind k) {
  return k == Kind::kList || k == Kind::kTuple || k == Kind::kDict || k == Kind::kObject;
}

std::string hex_byte(uint8_t b) {
  static const char kHex[] = "0123456789abcdef";
  return std::string("0x") + kHex[b >> 4] + kHex[b & 15];
}

class Machine {
 public:
  Machine(const uint8_t* data, size_t size, const UnpickleOptions& options)
      : data_(data), size_(size), opt_(options) {
    site_.allow_objects = options.allow_objects;
    numpy_.add_storage = &options.inline_storage;
    site_.numpy = &numpy_;
    find_fetched_keys();
  }
  // The memo and the node records may hold many values. Releasing the newest first hands
  // most blocks back next to the top of the heap, where free() merges them without
  // searching the bins.
  ~Machine() {
    release(stack_);
    release(memo_dense_);
    release(keep_);
  }

  Unpickled run() {
    for (;;) {
      op_ = pos_;
      need(1, "opcode");
      uint8_t op = data_[pos_++];
      site_.offset = op_;
      if (op == op_byte(Op::STOP)) {
        ValuePtr v = pop(op);
        pickle_detail::numpy_check_complete(numpy_);
        return Unpickled{v, pos_};
      }
      step(op);
    }
  }

 private:
  struct NodeInfo {
    uint32_t height = 0;
    bool aliased = false;
  };

  // Heights of the containers seen so far, keyed by address: open addressing with linear
  // probing in one flat array, so recording a node costs no allocation (a node-based map
  // cost two per container, and freeing them dominated small-tensor files). Every recorded
  // node is also held strongly in `keep_` while the pickle runs, so its address cannot be
  // reused by another node (most containers end up in the result anyway).
  class NodeTable {
   public:
    NodeInfo* find(const Value* key) {
      if (slots_.empty()) return nullptr;
      for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
        Slot& s = slots_[i];
        if (s.key == key) return &s.info;
        if (!s.key) return nullptr;
      }
    }
    // `key` must not be in the table yet.
    NodeInfo* insert(const Value* key, NodeInfo info) {
      if (2 * (used_ + 1) > slots_.size()) grow();
      ++used_;
      return place(key, info);
    }

   private:
    struct Slot {
      const Value* key = nullptr;
      NodeInfo info;
    };
    size_t slot_of(const Value* key) const {
      // Fibonacci hashing of the address; allocations are 16-byte aligned.
      uint64_t h = (reinterpret_cast<uintptr_t>(key) >> 4) * 0x9E3779B97F4A7C15ull;
      return static_cast<size_t>(h >> shift_);
    }
    NodeInfo* place(const Value* key, NodeInfo info) {
      size_t i = slot_of(key);
      while (slots_[i].key) i = (i + 1) & mask_;
      slots_[i] = Slot{key, info};
      return &slots_[i].info;
    }
    void grow() {
      std::vector<Slot> old = std::move(slots_);
      size_t n = old.empty() ? 256 : 2 * old.size();
      slots_.assign(n, Slot{});
      mask_ = n - 1;
      shift_ = 64;
      for (size_t k = n; k > 1; k >>= 1) --shift_;
      for (const Slot& s : old)
        if (s.key) place(s.key, s.info);
    }
    std::vector<Slot> slots_;
    size_t used_ = 0;
    size_t mask_ = 0;
    unsigned shift_ = 64;
  };

  // ---- memo keys that are read --------------------------------------------------------
  // One pass over the opcodes up to STOP, stepping over each argument as pickle_opcodes.h
  // describes it (as step() reads it), noting the keys of GET, BINGET and LONG_BINGET. Where
  // the stream is malformed the pass stops: the VM fails at the same opcode, so nothing after
  // it runs.
  enum class Arg : uint8_t {
    kInvalid,  // unknown or unsupported opcode: the VM fails there
    kNone,
    kStop,
    kFixed,       // `width` bytes
    kCounted,     // a `width`-byte length, then that many bytes
    kCountedI32,  // the same with a signed 4-byte length
    kLine,
    kTwoLines,
    kGet,      // a `width`-byte memo key
    kGetLine,  // a decimal memo key line
  };
  struct PassArg {
    Arg arg = Arg::kInvalid;
    uint8_t width = 0;
  };
  static Arg pass_arg(pickle_detail::OpArg a) {
    switch (a) {
      case pickle_detail::OpArg::kNone:
        return Arg::kNone;
      case pickle_detail::OpArg::kFixed:
        return Arg::kFixed;
      case pickle_detail::OpArg::kCounted:
        return Arg::kCounted;
      case pickle_detail::OpArg::kCountedI32:
        return Arg::kCountedI32;
      case pickle_detail::OpArg::kLine:
        return Arg::kLine;
      case pickle_detail::OpArg::kTwoLines:
        return Arg::kTwoLines;
    }
    return Arg::kInvalid;
  }
  static const std::array<PassArg, 256>& pass_args() {
    static const std::array<PassArg, 256> table = [] {
      std::array<PassArg, 256> t{};
      for (const pickle_detail::OpInfo& i : pickle_detail::kOpcodes)
        t[op_byte(i.op)] = {pass_arg(i.arg), i.width};
      t[op_byte(Op::STOP)].arg = Arg::kStop;
      t[op_byte(Op::BINGET)].arg = Arg::kGet;
      t[op_byte(Op::LONG_BINGET)].arg = Arg::kGet;
      t[op_byte(Op::GET)].arg = Arg::kGetLine;
      // step() refuses these, so nothing after them is read.
      for (Op op : {Op::EXT1, Op::EXT2, Op::EXT4, Op::NEXT_BUFFER, Op::READONLY_BUFFER})
        t[op_byte(op)] = {Arg::kInvalid, 0};
      return t;
    }();
    return table;
  }
  void find_fetched_keys() {
    const auto& table = pass_args();
    size_t p = 0;
    auto avail = [&](uint64_t n) { return n <= size_ - p; };
    auto le_at = [&](size_t n) {
      uint64_t v = 0;
      for (size_t i = 0; i < n; ++i) v |= uint64_t{data_[p + i]} << (8 * i);
      return v;
    };
    // Skips to after the next newline; the line's start, or null when there is none.
    auto skip_line = [&]() -> const char* {
      const void* nl = p < size_ ? std::memchr(data_ + p, '\n', size_ - p) : nullptr;
      if (!nl) return nullptr;
      const char* start = reinterpret_cast<const char*>(data_ + p);
      p = static_cast<size_t>(static_cast<const uint8_t*>(nl) - data_) + 1;
      return start;
    };
    while (avail(1)) {
      const PassArg a = table[data_[p++]];
      switch (a.arg) {
        case Arg::kInvalid:
        case Arg::kStop:
          return;
        case Arg::kNone:
          break;
        case Arg::kFixed:
          if (!avail(a.width)) return;
          p += a.width;
          break;
        case Arg::kCounted:
        case Arg::kCountedI32: {
          if (!avail(a.width)) return;
          uint64_t n = le_at(a.width);
          p += a.width;
          if (a.arg == Arg::kCountedI32 && static_cast<int32_t>(static_cast<uint32_t>(n)) < 0)
            return;
          if (!avail(n)) return;
          p += n;
          break;
        }
        case Arg::kLine:
          if (!skip_line()) return;
          break;
        case Arg::kTwoLines:
          if (!skip_line() || !skip_line()) return;
          break;
        case Arg::kGet:
          if (!avail(a.width)) return;
          note_fetched(le_at(a.width));
          p += a.width;
          break;
        case Arg::kGetLine: {
          const char* b = skip_line();
          if (!b) return;
          const char* e = reinterpret_cast<const char*>(data_ + p - 1);
          uint64_t key = 0;
          auto r = std::from_chars(b, e, key);
          if (b == e || r.ec != std::errc() || r.ptr != e) return;
          note_fetched(key);
          break;
        }
      }
    }
  }
  void note_fetched(uint64_t key) {
    if (key < kFetchedBits) {
      if (key >= fetched_bits_.size()) fetched_bits_.resize(key + 1);
      fetched_bits_[key] = true;
    } else {
      fetched_large_.insert(key);
    }
  }
  bool fetched(uint64_t key) const {
    if (key < kFetchedBits) return key < fetched_bits_.size() && fetched_bits_[key];
    return fetched_large_.count(key) != 0;
  }

  static void release(std::vector<ValuePtr>& v) {
    while (!v.empty()) v.pop_back();
  }

  // ---- input -------------------------------------------------------------------------
  void need(uint64_t n, const char* what) {
    if (n > size_ - pos_)
      fail(Code::kCorrupt, std::string("truncated pickle: ") + what + at(op_) + " needs " +
                               std::to_string(n) + " bytes, " + std::to_string(size_ - pos_) +
                               " left");
  }
  uint64_t le(size_t n, const char* what) {
    need(n, what);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{data_[pos_ + i]} << (8 * i);
    pos_ += n;
    return v;
  }
  std::string_view bytes(uint64_t n, const char* what) {
    need(n, what);
    if (n > opt_.limits.max_string)
      fail(Code::kLimit, std::string(what) + at(op_) + " is " + std::to_string(n) +
                             " bytes, over the limit of " + std::to_string(opt_.limits.max_string));
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  // A protocol-0 text argument up to (not including) '\n'.
  std::string_view line(const char* what) {
    const void* nl = pos_ < size_ ? std::memchr(data_ + pos_, '\n', size_ - pos_) : nullptr;
    if (!nl)
      fail(Code::kCorrupt,
           std::string("truncated pickle: ") + what + at(op_) + " has no terminating newline");
    size_t n = static_cast<const uint8_t*>(nl) - (data_ + pos_);
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n + 1;
    return s;
  }

  // ---- stack ---------------------------------------------------------------------------
  size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(ValuePtr v) {
    if (stack_.size() >= opt_.limits.max_stack)
      fail(Code::kLimit,
           "pickle stack exceeds " + std::to_string(opt_.limits.max_stack) + " values" + at(op_));
    stack_.push_back(std::move(v));
  }
  ValuePtr pop(uint8_t op) {
    if (stack_.size() <= fence()) underflow(op);
    ValuePtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  ValuePtr& top(uint8_t op) {
    if (stack_.size() <= fence()) underflow(op);
    return stack_.back();
  }
  [[noreturn]] void underflow(uint8_t op) {
    fail(Code::kCorrupt, std::string("stack underflow in ") + op_name(op) + at(op_));
  }
  std::vector<ValuePtr> pop_mark(uint8_t op) {
    if (marks_.empty())
      fail(Code::kCorrupt, std::string(op_name(op)) + " without a MARK" + at(op_));
    size_t k = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> items(std::make_move_iterator(stack_.begin() + k),
                                std::make_move_iterator(stack_.end()));
    stack_.resize(k);
    return items;
  }

  // ---- memo ----------------------------------------------------------------------------
  // Pickles number their memo keys 0, 1, 2, ... so keys live in a dense array indexed by
  // key; a key far beyond the number of entries (only a hand-made pickle has one) goes to a
  // sparse map instead, so the array stays O(entries) whatever the keys. A key is in at
  // most one of the two.
  size_t memo_size() const { return memo_dense_count_ + memo_sparse_.size(); }
  ValuePtr* memo_find(uint64_t key) {
    if (key < memo_dense_.size() && memo_dense_[key]) return &memo_dense_[key];
    if (memo_sparse_.empty()) return nullptr;
    auto it = memo_sparse_.find(key);
    return it == memo_sparse_.end() ? nullptr : &it->second;
  }
  void memo_put(uint64_t key, uint8_t op) {
    // A key no GET ever reads holds a placeholder: the value is freed as soon as the pickle
    // is done with it (torch.save memoizes every tuple of every tensor), yet the entry still
    // counts for MEMOIZE and the limit.
    const ValuePtr& top_value = top(op);
    const ValuePtr& v = fetched(key) ? top_value : placeholder_;
    if (ValuePtr* slot = memo_find(key)) {
      *slot = v;
      return;
    }
    if (memo_size() >= opt_.limits.max_memo)
      fail(Code::kLimit,
           "pickle memo exceeds " + std::to_string(opt_.limits.max_memo) + " entries" + at(op_));
    const uint64_t dense_limit = 1024 + 2 * uint64_t{memo_size()};
    if (key >= memo_dense_.size() && key < dense_limit)
      memo_dense_.resize(std::max<uint64_t>(
          key + 1, std::min<uint64_t>(2 * uint64_t{memo_dense_.size()}, dense_limit)));
    if (key < memo_dense_.size()) {
      memo_dense_[key] = v;
      ++memo_dense_count_;
    } else {
      memo_sparse_.emplace(key, v);
    }
  }
  void memo_get(uint64_t key) {
    ValuePtr* v = memo_find(key);
    if (!v) fail(Code::kCorrupt, "memo key " + std::to_string(key) + " not found" + at(op_));
    if (*v == placeholder_)
      fail(Code::kInternal, "memo key " + std::to_string(key) + " was dropped" + at(op_));
    mark_aliased(*v);
    push(*v);
  }

  // ---- nesting bookkeeping -------------------------------------------------------------
  NodeInfo* info(const ValuePtr& v) { return nodes_.find(v.get()); }
  template <class Fn>
  static void for_children(const Value& v, Fn&& fn) {
    for (const auto& c : v.items) fn(c);
    for (const auto& [k, c] : v.entries) {
      fn(k);
      fn(c);
    }
    fn(v.attrs);
    fn(v.args);
    fn(v.state);
  }
  void too_deep() {
    fail(Code::kLimit,
         "pickle nesting deeper than " + std::to_string(opt_.limits.max_depth) + at(op_));
  }
  // A container with a few children, each a scalar or such a container itself, has height
  // 1 or 2, read off its children faster than any lookup: such nodes (every tensor's
  // storage id, size, stride and argument tuples) are not recorded unless they become
  // aliased or grow. The bounds keep recomputing it cheap; an unrecorded node is a child
  // once (it reaches the stack again only through the memo or DUP, which record it).
  static constexpr size_t kMaxFlatChildren = 16;
  static bool is_flat(const Value& v) {
    if (v.items.size() > kMaxFlatChildren || v.entries.size() > kMaxFlatChildren || v.attrs ||
        v.args || v.state)
      return false;
    for (const auto& c : v.items)
      if (c && is_container(c->kind)) return false;
    for (const auto& [k, c] : v.entries)
      if ((k && is_container(k->kind)) || (c && is_container(c->kind))) return false;
    return true;
  }
  // 1 or 2 as above, 0 when the height takes more than that to find.
  static uint32_t shallow_height(const Value& v) {
    if (v.items.size() > kMaxFlatChildren || v.entries.size() > kMaxFlatChildren || v.attrs ||
        v.args || v.state)
      return 0;
    uint32_t h = 1;
    auto child = [&h](const ValuePtr& c) {
      if (!c || !is_container(c->kind)) return true;
      h = 2;
      return is_flat(*c);
    };
    for (const auto& c : v.items)
      if (!child(c)) return 0;
    for (const auto& [k, c] : v.entries)
      if (!child(k) || !child(c)) return 0;
    return h;
  }
  // Height of a value; computes (depth-limited) and records it for nodes not seen before.
  uint32_t height(const ValuePtr& v, size_t depth = 0) {
    if (!v || !is_container(v->kind)) return 0;
    if (uint32_t h = shallow_height(*v)) {
      if (h > opt_.limits.max_depth) too_deep();
      return h;
    }
    if (NodeInfo* i = info(v)) return i->height;
    if (depth > opt_.limits.max_depth) too_deep();
    uint32_t h = 0;
    for_children(*v, [&](const ValuePtr& c) { h = std::max(h, height(c, depth + 1)); });
    ++h;
    if (h > opt_.limits.max_depth) too_deep();
    keep_.push_back(v);
    nodes_.insert(v.get(), NodeInfo{h, false});
    return h;
  }
  // The record of a container, made now if it has none (a flat one).
  NodeInfo* record(const ValuePtr& v) {
    uint32_t h = height(v);
    if (NodeInfo* i = info(v)) return i;
    keep_.push_back(v);
    return nodes_.insert(v.get(), NodeInfo{h, false});
  }
  void mark_aliased(const ValuePtr& v) {
    if (!v || !is_container(v->kind)) return;
    record(v)->aliased = true;
  }
  // `target` gains a child of height `child_height` (levels = 1, or more for a set's
  // private args tuple and list).
  void grow(const ValuePtr& target, uint32_t child_height, uint32_t levels = 1) {
    NodeInfo* i = record(target);
    uint32_t h = child_height + levels;
    if (h <= i->height) return;
    if (i->aliased)
      fail(Code::kUnsupported,
           std::string("a container is extended after being referenced again (a recursive "
                       "structure)") +
               at(op_) + "; such pickles are not supported");
    if (h > opt_.limits.max_depth) too_deep();
    i->height = h;
  }

  // ---- values --------------------------------------------------------------------------
  ValuePtr container(ValuePtr v) {
    height(v);
    return v;
  }
  ValuePtr make_int_from_decimal(std::string_view text, const char* what) {
    if (text.size() > 2 * kMaxLongBytes * 3)
      fail(Code::kLimit, std::string(what) + at(op_) + " has too many digits");
    auto d = pickle_detail::normalize_decimal(text);
    if (!d) fail(Code::kCorrupt, std::string("malformed ") + what + at(op_));
    int64_t v;
    if (pickle_detail::decimal_to_int64(*d, &v)) return Value::integer(v);
    return Value::big_integer(*d);
  }
  ValuePtr make_long(const uint8_t* p, size_t n) {
    if (n > kMaxLongBytes)
      fail(Code::kLimit, "integer of " + std::to_string(n) + " bytes" + at(op_) +
                             " exceeds the limit of " + std::to_string(kMaxLongBytes));
    int64_t v;
    if (pickle_detail::twos_complement_to_int64(p, n, &v)) return Value::integer(v);
    return Value::big_integer(pickle_detail::twos_complement_to_decimal(p, n));
  }
  ValuePtr make_unicode(std::string_view s) {
    if (!pickle_detail::is_valid_utf8(s, true))
      fail(Code::kCorrupt, "invalid UTF-8 in string" + at(op_));
    return Value::str(std::string(s));
  }
  ValuePtr make_set(const char* cls, std::vector<ValuePtr> items) {
    return container(Value::object(cls, Value::tuple({Value::list(std::move(items))})));
  }
  std::string ascii_line(const char* what) {
    std::string_view s = line(what);
    for (char c : s)
      if (static_cast<unsigned char>(c) >= 0x80 || c == '\r')
        fail(Code::kCorrupt, std::string("non-ASCII ") + what + at(op_));
    return std::string(s);
  }

  void append_items(uint8_t op, const ValuePtr& target, std::vector<ValuePtr> items) {
    uint32_t h = 0;
    for (const auto& x : items) h = std::max(h, height(x));
    if (target->kind == Kind::kList ||
        (target->kind == Kind::kObject && !pickle_detail::is_allow_listed(target->s))) {
      grow(target, h);
      for (auto& x : items) target->items.push_back(std::move(x));
      return;
    }
    fail(Code::kCorrupt, std::string(op_name(op)) + " on a " + kind_name(target->kind) + at(op_));
  }
  void set_items(uint8_t op, const ValuePtr& target, std::vector<ValuePtr> kv) {
    if (kv.size() % 2)
      fail(Code::kCorrupt, std::string(op_name(op)) + " with an odd number of items" + at(op_));
    if (target->kind != Kind::kDict &&
        !(target->kind == Kind::kObject && !pickle_detail::is_allow_listed(target->s)))
      fail(Code::kCorrupt, std::string(op_name(op)) + " on a " + kind_name(target->kind) + at(op_));
    uint32_t h = 0;
    for (const auto& x : kv) h = std::max(h, height(x));
    grow(target, h);
    for (size_t i = 0; i < kv.size(); i += 2)
      target->entries.emplace_back(std::move(kv[i]), std::move(kv[i + 1]));
  }
  void add_to_set(const ValuePtr& target, std::vector<ValuePtr> items) {
    if (target->kind != Kind::kObject || target->s != "builtins.set" || !target->args ||
        target->args->items.size() != 1 || target->args->items[0]->kind != Kind::kList)
      fail(Code::kCorrupt, std::string("ADDITEMS on a ") + kind_name(target->kind) + at(op_));
    uint32_t h = 0;
    for (const auto& x : items) h = std::max(h, height(x));
    grow(target, h, 3);
    // The args tuple and list were made by EMPTY_SET / set() and are private to the set.
    const ValuePtr& tuple = target->args;
    const ValuePtr& list = tuple->items[0];
    if (NodeInfo* i = info(list)) i->height = std::max(i->height, h + 1);
    if (NodeInfo* i = info(tuple)) i->height = std::max(i->height, h + 2);
    for (auto& x : items) list->items.push_back(std::move(x));
  }

  // UnpickleOptions::torchscript_objects: the `__torch__` namespace of TorchScript classes.
  static bool is_torchscript_class(const std::string& dotted) {
    return dotted.compare(0, 10, "__torch__.") == 0;
  }
  ValuePtr global(const std::string& module, const std::string& name) {
    vet_global(module, name);
    if (opt_.torchscript_objects &&
        (module == "__torch__" || module.compare(0, 10, "__torch__.") == 0))
      return Value::global(module + "." + name);
    return pickle_detail::resolve_global(module, name, site_);
  }

  void vet_global(const std::string& module, const std::string& name) {
    if (!opt_.check_global) return;
    Status st = opt_.check_global(pickle_detail::normalize_global_name(module, name));
    if (!st.ok()) fail(st.code(), st.message() + at(op_));
  }

  void call_result(ValuePtr result, const ValuePtr& args) {
    if (!result) fail(Code::kInternal, "call produced no value" + at(op_));
    height(result);
    // A call that returns one of its arguments (restore_type_tag, build_intlist) hands back
    // a node that is also inside the args tuple, which may be memoized.
    if (args)
      for (const auto& a : args->items)
        if (a == result) mark_aliased(result);
    push(std::move(result));
  }

  void persistent(ValuePtr pid) {
    if (!opt_.persistent_load)
      fail(Code::kCorrupt, "persistent id" + at(op_) +
                               " but the caller gave no persistent_load (not a checkpoint "
                               "pickle?)");
    Result<ValuePtr> r = opt_.persistent_load(pid);
    if (!r.ok()) fail(r.status().code(), r.status().message() + " (persistent id" + at(op_) + ")");
    ValuePtr v = std::move(r).value();
    if (!v) fail(Code::kCorrupt, "persistent_load returned nothing" + at(op_));
    mark_aliased(v);  // the hook may hand out the same node again
    push(std::move(v));
  }

  void step(uint8_t op) {
    switch (static_cast<Op>(op)) {
      case Op::PROTO: {
        uint64_t proto = le(1, "PROTO");
        if (proto > 5)
          fail(Code::kUnsupported,
               "pickle protocol " + std::to_string(proto) + at(op_) + " is newer than 5");
        return;
      }
      case Op::FRAME:
        le(8, "FRAME");
        return;  // framing is only a read-ahead hint
      case Op::MARK:
        if (marks_.size() >= opt_.limits.max_depth)
          fail(Code::kLimit,
               "more than " + std::to_string(opt_.limits.max_depth) + " open MARKs" + at(op_));
        marks_.push_back(stack_.size());
        return;
      case Op::POP:
        if (stack_.size() > fence()) {
          stack_.pop_back();
        } else if (!marks_.empty()) {
          marks_.pop_back();  // Python pops the mark when the stack above it is empty
        } else {
          underflow(op);
        }
        return;
      case Op::POP_MARK:
        pop_mark(op);
        return;
      case Op::DUP: {
        ValuePtr v = top(op);
        mark_aliased(v);
        push(std::move(v));
        return;
      }

      // ---- scalars ---------------------------------------------------------------------
      case Op::NONE:
        push(Value::none());
        return;
      case Op::NEWTRUE:
        push(Value::boolean(true));
        return;
      case Op::NEWFALSE:
        push(Value::boolean(false));
        return;
      case Op::BININT1:
        push(Value::integer(static_cast<int64_t>(le(1, "BININT1"))));
        return;
      case Op::BININT2:
        push(Value::integer(static_cast<int64_t>(le(2, "BININT2"))));
        return;
      case Op::BININT:
        push(Value::integer(static_cast<int32_t>(static_cast<uint32_t>(le(4, "BININT")))));
        return;
      case Op::INT: {
        std::string_view s = line("INT");
        if (s == "00" || s == "01") {
          push(Value::boolean(s == "01"));
          return;
        }
        if (!s.empty() && (s.back() == 'L')) s.remove_suffix(1);
        push(make_int_from_decimal(s, "INT"));
        return;
      }
      case Op::LONG: {
        std::string_view s = line("LONG");
        if (!s.empty() && s.back() == 'L') s.remove_suffix(1);
        push(make_int_from_decimal(s, "LONG"));
        return;
      }
      case Op::LONG1: {
        uint64_t n = le(1, "LONG1");
        std::string_view b = bytes(n, "LONG1");
        push(make_long(reinterpret_cast<const uint8_t*>(b.data()), n));
        return;
      }
      case Op::LONG4: {
        int32_t n = static_cast<int32_t>(static_cast<uint32_t>(le(4, "LONG4")));
        if (n < 0) fail(Code::kCorrupt, "LONG4 with negative length" + at(op_));
        if (static_cast<size_t>(n) > kMaxLongBytes) make_long(nullptr, n);  // throws kLimit
        std::string_view b = bytes(static_cast<uint64_t>(n), "LONG4");
        push(make_long(reinterpret_cast<const uint8_t*>(b.data()), b.size()));
        return;
      }
      case Op::FLOAT: {
        std::string_view s = line("FLOAT");
        double d = 0;
        auto r = std::from_chars(s.data(), s.data() + s.size(), d);
        if (r.ec != std::errc() || r.ptr != s.data() + s.size())
          fail(Code::kCorrupt, "malformed FLOAT" + at(op_));
        push(Value::floating(d));
        return;
      }
      case Op::BINFLOAT: {
        need(8, "BINFLOAT");
        uint64_t u = 0;
        for (int i = 0; i < 8; ++i) u = (u << 8) | data_[pos_ + i];  // big-endian on disk
        pos_ += 8;
        double d;
        std::memcpy(&d, &u, 8);
        push(Value::floating(d));
        return;
      }

      // ---- strings and bytes -----------------------------------------------------------
      case Op::STRING: {
        auto s = pickle_detail::decode_string_literal(line("STRING"));
        if (!s) fail(Code::kCorrupt, "malformed STRING literal" + at(op_));
        push(Value::str(pickle_detail::py2_str_to_utf8(*s)));
        return;
      }
      case Op::BINSTRING: {
        int32_t n = static_cast<int32_t>(static_cast<uint32_t>(le(4, "BINSTRING")));
        if (n < 0) fail(Code::kCorrupt, "BINSTRING with negative length" + at(op_));
        push(Value::str(pickle_detail::py2_str_to_utf8(bytes(n, "BINSTRING"))));
        return;
      }
      case Op::SHORT_BINSTRING:
        push(Value::str(
            pickle_detail::py2_str_to_utf8(bytes(le(1, "SHORT_BINSTRING"), "SHORT_BINSTRING"))));
        return;
      case Op::UNICODE: {
        auto s = pickle_detail::decode_raw_unicode_escape(line("UNICODE"));
        if (!s) fail(Code::kCorrupt, "malformed UNICODE escape" + at(op_));
        push(Value::str(std::move(*s)));
        return;
      }
      case Op::BINUNICODE:
        push(make_unicode(bytes(le(4, "BINUNICODE"), "BINUNICODE")));
        return;
      case Op::SHORT_BINUNICODE:
        push(make_unicode(bytes(le(1, "SHORT_BINUNICODE"), "SHORT_BINUNICODE")));
        return;
      case Op::BINUNICODE8:
        push(make_unicode(bytes(le(8, "BINUNICODE8"), "BINUNICODE8")));
        return;
      case Op::BINBYTES:
        push(Value::bytes(std::string(bytes(le(4, "BINBYTES"), "BINBYTES"))));
        return;
      case Op::SHORT_BINBYTES:
        push(Value::bytes(std::string(bytes(le(1, "SHORT_BINBYTES"), "SHORT_BINBYTES"))));
        return;
      case Op::BINBYTES8:
        push(Value::bytes(std::string(bytes(le(8, "BINBYTES8"), "BINBYTES8"))));
        return;
      case Op::BYTEARRAY8: {
        // Same node as bytearray(...) through REDUCE at lower protocols.
        std::string b(bytes(le(8, "BYTEARRAY8"), "BYTEARRAY8"));
        push(container(
            Value::object("builtins.bytearray", Value::tuple({Value::bytes(std::move(b))}))));
        return;
      }

      // ---- containers ------------------------------------------------------------------
      case Op::EMPTY_DICT:
        push(container(Value::dict()));
        return;
      case Op::EMPTY_LIST:
        push(container(Value::list()));
        return;
      case Op::EMPTY_TUPLE:
        push(container(Value::tuple()));
        return;
      case Op::EMPTY_SET:
        push(make_set("builtins.set", {}));
        return;
      case Op::LIST:
        push(container(Value::list(pop_mark(op))));
        return;
      case Op::TUPLE:
        push(container(Value::tuple(pop_mark(op))));
        return;
      case Op::FROZENSET:
        push(make_set("builtins.frozenset", pop_mark(op)));
        return;
      case Op::TUPLE1:
      case Op::TUPLE2:
      case Op::TUPLE3: {
        size_t n = op - op_byte(Op::TUPLE1) + 1;
        if (stack_.size() < fence() + n) underflow(op);
        std::vector<ValuePtr> items(std::make_move_iterator(stack_.end() - n),
                                    std::make_move_iterator(stack_.end()));
        stack_.resize(stack_.size() - n);
        push(container(Value::tuple(std::move(items))));
        return;
      }
      case Op::DICT: {
        std::vector<ValuePtr> kv = pop_mark(op);
        ValuePtr d = container(Value::dict());
        set_items(op, d, std::move(kv));
        push(std::move(d));
        return;
      }
      case Op::APPEND: {
        ValuePtr v = pop(op);
        std::vector<ValuePtr> items;
        items.push_back(std::move(v));
        append_items(op, top(op), std::move(items));
        return;
      }
      case Op::APPENDS: {
        std::vector<ValuePtr> items = pop_mark(op);
        append_items(op, top(op), std::move(items));
        return;
      }
      case Op::SETITEM: {
        ValuePtr v = pop(op);
        ValuePtr k = pop(op);
        set_items(op, top(op), {std::move(k), std::move(v)});
        return;
      }
      case Op::SETITEMS: {
        std::vector<ValuePtr> kv = pop_mark(op);
        set_items(op, top(op), std::move(kv));
        return;
      }
      case Op::ADDITEMS: {
        std::vector<ValuePtr> items = pop_mark(op);
        add_to_set(top(op), std::move(items));
        return;
      }

      // ---- memo ------------------------------------------------------------------------
      case Op::BINPUT:
        memo_put(le(1, "BINPUT"), op);
        return;
      case Op::LONG_BINPUT:
        memo_put(le(4, "LONG_BINPUT"), op);
        return;
      case Op::PUT:
        memo_put(memo_key_text("PUT"), op);
        return;
      case Op::MEMOIZE:
        memo_put(memo_size(), op);
        return;
      case Op::BINGET:
        memo_get(le(1, "BINGET"));
        return;
      case Op::LONG_BINGET:
        memo_get(le(4, "LONG_BINGET"));
        return;
      case Op::GET:
        memo_get(memo_key_text("GET"));
        return;

      // ---- globals and calls -----------------------------------------------------------
      case Op::GLOBAL: {
        std::string module = ascii_line("GLOBAL module");
        std::string name = ascii_line("GLOBAL name");
        push(global(module, name));
        return;
      }
      case Op::STACK_GLOBAL: {
        ValuePtr name = pop(op);
        ValuePtr module = pop(op);
        if (name->kind != Kind::kStr || module->kind != Kind::kStr)
          fail(Code::kCorrupt, "STACK_GLOBAL needs two strings" + at(op_));
        push(global(module->s, name->s));
        return;
      }
      case Op::INST: {
        std::string module = ascii_line("INST module");
        std::string name = ascii_line("INST name");
        ValuePtr args = container(Value::tuple(pop_mark(op)));
        vet_global(module, name);
        ValuePtr cls = pickle_detail::resolve_global(module, name, site_);
        call_result(pickle_detail::reduce(cls, args, site_), args);
        return;
      }
      case Op::OBJ: {
        std::vector<ValuePtr> items = pop_mark(op);
        if (items.empty()) fail(Code::kCorrupt, "OBJ without a class" + at(op_));
        ValuePtr cls = items.front();
        ValuePtr args = container(Value::tuple({items.begin() + 1, items.end()}));
        call_result(pickle_detail::reduce(cls, args, site_), args);
        return;
      }
      case Op::REDUCE: {
        ValuePtr args = pop(op);
        ValuePtr fn = pop(op);
        if (opt_.torchscript_objects && fn->kind == Kind::kGlobal &&
            fn->s == "torch._utils._rebuild_qtensor" && args->kind == Kind::kTuple) {
          call_result(Value::object(fn->s, args), args);
          return;
        }
        call_result(pickle_detail::reduce(fn, args, site_), args);
        return;
      }
      case Op::NEWOBJ: {
        ValuePtr args = pop(op);
        ValuePtr cls = pop(op);
        if (opt_.torchscript_objects && cls->kind == Kind::kGlobal &&
            is_torchscript_class(cls->s) && args->kind == Kind::kTuple) {
          call_result(Value::object(cls->s, args), args);
          return;
        }
        call_result(pickle_detail::new_object(cls, args, site_), args);
        return;
      }
      case Op::NEWOBJ_EX: {
        ValuePtr kwargs = pop(op);
        ValuePtr args = pop(op);
        ValuePtr cls = pop(op);
        if (kwargs->kind != Kind::kDict)
          fail(Code::kCorrupt, "NEWOBJ_EX keyword arguments must be a dict" + at(op_));
        if (!kwargs->entries.empty())
          fail(Code::kUnsupported, "NEWOBJ_EX with keyword arguments" + at(op_));
        call_result(pickle_detail::new_object(cls, args, site_), args);
        return;
      }
      case Op::BUILD: {
        ValuePtr state = pop(op);
        ValuePtr& obj = top(op);
        if (obj->kind == Kind::kDict || obj->kind == Kind::kObject) grow(obj, height(state));
        pickle_detail::build(obj, state, site_);
        return;
      }
      case Op::BINPERSID: {
        ValuePtr pid = pop(op);
        persistent(std::move(pid));
        return;
      }
      case Op::PERSID:
        persistent(Value::str(ascii_line("PERSID")));
        return;

      case Op::EXT1:
      case Op::EXT2:
      case Op::EXT4:
        fail(Code::kUnsupported, std::string(op_name(op)) + " (copyreg extension codes)" + at(op_) +
                                     " is not supported");
      case Op::NEXT_BUFFER:
      case Op::READONLY_BUFFER:
        fail(Code::kUnsupported,
             std::string(op_name(op)) + " (out-of-band buffers)" + at(op_) + " is not supported");
      default:
        fail(Code::kCorrupt, "unknown pickle opcode " + hex_byte(op) + at(op_));
    }
  }

  uint64_t memo_key_text(const char* what) {
    std::string_view s = line(what);
    uint64_t v = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size())
      fail(Code::kCorrupt, std::string("malformed ") + what + " index" + at(op_));
    return v;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  size_t op_ = 0;
  const UnpickleOptions& opt_;
  CallSite site_;
  pickle_detail::NumpyContext numpy_;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  // Keys below kFetchedBits in a bitmap (at most 512 KiB), any others in a set.
  static constexpr uint64_t kFetchedBits = uint64_t{1} << 22;
  std::vector<bool> fetched_bits_;
  std::unordered_set<uint64_t> fetched_large_;
  const ValuePtr placeholder_ = Value::none();
  std::vector<ValuePtr> memo_dense_;
  size_t memo_dense_count_ = 0;
  std::unordered_map<uint64_t, ValuePtr> memo_sparse_;
  NodeTable nodes_;
  std::vector<ValuePtr> keep_;
};

}  // namespace

Result<Unpickled> unpickle(const uint8_t* data, size_t size, const UnpickleOptions& options) {
  std::string prefix = options.context.empty() ? "" : options.context + ": ";
  try {
    Machine m(data, size, options);
    return m.run();
  } catch (const PickleError& e) {
    // Errors from the persistent_load hook usually carry the same context already.
    if (!prefix.empty() && e.message.compare(0, prefix.size(), prefix) == 0)
      return Status(e.code, e.message);
    return Status(e.code, prefix + e.message);
  } catch (const std::bad_alloc&) {
    return Status(Code::kLimit, prefix + "out of memory while unpickling");
  } catch (const std::exception& e) {
    return Status(Code::kInternal, prefix + "unpickler failed: " + e.what());
  }
}

}  // namespace ckptio
