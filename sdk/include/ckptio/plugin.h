/*
 * ckptio plugin ABI: the contract between the ckptio host and a format plugin.
 *
 * Plain C so that a plugin may be built by another compiler, another C++ standard library,
 * or in C. No C++ object, exception or LibTorch type crosses this boundary.
 *
 * Versioning: a plugin exports exactly one symbol, CKPTIO_ENTRY_SYMBOL, of type
 * ckptio_entry_fn. The host passes the ABI version range it speaks; the plugin returns a
 * ckptio_plugin_api whose abi_version lies in that range (or NULL). Every struct that can
 * grow starts with struct_size; new fields are only ever appended, so a reader of a struct
 * checks CKPTIO_HAS_FIELD before touching a field that a newer version added. Three small
 * structs are frozen as version 1 has them and never grow, since they have no struct_size:
 * ckptio_option, ckptio_options and ckptio_format_info (a later version that needs more adds
 * a new struct beside them). tests/abi/abi_layout_v1.c pins every version-1 layout.
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
 *
 * Version 2 adds checkpoints of several files (a Hugging Face sharded directory, an index
 * file and its shards, a torch.distributed.checkpoint directory), all by appended fields:
 *  - Reading: the source may be a directory (ckptio_source::kind), listed for
 *    probe_directory() and open(). open() asks the host for a member file by its name
 *    relative to the checkpoint (ckptio_source::open_member); the host opens it as it opens
 *    a single file (mapped, bounds-checked, thread-safe reads) and refuses a name that is
 *    absolute, has a ".." component or resolves outside the checkpoint's directory. Each
 *    storage names the member its plain bytes lie in (ckptio_storage_desc::member), so the
 *    host reads different members in parallel and maps each for zero-copy.
 *  - Writing: save() either writes its sink (one file) or opens members of a directory
 *    (ckptio_sink::open_member), never both. The host writes the members into a temporary
 *    directory beside the target and, after save() succeeded, fsyncs them and the directory
 *    and renames it into place: an existing checkpoint at the target stays whole until then,
 *    and a failed or killed save leaves nothing.
 * A version-1 plugin keeps working in a version-2 host: it never sees a directory, and its
 * smaller structs read as member 0.
 */
#ifndef CKPTIO_PLUGIN_H_
#define CKPTIO_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CKPTIO_ABI_VERSION 2u
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

/* True when the struct *s (whose first member is struct_size) is large enough to hold
 * `field` of `type`: the check before reading a field that a later version appended. */
#define CKPTIO_HAS_FIELD(s, type, field) \
  ((s)->struct_size >= offsetof(type, field) + sizeof(((type*)0)->field))

#define CKPTIO_NOT_PLAIN UINT64_MAX

/* Element types: PyTorch's c10::ScalarType codes, which the files' dtypes map to. */
enum {
  CKPTIO_DTYPE_UINT8 = 0,
  CKPTIO_DTYPE_INT8 = 1,
  CKPTIO_DTYPE_INT16 = 2,
  CKPTIO_DTYPE_INT32 = 3,
  CKPTIO_DTYPE_INT64 = 4,
  CKPTIO_DTYPE_FLOAT16 = 5,
  CKPTIO_DTYPE_FLOAT32 = 6,
  CKPTIO_DTYPE_FLOAT64 = 7,
  CKPTIO_DTYPE_COMPLEX32 = 8,
  CKPTIO_DTYPE_COMPLEX64 = 9,
  CKPTIO_DTYPE_COMPLEX128 = 10,
  CKPTIO_DTYPE_BOOL = 11,
  CKPTIO_DTYPE_QINT8 = 12,
  CKPTIO_DTYPE_QUINT8 = 13,
  CKPTIO_DTYPE_QINT32 = 14,
  CKPTIO_DTYPE_BFLOAT16 = 15,
  CKPTIO_DTYPE_QUINT4X2 = 16,
  CKPTIO_DTYPE_QUINT2X4 = 17,
  CKPTIO_DTYPE_BITS1X8 = 18,
  CKPTIO_DTYPE_BITS2X4 = 19,
  CKPTIO_DTYPE_BITS4X2 = 20,
  CKPTIO_DTYPE_BITS8 = 21,
  CKPTIO_DTYPE_BITS16 = 22,
  CKPTIO_DTYPE_FLOAT8_E5M2 = 23,
  CKPTIO_DTYPE_FLOAT8_E4M3FN = 24,
  CKPTIO_DTYPE_FLOAT8_E5M2FNUZ = 25,
  CKPTIO_DTYPE_FLOAT8_E4M3FNUZ = 26,
  CKPTIO_DTYPE_UINT16 = 27,
  CKPTIO_DTYPE_UINT32 = 28,
  CKPTIO_DTYPE_UINT64 = 29,
  CKPTIO_DTYPE_UINT1 = 30, /* uint1 .. uint7, int1 .. int7: one element per byte */
  CKPTIO_DTYPE_UINT2 = 31,
  CKPTIO_DTYPE_UINT3 = 32,
  CKPTIO_DTYPE_UINT4 = 33,
  CKPTIO_DTYPE_UINT5 = 34,
  CKPTIO_DTYPE_UINT6 = 35,
  CKPTIO_DTYPE_UINT7 = 36,
  CKPTIO_DTYPE_INT1 = 37,
  CKPTIO_DTYPE_INT2 = 38,
  CKPTIO_DTYPE_INT3 = 39,
  CKPTIO_DTYPE_INT4 = 40,
  CKPTIO_DTYPE_INT5 = 41,
  CKPTIO_DTYPE_INT6 = 42,
  CKPTIO_DTYPE_INT7 = 43,
  CKPTIO_DTYPE_FLOAT8_E8M0FNU = 44,
  CKPTIO_DTYPE_FLOAT4_E2M1FN_X2 = 45
};

