/* The version-1 layouts of plugin.h, pinned: a change that moves a field a v1 plugin or host
 * reads breaks every plugin built against the released header, so it must fail the build
 * here instead. Growing structs may gain fields after their v1 end (the last line of each;
 * the plugin table's options and verify were appended after the first release, which ended
 * at save, 80 bytes, and the host accepts such shorter tables);
 * the frozen ones (no struct_size) keep their size. C, as the ABI is; for LP64 targets,
 * where the numbers below hold. */
#include <stddef.h>

#include "ckptio/plugin.h"

#if defined(__LP64__)

#define PIN(type, field, offset) \
  _Static_assert(offsetof(type, field) == (offset), #type "." #field " moved")
#define V1_END(type, last, end) \
  _Static_assert(offsetof(type, last) + sizeof(((type*)0)->last) == (end), \
                 #type ": version 1 ends at " #end)
#define FROZEN(type, size) _Static_assert(sizeof(type) == (size), #type " is frozen at " #size)

PIN(ckptio_storage_desc, struct_size, 0);
PIN(ckptio_storage_desc, dtype, 4);
PIN(ckptio_storage_desc, key, 8);
PIN(ckptio_storage_desc, device, 16);
PIN(ckptio_storage_desc, nbytes, 24);
PIN(ckptio_storage_desc, file_offset, 32);
V1_END(ckptio_storage_desc, file_offset, 40);

PIN(ckptio_tensor_desc, struct_size, 0);
PIN(ckptio_tensor_desc, dtype, 4);
PIN(ckptio_tensor_desc, ndim, 8);
PIN(ckptio_tensor_desc, storage, 12);
PIN(ckptio_tensor_desc, shape, 16);
PIN(ckptio_tensor_desc, strides, 24);
PIN(ckptio_tensor_desc, storage_offset, 32);
PIN(ckptio_tensor_desc, flags, 40);
V1_END(ckptio_tensor_desc, flags, 44);

PIN(ckptio_option, key, 0);
PIN(ckptio_option, value, 8);
FROZEN(ckptio_option, 16);

PIN(ckptio_options, count, 0);
PIN(ckptio_options, items, 8);
FROZEN(ckptio_options, 16);

PIN(ckptio_source, struct_size, 0);
PIN(ckptio_source, ctx, 8);
PIN(ckptio_source, name, 16);
PIN(ckptio_source, data, 32);
PIN(ckptio_source, read_at, 40);
V1_END(ckptio_source, read_at, 48);

PIN(ckptio_sink, struct_size, 0);
PIN(ckptio_sink, ctx, 8);
PIN(ckptio_sink, name, 16);
PIN(ckptio_sink, write, 24);
V1_END(ckptio_sink, write, 32);

PIN(ckptio_builder, struct_size, 0);
PIN(ckptio_builder, ctx, 8);
PIN(ckptio_builder, add_storage, 16);
PIN(ckptio_builder, scalar, 24);
PIN(ckptio_builder, begin, 32);
PIN(ckptio_builder, end, 40);
PIN(ckptio_builder, tensor, 48);
PIN(ckptio_builder, share, 56);
PIN(ckptio_builder, ref, 64);
V1_END(ckptio_builder, ref, 72);

PIN(ckptio_tree, struct_size, 0);
PIN(ckptio_tree, ctx, 8);
PIN(ckptio_tree, root, 16);
PIN(ckptio_tree, storage_count, 24);
PIN(ckptio_tree, storage, 32);
PIN(ckptio_tree, storage_data, 40);
PIN(ckptio_tree, read_storage, 48);
PIN(ckptio_tree, kind, 56);
PIN(ckptio_tree, flags, 64);
PIN(ckptio_tree, int_value, 72);
PIN(ckptio_tree, float_value, 80);
PIN(ckptio_tree, text, 88);
PIN(ckptio_tree, child_count, 96);
PIN(ckptio_tree, child, 104);
PIN(ckptio_tree, tensor, 112);
V1_END(ckptio_tree, tensor, 120);

PIN(ckptio_format_info, name, 0);
PIN(ckptio_format_info, description, 8);
PIN(ckptio_format_info, extension, 16);
PIN(ckptio_format_info, caps, 24);
FROZEN(ckptio_format_info, 32);

PIN(ckptio_host_api, struct_size, 0);
PIN(ckptio_host_api, abi_version, 4);
PIN(ckptio_host_api, make_status, 8);
PIN(ckptio_host_api, status_code, 16);
PIN(ckptio_host_api, status_message, 24);
PIN(ckptio_host_api, release_status, 32);
PIN(ckptio_host_api, find_format, 40);
V1_END(ckptio_host_api, find_format, 48);

PIN(ckptio_plugin_api, struct_size, 0);
PIN(ckptio_plugin_api, abi_version, 4);
PIN(ckptio_plugin_api, name, 8);
PIN(ckptio_plugin_api, version, 16);
PIN(ckptio_plugin_api, format_count, 24);
PIN(ckptio_plugin_api, formats, 32);
PIN(ckptio_plugin_api, probe, 40);
PIN(ckptio_plugin_api, open, 48);
PIN(ckptio_plugin_api, read_storage, 56);
PIN(ckptio_plugin_api, close, 64);
PIN(ckptio_plugin_api, save, 72);
PIN(ckptio_plugin_api, options, 80);
PIN(ckptio_plugin_api, verify, 88);
V1_END(ckptio_plugin_api, verify, 96);

PIN(ckptio_option_info, struct_size, 0);
PIN(ckptio_option_info, flags, 4);
PIN(ckptio_option_info, key, 8);
PIN(ckptio_option_info, meaning, 16);
PIN(ckptio_option_info, default_value, 24);
PIN(ckptio_option_info, inspect_value, 32);
V1_END(ckptio_option_info, inspect_value, 40);

PIN(ckptio_verify_report, struct_size, 0);
PIN(ckptio_verify_report, ctx, 8);
PIN(ckptio_verify_report, problem, 16);
PIN(ckptio_verify_report, checksums, 24);
V1_END(ckptio_verify_report, checksums, 32);

#endif

/* ISO C wants at least one declaration in a translation unit. */
typedef int ckptio_abi_layout_v1_checked;
