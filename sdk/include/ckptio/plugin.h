/*
 * ckptio plugin ABI: the contract between the ckptio host and a format plugin.
 *
 * Plain C so that a plugin may be built by another compiler, another C++ standard library,
 * or in C. No C++ object, exception or LibTorch type crosses this boundary.
 *
 * Versioning: a plugin exports exactly one symbol, CKPTIO_ENTRY_SYMBOL, of type
 * ckptio_entry_fn. The host passes the ABI version range it speaks; the plugin returns a
 * ckptio_plugin_api whose abi_version lies in that range (or NULL). Every struct starts
 * with struct_size; new fields are only ever appended, so a reader of a struct checks
 * struct_size before touching a field that a newer version added.
 *
 * Ownership:
 *  - Errors are ckptio_status values made with host->make_status(); NULL means success.
 *    The host owns and frees them. A plugin catches every exception at the boundary.
 *  - Strings and arrays passed into a callback are valid only during that call.
 *  - The host owns the byte source (file mapping / pread / memory) and the output sink
 *    (which does the atomic replace). The ckptio_source passed to open() (the struct and
 *    what it points to) stays valid until close() of the reader made from it, so a plugin
 *    may keep the pointer. The plugin owns its ckptio_reader until close().
 *  - Static data returned by the entry (the api table, names) lives as long as the plugin
 *    is loaded; the host never unloads a plugin before process exit.
 *
 * Threading: probe() is pure and may run on any thread. read_storage() may be called
 * concurrently for different storages of one reader. source->read_at() is thread-safe.
 */
#ifndef CKPTIO_PLUGIN_H_
#define CKPTIO_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CKPTIO_ABI_VERSION 1u
#define CKPTIO_ENTRY_SYMBOL "ckptio_plugin_entry"

/* Status codes (int32_t on the wire). */
enum {
  CKPTIO_OK = 0,
  CKPTIO_INVALID_ARGUMENT = 1,
  CKPTIO_NOT_FOUND = 2,
  CKPTIO_CORRUPT = 3,
  CKPTIO_UNSUPPORTED = 4,
  CKPTIO_IO = 5,
  CKPTIO_LIMIT = 6,
  CKPTIO_FORBIDDEN = 7,
  CKPTIO_INTERNAL = 8
};

typedef struct ckptio_status_s* ckptio_status; /* NULL = success */

/* Value kinds of the tree (see formats/value.h in the source tree). */
enum {
  CKPTIO_NONE = 0,
  CKPTIO_BOOL = 1,
  CKPTIO_INT = 2,
  CKPTIO_BIGINT = 3, /* decimal text */
  CKPTIO_FLOAT = 4,
  CKPTIO_STR = 5,    /* UTF-8 text */
  CKPTIO_BYTES = 6,
  CKPTIO_LIST = 7,
  CKPTIO_TUPLE = 8,
  CKPTIO_DICT = 9,
  CKPTIO_TENSOR = 10,
  CKPTIO_GLOBAL = 11, /* dotted name, e.g. "torch.float32" */
  CKPTIO_OBJECT = 12  /* class dotted name; children: args then state, as flags say */
};

/* Node flags. */
enum {
  CKPTIO_DICT_ORDERED = 1u << 0,    /* collections.OrderedDict */
  CKPTIO_DICT_HAS_ATTRS = 1u << 1,  /* one extra child after the pairs: a dict of attributes */
  CKPTIO_OBJECT_HAS_ARGS = 1u << 2, /* first child: constructor args */
  CKPTIO_OBJECT_HAS_STATE = 1u << 3 /* next child: BUILD state */
};

/* Tensor flags. */
enum {
  CKPTIO_TENSOR_REQUIRES_GRAD = 1u << 0,
  CKPTIO_TENSOR_PARAMETER = 1u << 1, /* torch.nn.Parameter */
  CKPTIO_TENSOR_STORAGE = 1u << 2,   /* a bare storage, not a tensor */
  CKPTIO_TENSOR_CONJ = 1u << 3,
  CKPTIO_TENSOR_NEG = 1u << 4
};

