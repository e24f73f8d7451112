/* The fields version 2 appended to plugin.h, pinned like abi_layout_v1.c pins version 1's:
 * each lies after its struct's version-1 end (so a version-1 plugin's or host's smaller
 * struct simply lacks it, which CKPTIO_HAS_FIELD tells), and moving one breaks every plugin
 * built against the version-2 header. Later versions may append after the V2_END of each
 * line below. C, as the ABI is; for LP64 targets, where the numbers below hold. */
#include <stddef.h>

#include "ckptio/plugin.h"

_Static_assert(CKPTIO_ABI_VERSION >= 2, "abi_layout_v2.c needs the version-2 header");
_Static_assert(CKPTIO_SOURCE_FILE == 0 && CKPTIO_SOURCE_DIRECTORY == 1,
               "ckptio_source::kind values are fixed");

#if defined(__LP64__)

#define PIN(type, field, offset) \
  _Static_assert(offsetof(type, field) == (offset), #type "." #field " moved")
#define V2_END(type, last, end) \
  _Static_assert(offsetof(type, last) + sizeof(((type*)0)->last) == (end), \
                 #type ": version 2 ends at " #end)

/* Version 1 ends at file_offset, 40. */
PIN(ckptio_storage_desc, member, 40);
V2_END(ckptio_storage_desc, member, 44);

/* Version 1 ends at read_at, 48. */
PIN(ckptio_source, kind, 48);
PIN(ckptio_source, member_count, 56);
PIN(ckptio_source, members, 64);
PIN(ckptio_source, open_member, 72);
V2_END(ckptio_source, open_member, 80);

/* Version 1 ends at write, 32. */
PIN(ckptio_sink, open_member, 32);
PIN(ckptio_sink, existing_count, 40);
PIN(ckptio_sink, existing, 48);
PIN(ckptio_sink, drop_existing, 56);
V2_END(ckptio_sink, drop_existing, 64);

/* Version 1 ends at verify, 96. */
PIN(ckptio_plugin_api, probe_directory, 96);
V2_END(ckptio_plugin_api, probe_directory, 104);

#endif

/* ISO C wants at least one declaration in a translation unit. */
typedef int ckptio_abi_layout_v2_checked;
