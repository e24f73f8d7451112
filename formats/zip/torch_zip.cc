#include "formats/zip/torch_zip.h"  // placeholder: being written
