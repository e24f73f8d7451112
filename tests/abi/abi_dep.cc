// The dependency of the MISSING_DEP test plugin. Built into a directory the loader never
// searches, so loading that plugin fails the way a plugin with a missing library does.
extern "C" __attribute__((visibility("default"))) int ckptio_abi_dep_value(void) { return 42; }
