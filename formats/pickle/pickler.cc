#include "formats/pickle/pickler.h"  // placeholder: being written