#define CKPTIO_NOT_PLAIN UINT64_MAX

/* dtype values are PyTorch's c10::ScalarType codes (0 = uint8, 6 = float32, 15 = bfloat16). */
typedef struct ckptio_storage_desc {
  uint32_t struct_size;
  int32_t dtype;        /* element type declared by the file (uint8 for untyped) */
  const char* key;      /* name in the file */
  const char* device;   /* saved location tag: "cpu", "cuda:1", ... */
  uint64_t nbytes;
  /* Offset of the bytes in the source when they are stored plainly (uncompressed,
   * little-endian, contiguous); CKPTIO_NOT_PLAIN when only read_storage() can produce them. */
  uint64_t file_offset;
} ckptio_storage_desc;

typedef struct ckptio_tensor_desc {
  uint32_t struct_size;
  int32_t dtype;
  uint32_t ndim;
  uint32_t storage; /* index of a storage added before */
  const int64_t* shape;
  const int64_t* strides;
  int64_t storage_offset; /* elements */
  uint32_t flags;         /* CKPTIO_TENSOR_* */
} ckptio_tensor_desc;

typedef struct ckptio_option {
  const char* key;
  const char* value;
} ckptio_option;

/* Plugin-specific settings as key=value strings. Keys every plugin should honour where it
 * applies: "allow_objects" (0/1), "max_depth", "max_memo", "verify" (0/1: check CRCs). */
typedef struct ckptio_options {
  size_t count;
  const ckptio_option* items;
} ckptio_options;

typedef struct ckptio_source {
  uint32_t struct_size;
  void* ctx;
  const char* name;    /* file name for messages */
  uint64_t size;
  const uint8_t* data; /* all bytes when addressable (mapped file, memory), else NULL */
  ckptio_status (*read_at)(void* ctx, uint64_t offset, void* dst, uint64_t n);
} ckptio_source;

typedef struct ckptio_sink {
  uint32_t struct_size;
  void* ctx;
  const char* name;
  ckptio_status (*write)(void* ctx, const void* data, uint64_t n);
} ckptio_sink;

/* Reading: the plugin describes the file through these callbacks, in this order:
 * add_storage() for every storage, then the value tree in pre-order (exactly one root).
 * Containers: begin(kind, count, name, flags) ... children ... end(). A list or tuple has
 * `count` children; a dict has 2*count (key, value, ...) plus its attrs dict when flagged;
 * an object has 0-2 children as flagged, and its class name in `name`.
 * share(id) before a node gives it an id; ref(id) later repeats that node (a DAG). */
typedef struct ckptio_builder {
  uint32_t struct_size;
  void* ctx;
  ckptio_status (*add_storage)(void* ctx, const ckptio_storage_desc* desc);
  /* NONE, BOOL (i), INT (i), BIGINT/STR/BYTES/GLOBAL (text, len), FLOAT (f). */
  ckptio_status (*scalar)(void* ctx, int32_t kind, int64_t i, double f, const char* text,
                          size_t len);
  ckptio_status (*begin)(void* ctx, int32_t kind, uint64_t count, const char* name,
                         size_t name_len, uint32_t flags);
  ckptio_status (*end)(void* ctx);
  ckptio_status (*tensor)(void* ctx, const ckptio_tensor_desc* desc);
  ckptio_status (*share)(void* ctx, uint64_t id);
  ckptio_status (*ref)(void* ctx, uint64_t id);
} ckptio_builder;

/* Writing: a read-only view of the host's tree. Nodes are opaque handles; the same handle
 * reached twice is the same object (keep the sharing). */
typedef const struct ckptio_node_s* ckptio_node;

