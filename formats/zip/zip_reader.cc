#include "formats/zip/zip_reader.h"  // placeholder: being written
