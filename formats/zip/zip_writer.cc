#include "formats/zip/zip_writer.h"  // placeholder: being written
