#include "formats/legacy/torch_legacy.h"  // placeholder: being written
