// CKPTIO_API marks the symbols of the C++ API. libckptio, libckptio_torch and libckptio_cuda
// build with hidden visibility, so what a header does not mark stays inside its library:
// applications can only bind to the API, and internals change without breaking them.
// Installed as <ckptio/formats/export.h>, beside the value tree it marks.
#pragma once

#define CKPTIO_API __attribute__((visibility("default")))
