#include "formats/pickle/storage_table.h"  // placeholder: being written
