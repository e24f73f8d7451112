# Which LibTorch ckptio builds against, and the Python/PyTorch its tests run.
#
#   CKPTIO_LIBTORCH=wheel (default)  the LibTorch inside the torch wheel of CKPTIO_PYTHON
#                                    (the project's .venv, made by scripts/setup.sh: 2.13)
#   CKPTIO_LIBTORCH=system           the LibTorch CMake finds by itself: Debian's libtorch-dev
#                                    (1.13 on Debian 12), or one named by Torch_DIR /
#                                    CMAKE_PREFIX_PATH (e.g. an unzipped libtorch)
#
# The wheel is found through its own package directory, not torch.utils.cmake_prefix_path:
# that path holds only the CMake files, and TorchConfig's find_library would then take the
# first libtorch.so on the system paths (Debian's 1.13 beside 2.13's headers) over the wheel's.
#
# LibTorch's C++ ABI must be the one the rest of the build links with: Debian's GoogleTest,
# Google Benchmark and CLI11 use GCC's default (_GLIBCXX_USE_CXX11_ABI=1), as every torch
# wheel from 2.7 on and Debian's libtorch do. A pre-C++11-ABI LibTorch is refused here with
# the fix, instead of failing later at link time with undefined std::string symbols.
#
# A CUDA build of the wheel (what pip takes from PyPI) ships CMake files that refuse to
# configure without a CUDA toolkit, although its CPU libraries need none: libtorch_cpu and
# libc10 are what every CPU tensor, TorchScript load and optimizer uses. Without a toolkit
# ckptio then links those two directly (CKPTIO_LIBTORCH_CPU_ONLY=AUTO), so a machine with no
# GPU builds against the same wheel its Python tests run.
set(CKPTIO_LIBTORCH wheel CACHE STRING "Where LibTorch comes from: wheel (CKPTIO_PYTHON's torch) or system")
set_property(CACHE CKPTIO_LIBTORCH PROPERTY STRINGS wheel system)
set(CKPTIO_PYTHON ${PROJECT_SOURCE_DIR}/.venv/bin/python CACHE FILEPATH
  "Python whose torch wheel provides LibTorch (CKPTIO_LIBTORCH=wheel) and runs the tests")
set(CKPTIO_LIBTORCH_CPU_ONLY AUTO CACHE STRING
  "Link only the wheel's CPU libraries: AUTO (when it is a CUDA build and no CUDA toolkit is found), ON, OFF")
set_property(CACHE CKPTIO_LIBTORCH_CPU_ONLY PROPERTY STRINGS AUTO ON OFF)
if(NOT CKPTIO_LIBTORCH MATCHES "^(wheel|system)$")
  message(FATAL_ERROR "CKPTIO_LIBTORCH must be 'wheel' or 'system', not '${CKPTIO_LIBTORCH}'")
endif()

# The tests' Python and PyTorch follow the LibTorch: the wheel's Python, or Debian's 1.13.
if(CKPTIO_LIBTORCH STREQUAL "wheel" AND EXISTS ${CKPTIO_PYTHON})
  set(CKPTIO_TEST_PYTHON_DEFAULT ${CKPTIO_PYTHON})
else()
  set(CKPTIO_TEST_PYTHON_DEFAULT /usr/bin/python3)
endif()

# The wheel's CPU libraries as the target `torch` (the name LibTorch's own CMake files give
# it, so that the installed ckptio::torch names the same target either way) and the
# variables find_package(Torch) would set.
macro(ckptio_use_libtorch_cpu root version)
  foreach(_lib torch_cpu c10)
    if(NOT EXISTS ${root}/lib/lib${_lib}.so)
      message(FATAL_ERROR "ckptio: ${root}/lib/lib${_lib}.so is missing: not a torch wheel's LibTorch")
    endif()
  endforeach()
  add_library(torch INTERFACE IMPORTED)
  set_target_properties(torch PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${root}/include;${root}/include/torch/csrc/api/include"
    INTERFACE_LINK_LIBRARIES "${root}/lib/libtorch_cpu.so;${root}/lib/libc10.so")
  set(TORCH_LIBRARIES torch)
  set(TORCH_INSTALL_PREFIX ${root})
  set(TORCH_CXX_FLAGS "")
  set(Torch_VERSION ${version})
  set(Torch_FOUND TRUE)
endmacro()

