// Private to formats/pickle (and the few readers that sniff a pickle's first bytes): the
// opcodes of pickle protocols 0-5, named as Python's pickletools names them, and the one
// table of what follows each opcode in the stream. The reader's error messages, its memo
// pre-pass and the writer all take their opcodes from here; tests/formats/
// pickle_fixtures_test.cc compares the table with pickletools.opcodes of the test Python.
#pragma once

#include <array>
#include <cstdint>

namespace ckptio {
namespace pickle_detail {

enum class Op : uint8_t {
  // Protocol 0: text arguments end at '\n'.
  MARK = '(',
  STOP = '.',
  POP = '0',
  DUP = '2',
  FLOAT = 'F',
  INT = 'I',
  LONG = 'L',
  NONE = 'N',
  PERSID = 'P',
  REDUCE = 'R',
  STRING = 'S',
  UNICODE = 'V',
  APPEND = 'a',
  BUILD = 'b',
  GLOBAL = 'c',
  DICT = 'd',
  GET = 'g',
  INST = 'i',
  LIST = 'l',
  PUT = 'p',
  SETITEM = 's',
  TUPLE = 't',
  // Protocol 1: binary arguments, little-endian.
  POP_MARK = '1',
  BINFLOAT = 'G',  // the one big-endian argument
  BININT = 'J',
  BININT1 = 'K',
  BININT2 = 'M',
  BINPERSID = 'Q',
  BINSTRING = 'T',
  SHORT_BINSTRING = 'U',
  BINUNICODE = 'X',
  EMPTY_LIST = ']',
  APPENDS = 'e',
  BINGET = 'h',
  LONG_BINGET = 'j',
  OBJ = 'o',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  SETITEMS = 'u',
  EMPTY_TUPLE = ')',
  EMPTY_DICT = '}',
  // Protocol 2.
  PROTO = 0x80,
  NEWOBJ = 0x81,
  EXT1 = 0x82,
  EXT2 = 0x83,
  EXT4 = 0x84,
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  LONG1 = 0x8a,
  LONG4 = 0x8b,
  // Protocol 3.
  BINBYTES = 'B',
  SHORT_BINBYTES = 'C',
  // Protocol 4.
  SHORT_BINUNICODE = 0x8c,
  BINUNICODE8 = 0x8d,
  BINBYTES8 = 0x8e,
  EMPTY_SET = 0x8f,
  ADDITEMS = 0x90,
  FROZENSET = 0x91,
  NEWOBJ_EX = 0x92,
  STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94,
  FRAME = 0x95,
  // Protocol 5.
  BYTEARRAY8 = 0x96,
  NEXT_BUFFER = 0x97,
  READONLY_BUFFER = 0x98,
};

constexpr uint8_t op_byte(Op op) { return static_cast<uint8_t>(op); }

// What follows an opcode in the stream (pickletools' ArgumentDescriptor, reduced to what it
// takes to step over the argument without interpreting it).
enum class OpArg : uint8_t {
  kNone,
  kFixed,       // `width` bytes (uint1, uint2, int4, uint4, uint8, float8)
  kCounted,     // a `width`-byte unsigned length, then that many bytes
  kCountedI32,  // a signed 4-byte length, then that many bytes (string4, long4)
  kLine,        // text up to and including '\n'
  kTwoLines,    // two such lines (GLOBAL and INST: module, then name)
};

struct OpInfo {
  Op op;
  const char* name;
  OpArg arg;
  uint8_t width;  // for kFixed, kCounted and kCountedI32
  uint8_t proto;  // the protocol that introduced it
};

// In pickletools.opcodes' order, so that the two read side by side.
inline constexpr OpInfo kOpcodes[] = {
    {Op::INT, "INT", OpArg::kLine, 0, 0},
    {Op::BININT, "BININT", OpArg::kFixed, 4, 1},
    {Op::BININT1, "BININT1", OpArg::kFixed, 1, 1},
    {Op::BININT2, "BININT2", OpArg::kFixed, 2, 1},
    {Op::LONG, "LONG", OpArg::kLine, 0, 0},
    {Op::LONG1, "LONG1", OpArg::kCounted, 1, 2},
    {Op::LONG4, "LONG4", OpArg::kCountedI32, 4, 2},
    {Op::STRING, "STRING", OpArg::kLine, 0, 0},
    {Op::BINSTRING, "BINSTRING", OpArg::kCountedI32, 4, 1},
    {Op::SHORT_BINSTRING, "SHORT_BINSTRING", OpArg::kCounted, 1, 1},
    {Op::BINBYTES, "BINBYTES", OpArg::kCounted, 4, 3},
    {Op::SHORT_BINBYTES, "SHORT_BINBYTES", OpArg::kCounted, 1, 3},
    {Op::BINBYTES8, "BINBYTES8", OpArg::kCounted, 8, 4},
    {Op::BYTEARRAY8, "BYTEARRAY8", OpArg::kCounted, 8, 5},
    {Op::NEXT_BUFFER, "NEXT_BUFFER", OpArg::kNone, 0, 5},
    {Op::READONLY_BUFFER, "READONLY_BUFFER", OpArg::kNone, 0, 5},
    {Op::NONE, "NONE", OpArg::kNone, 0, 0},
    {Op::NEWTRUE, "NEWTRUE", OpArg::kNone, 0, 2},
    {Op::NEWFALSE, "NEWFALSE", OpArg::kNone, 0, 2},
    {Op::UNICODE, "UNICODE", OpArg::kLine, 0, 0},
    {Op::SHORT_BINUNICODE, "SHORT_BINUNICODE", OpArg::kCounted, 1, 4},
    {Op::BINUNICODE, "BINUNICODE", OpArg::kCounted, 4, 1},
    {Op::BINUNICODE8, "BINUNICODE8", OpArg::kCounted, 8, 4},
    {Op::FLOAT, "FLOAT", OpArg::kLine, 0, 0},
    {Op::BINFLOAT, "BINFLOAT", OpArg::kFixed, 8, 1},
    {Op::EMPTY_LIST, "EMPTY_LIST", OpArg::kNone, 0, 1},
    {Op::APPEND, "APPEND", OpArg::kNone, 0, 0},
    {Op::APPENDS, "APPENDS", OpArg::kNone, 0, 1},
    {Op::LIST, "LIST", OpArg::kNone, 0, 0},
    {Op::EMPTY_TUPLE, "EMPTY_TUPLE", OpArg::kNone, 0, 1},
    {Op::TUPLE, "TUPLE", OpArg::kNone, 0, 0},
    {Op::TUPLE1, "TUPLE1", OpArg::kNone, 0, 2},
    {Op::TUPLE2, "TUPLE2", OpArg::kNone, 0, 2},
    {Op::TUPLE3, "TUPLE3", OpArg::kNone, 0, 2},
    {Op::EMPTY_DICT, "EMPTY_DICT", OpArg::kNone, 0, 1},
    {Op::DICT, "DICT", OpArg::kNone, 0, 0},
    {Op::SETITEM, "SETITEM", OpArg::kNone, 0, 0},
    {Op::SETITEMS, "SETITEMS", OpArg::kNone, 0, 1},
    {Op::EMPTY_SET, "EMPTY_SET", OpArg::kNone, 0, 4},
    {Op::ADDITEMS, "ADDITEMS", OpArg::kNone, 0, 4},
    {Op::FROZENSET, "FROZENSET", OpArg::kNone, 0, 4},
    {Op::POP, "POP", OpArg::kNone, 0, 0},
    {Op::DUP, "DUP", OpArg::kNone, 0, 0},
    {Op::MARK, "MARK", OpArg::kNone, 0, 0},
    {Op::POP_MARK, "POP_MARK", OpArg::kNone, 0, 1},
    {Op::GET, "GET", OpArg::kLine, 0, 0},
    {Op::BINGET, "BINGET", OpArg::kFixed, 1, 1},
    {Op::LONG_BINGET, "LONG_BINGET", OpArg::kFixed, 4, 1},
    {Op::PUT, "PUT", OpArg::kLine, 0, 0},
    {Op::BINPUT, "BINPUT", OpArg::kFixed, 1, 1},
    {Op::LONG_BINPUT, "LONG_BINPUT", OpArg::kFixed, 4, 1},
    {Op::MEMOIZE, "MEMOIZE", OpArg::kNone, 0, 4},
    {Op::EXT1, "EXT1", OpArg::kFixed, 1, 2},
    {Op::EXT2, "EXT2", OpArg::kFixed, 2, 2},
    {Op::EXT4, "EXT4", OpArg::kFixed, 4, 2},
    {Op::GLOBAL, "GLOBAL", OpArg::kTwoLines, 0, 0},
    {Op::STACK_GLOBAL, "STACK_GLOBAL", OpArg::kNone, 0, 4},
    {Op::REDUCE, "REDUCE", OpArg::kNone, 0, 0},
    {Op::BUILD, "BUILD", OpArg::kNone, 0, 0},
    {Op::INST, "INST", OpArg::kTwoLines, 0, 0},
    {Op::OBJ, "OBJ", OpArg::kNone, 0, 1},
    {Op::NEWOBJ, "NEWOBJ", OpArg::kNone, 0, 2},
    {Op::NEWOBJ_EX, "NEWOBJ_EX", OpArg::kNone, 0, 4},
    {Op::PROTO, "PROTO", OpArg::kFixed, 1, 2},
    {Op::STOP, "STOP", OpArg::kNone, 0, 0},
    {Op::FRAME, "FRAME", OpArg::kFixed, 8, 4},
    {Op::PERSID, "PERSID", OpArg::kLine, 0, 0},
    {Op::BINPERSID, "BINPERSID", OpArg::kNone, 0, 1},
};

// The table indexed by opcode byte; nullptr for a byte that is no opcode.
inline const OpInfo* op_info(uint8_t b) {
  static const std::array<const OpInfo*, 256> by_byte = [] {
    std::array<const OpInfo*, 256> t{};
    for (const OpInfo& i : kOpcodes) t[op_byte(i.op)] = &i;
    return t;
  }();
  return by_byte[b];
}

// Python's name of the opcode ("BINPUT"); nullptr for a byte that is no opcode.
inline const char* op_name(uint8_t b) {
  const OpInfo* i = op_info(b);
  return i ? i->name : nullptr;
}

}  // namespace pickle_detail
}  // namespace ckptio
