#include "formats/pickle/unpickler.h"  // placeholder: being written