macro(ckptio_find_libtorch)
  set(_ckptio_wheel_abi "")
  set(_ckptio_cpu_only OFF)
  if(CKPTIO_LIBTORCH STREQUAL "system" AND CKPTIO_LIBTORCH_CPU_ONLY STREQUAL "ON")
    message(FATAL_ERROR "ckptio: CKPTIO_LIBTORCH_CPU_ONLY=ON applies to CKPTIO_LIBTORCH=wheel only")
  endif()
  if(CKPTIO_LIBTORCH STREQUAL "wheel")
    execute_process(
      COMMAND ${CKPTIO_PYTHON} -c "import os, torch
print(os.path.dirname(torch.__file__))
abi = getattr(torch._C, '_GLIBCXX_USE_CXX11_ABI', None)
print('unknown' if abi is None else int(abi))
print(torch.__version__.split('+')[0])
print(torch.version.cuda or 'none')"
      OUTPUT_VARIABLE _ckptio_wheel OUTPUT_STRIP_TRAILING_WHITESPACE
      ERROR_VARIABLE _ckptio_torch_err RESULT_VARIABLE _ckptio_torch_rc)
    if(NOT _ckptio_torch_rc EQUAL 0)
      message(FATAL_ERROR "ckptio: CKPTIO_LIBTORCH=wheel, but '${CKPTIO_PYTHON}' cannot import "
        "torch (${_ckptio_torch_err}). Run scripts/setup.sh (it makes .venv), pass "
        "-DCKPTIO_PYTHON=<a python with torch>, or -DCKPTIO_LIBTORCH=system.")
    endif()
    string(REPLACE "\n" ";" _ckptio_wheel "${_ckptio_wheel}")
    list(GET _ckptio_wheel 0 _ckptio_torch_root)
    list(GET _ckptio_wheel 1 _ckptio_wheel_abi)
    list(GET _ckptio_wheel 2 _ckptio_wheel_version)
    list(GET _ckptio_wheel 3 _ckptio_wheel_cuda)
    if(CKPTIO_LIBTORCH_CPU_ONLY STREQUAL "ON")
      set(_ckptio_cpu_only ON)
    elseif(CKPTIO_LIBTORCH_CPU_ONLY STREQUAL "AUTO" AND NOT _ckptio_wheel_cuda STREQUAL "none")
      find_package(CUDAToolkit QUIET)
      if(NOT CUDAToolkit_FOUND)
        message(STATUS "ckptio: the torch wheel is a CUDA ${_ckptio_wheel_cuda} build and no "
          "CUDA toolkit is found: linking its CPU libraries only")
        set(_ckptio_cpu_only ON)
      endif()
    endif()
    if(NOT Torch_DIR)
      list(PREPEND CMAKE_PREFIX_PATH ${_ckptio_torch_root})
    endif()
  endif()
  if(_ckptio_cpu_only)
    ckptio_use_libtorch_cpu(${_ckptio_torch_root} ${_ckptio_wheel_version})
    message(STATUS "ckptio: LibTorch ${Torch_VERSION} (wheel, CPU libraries only) at ${TORCH_INSTALL_PREFIX}")
  else()
    find_package(Torch REQUIRED)
    message(STATUS "ckptio: LibTorch ${Torch_VERSION} (${CKPTIO_LIBTORCH}) at ${TORCH_INSTALL_PREFIX}")
  endif()
  # The LibTorch's C++ ABI: the wheel's torch says it (its TorchConfig no longer puts it in
  # TORCH_CXX_FLAGS); other LibTorch packages carry it in TORCH_CXX_FLAGS.
  set(_ckptio_abi "")
  if(_ckptio_wheel_abi MATCHES "^[01]$")
    file(REAL_PATH "${TORCH_INSTALL_PREFIX}" _ckptio_found)
    file(REAL_PATH "${_ckptio_torch_root}" _ckptio_wanted)
    if(_ckptio_found STREQUAL _ckptio_wanted)
      set(_ckptio_abi ${_ckptio_wheel_abi})
    endif()
  endif()
  if(NOT _ckptio_abi MATCHES "^[01]$" AND TORCH_CXX_FLAGS MATCHES "_GLIBCXX_USE_CXX11_ABI=([01])")
    set(_ckptio_abi ${CMAKE_MATCH_1})
  endif()
  set(CKPTIO_LIBTORCH_CXX11_ABI "${_ckptio_abi}")  # for tests/build/libtorch_abi_test.sh
  if(_ckptio_abi MATCHES "^[01]$")
    include(CheckCXXSourceCompiles)
    set(CMAKE_REQUIRED_QUIET ON)
    check_cxx_source_compiles("#include <string>
      #if _GLIBCXX_USE_CXX11_ABI != ${_ckptio_abi}
      #error different ABI
      #endif
      int main() {}" CKPTIO_LIBTORCH_ABI_MATCHES_${_ckptio_abi})
    if(NOT CKPTIO_LIBTORCH_ABI_MATCHES_${_ckptio_abi})
      message(FATAL_ERROR "ckptio: LibTorch at ${TORCH_INSTALL_PREFIX} is built with "
        "_GLIBCXX_USE_CXX11_ABI=${_ckptio_abi}, but this compiler and the system's GoogleTest, "
        "Benchmark and CLI11 use the other C++ ABI: their std::string symbols would not link. "
        "Use a LibTorch with the compiler's ABI (torch wheels from 2.7 on, the cxx11-abi "
        "libtorch zips, Debian's libtorch-dev), or -DCKPTIO_WITH_TORCH=OFF.")
    endif()
  else()
    message(STATUS "ckptio: LibTorch at ${TORCH_INSTALL_PREFIX} does not say its C++ ABI; not checked")
  endif()
endmacro()