typedef struct ckptio_tree {
  uint32_t struct_size;
  void* ctx;
  ckptio_node root;
  uint32_t storage_count;
  void (*storage)(void* ctx, uint32_t index, ckptio_storage_desc* out); /* file_offset unused */
  /* The storage's bytes when the host holds them in memory, else NULL. */
  const void* (*storage_data)(void* ctx, uint32_t index);
  ckptio_status (*read_storage)(void* ctx, uint32_t index, uint64_t offset, void* dst,
                                uint64_t n);
  int32_t (*kind)(void* ctx, ckptio_node node);
  uint32_t (*flags)(void* ctx, ckptio_node node); /* dict/object flags; bool value for BOOL */
  int64_t (*int_value)(void* ctx, ckptio_node node);
  double (*float_value)(void* ctx, ckptio_node node);
  /* STR, BYTES, BIGINT, GLOBAL: the text; OBJECT: the class name. */
  const char* (*text)(void* ctx, ckptio_node node, size_t* len);
  size_t (*child_count)(void* ctx, ckptio_node node); /* as in ckptio_builder */
  ckptio_node (*child)(void* ctx, ckptio_node node, size_t index);
  void (*tensor)(void* ctx, ckptio_node node, ckptio_tensor_desc* out);
} ckptio_tree;

typedef struct ckptio_reader_s ckptio_reader;

enum {
  CKPTIO_CAN_READ = 1u << 0,
  CKPTIO_CAN_WRITE = 1u << 1
};

typedef struct ckptio_format_info {
  const char* name;        /* "torch-zip" */
  const char* description; /* one line */
  const char* extension;   /* preferred file extension, ".pt" */
  uint32_t caps;           /* CKPTIO_CAN_* */
} ckptio_format_info;

typedef struct ckptio_host_api {
  uint32_t struct_size;
  uint32_t abi_version;
  /* Makes an error status. `message` is one line naming the file, record or key. */
  ckptio_status (*make_status)(int32_t code, const char* message);
  /* Reading a status a host callback returned (e.g. from source->read_at), and releasing one
   * the plugin will not pass back to the host. */
  int32_t (*status_code)(ckptio_status status);
  const char* (*status_message)(ckptio_status status);
  void (*release_status)(ckptio_status status);
  /* Looks up another plugin's format by name, for formats that wrap others (may be NULL). */
  const struct ckptio_plugin_api* (*find_format)(const char* name, uint32_t* format_index);
} ckptio_host_api;

typedef struct ckptio_plugin_api {
  uint32_t struct_size;
  uint32_t abi_version;
  const char* name;    /* plugin name */
  const char* version; /* plugin version */
  uint32_t format_count;
  const ckptio_format_info* formats;

  /* 0 (not this format) .. 100 (certain) from the first n bytes of a file of file_size
   * bytes. Pure: no I/O, no allocation that can fail loudly. */
  int32_t (*probe)(uint32_t format, const uint8_t* head, size_t n, uint64_t file_size);

  /* Parses the file's structure, describing it through `builder`; on success *out is a
   * reader to fetch storage bytes with and to close. */
  ckptio_status (*open)(uint32_t format, const ckptio_source* source,
                        const ckptio_options* options, const ckptio_builder* builder,
                        ckptio_reader** out);
  /* Fills dst with bytes [offset, offset + n) of storage `index` (little-endian, as
   * PyTorch holds them in memory). */
  ckptio_status (*read_storage)(ckptio_reader* reader, uint32_t index, uint64_t offset,
                                void* dst, uint64_t n);
  void (*close)(ckptio_reader* reader);

  /* Writes the tree to the sink. NULL when no format of the plugin can write. */
  ckptio_status (*save)(uint32_t format, const ckptio_tree* tree, const ckptio_sink* sink,
                        const ckptio_options* options);
} ckptio_plugin_api;

/* The one exported symbol. Returns NULL when no version in [min_abi, max_abi] is spoken. */
typedef const ckptio_plugin_api* (*ckptio_entry_fn)(const ckptio_host_api* host,
                                                     uint32_t min_abi, uint32_t max_abi);

#if defined(_WIN32)
#define CKPTIO_PLUGIN_EXPORT __declspec(dllexport)
#else
#define CKPTIO_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CKPTIO_PLUGIN_H_ */