typedef struct ckptio_storage_desc {
  uint32_t struct_size;
  int32_t dtype;        /* CKPTIO_DTYPE_*: declared by the file (UINT8 for untyped) */
  const char* key;      /* name in the file */
  const char* device;   /* saved location tag: "cpu", "cuda:1", ... */
  uint64_t nbytes;
  /* Offset of the bytes in the source when they are stored plainly (uncompressed,
   * little-endian, contiguous); CKPTIO_NOT_PLAIN when only read_storage() can produce them. */
  uint64_t file_offset;
  /* ABI 2: the source file_offset counts in: 0 the source open() was given, else the
   * number ckptio_source::open_member() returned for a member. */
  uint32_t member;
} ckptio_storage_desc;

typedef struct ckptio_tensor_desc {
  uint32_t struct_size;
  int32_t dtype; /* CKPTIO_DTYPE_* */
  uint32_t ndim;
  uint32_t storage; /* index of a storage added before */
  const int64_t* shape;
  const int64_t* strides;
  int64_t storage_offset; /* elements */
  uint32_t flags;         /* CKPTIO_TENSOR_* */
} ckptio_tensor_desc;

/* Frozen (no struct_size): see the versioning note at the top. */
typedef struct ckptio_option {
  const char* key;
  const char* value;
} ckptio_option;

/* Plugin-specific settings as key=value strings. Keys every plugin should honour where it
 * applies: "allow_objects" (0/1), "max_depth", "max_memo", "verify" (0/1: check CRCs).
 * "select" (repeated, set by the host): the root entries the caller wants; a plugin may leave
 * out what holds none of them, the host cuts the tree anyway (plugin.hpp: KeySelection). */
typedef struct ckptio_options { /* frozen */
  size_t count;
  const ckptio_option* items;
} ckptio_options;

enum {
  CKPTIO_SOURCE_FILE = 0,     /* bytes: size, data, read_at */
  CKPTIO_SOURCE_DIRECTORY = 1 /* a directory: size 0, data NULL, read_at fails; see members */
};

typedef struct ckptio_source {
  uint32_t struct_size;
  void* ctx;
  const char* name;    /* file name for messages */
  uint64_t size;
  const uint8_t* data; /* all bytes when addressable (mapped file, memory), else NULL */
  ckptio_status (*read_at)(void* ctx, uint64_t offset, void* dst, uint64_t n);

  /* ABI 2 (check CKPTIO_HAS_FIELD: a version-1 host passes a smaller struct). */
  uint32_t kind; /* CKPTIO_SOURCE_* */
  /* A directory's regular files and symlinks to them, names relative to it, sorted
   * bytewise; 0 and NULL for a file. */
  uint64_t member_count;
  const char* const* members;
  /* Opens the member file `name` (UTF-8, '/'-separated, relative to the checkpoint's
   * directory: the directory itself, or the one holding this file). The host refuses, with
   * CKPTIO_FORBIDDEN naming the member, a name that is empty, absolute, has an empty, "." or
   * ".." component, or resolves through symlinks outside that directory (a Hugging Face
   * hub cache's snapshot directory may link into its own repository's blobs/); a missing member
   * is CKPTIO_NOT_FOUND. On success *member is its number for ckptio_storage_desc::member
   * (1, 2, ...; the same name opens once and answers the same number) and *out a file
   * source valid until close() of the reader made from this source. NULL where the host
   * has no members to offer (a memory buffer). */
  ckptio_status (*open_member)(void* ctx, const char* name, uint32_t* member,
                               const struct ckptio_source** out);
} ckptio_source;

typedef struct ckptio_sink {
  uint32_t struct_size;
  void* ctx;
  const char* name;
  ckptio_status (*write)(void* ctx, const void* data, uint64_t n);

  /* ABI 2. Makes the output a directory and opens its member file `name` (a plain file
   * name: no '/', not "." or ".."; the host refuses others and a name opened twice). A
   * save writes either this sink or members, never both. *out stays valid until save()
   * returns; the host commits every member together after save() succeeded. NULL where
   * the target can only be one file. */
  ckptio_status (*open_member)(void* ctx, const char* name, const struct ckptio_sink** out);
  /* The regular files of the directory the save replaces (sorted; 0 and NULL when there
   * is none). The host carries each one the save neither writes nor drops into the new
   * directory, so files beside a checkpoint (a model's config.json) survive a save. */
  uint64_t existing_count;
  const char* const* existing;
  /* Leaves an existing file (a stale shard of the checkpoint being replaced) out of the
   * new directory. */
  ckptio_status (*drop_existing)(void* ctx, const char* name);
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

typedef struct ckptio_format_info { /* frozen */
  const char* name;        /* "torch-zip" */
  const char* description; /* one line */
  const char* extension;   /* preferred file extension, ".pt" */
  uint32_t caps;           /* CKPTIO_CAN_* */
} ckptio_format_info;

/* An option key a format understands, declared so that the host can list it (`ckptio
 * plugins`) and check a user's key=value settings before the plugin sees them. */
enum {
  CKPTIO_OPTION_READ = 1u << 0,    /* a read (open) option */
  CKPTIO_OPTION_WRITE = 1u << 1,   /* a write (save) option */
  CKPTIO_OPTION_NUMBER = 1u << 2,  /* the value is a non-negative decimal integer */
  CKPTIO_OPTION_PREFIX = 1u << 3,  /* key is a prefix: "meta." takes meta.NAME */
  /* The value names another format, whose options are accepted too (zstd's inner). */
  CKPTIO_OPTION_NAMES_FORMAT = 1u << 4
};

typedef struct ckptio_option_info {
  uint32_t struct_size;
  uint32_t flags;               /* CKPTIO_OPTION_* */
  const char* key;
  const char* meaning;          /* one line */
  const char* default_value;    /* as text; "" when it depends on the file */
  /* The value `ckptio inspect` passes for a view meant for people (e.g. TorchScript's
   * module tree), or NULL. */
  const char* inspect_value;
} ckptio_option_info;

/* Where a plugin's verify() reports, so that every problem is listed, not only the first. */
typedef struct ckptio_verify_report {
  uint32_t struct_size;
  void* ctx;
  void (*problem)(void* ctx, const char* message); /* one line naming the file and record */
  void (*checksums)(void* ctx, uint64_t count);    /* checksums verified (adds up) */
} ckptio_verify_report;

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

  /* Appended after the first release of version 1: a host checks CKPTIO_HAS_FIELD before
   * reading them, and a NULL entry means the plugin does not offer it. */

  /* The option keys `format` understands (*count of them); NULL: not declared, so the host
   * cannot check settings and passes them through as they are. */
  const ckptio_option_info* (*options)(uint32_t format, uint32_t* count);
  /* Checks the file's container layer (structure, bounds, every record's checksum) without
   * parsing its values, reporting each problem through `report` and going on past it;
   * returns an error only when it cannot check at all, CKPTIO_UNSUPPORTED when `format`
   * has no container check. `ckptio verify` calls it, then opens the file. NULL (or
   * CKPTIO_UNSUPPORTED): the host opens the file with verify=1 instead. */
  ckptio_status (*verify)(uint32_t format, const ckptio_source* source,
                          const ckptio_options* options, const ckptio_verify_report* report);

  /* ABI 2. 0 (not this format) .. 100 (certain) that a directory holding these files
   * (names as in ckptio_source::members) is a checkpoint of `format`, which open() then
   * reads from a CKPTIO_SOURCE_DIRECTORY source. Pure, like probe(). NULL: no format of the
   * plugin is a directory. */
  int32_t (*probe_directory)(uint32_t format, const char* const* names, uint64_t count);
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
