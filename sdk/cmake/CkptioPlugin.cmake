# ckptio_add_plugin(<target> SOURCES <src>... [LINK <lib>...] [OUTPUT_DIR <dir>])
#
# Builds a ckptio format plugin: a MODULE library named ckptio-<target>.so that exports only
# the entry symbol (version script), is linked with -z defs (no undefined symbols left for
# the loader to resolve from the host), and installs into the plugin directory.
set(CKPTIO_SDK_CMAKE_DIR ${CMAKE_CURRENT_LIST_DIR})

function(ckptio_add_plugin target)
  cmake_parse_arguments(P "" "OUTPUT_DIR" "SOURCES;LINK" ${ARGN})
  add_library(${target} MODULE ${P_SOURCES})
  if(TARGET ckptio::sdk)
    target_link_libraries(${target} PRIVATE ckptio::sdk)
  endif()
  target_link_libraries(${target} PRIVATE ${P_LINK})
  if(NOT P_OUTPUT_DIR AND DEFINED CKPTIO_PLUGIN_OUTPUT_DIR)
    set(P_OUTPUT_DIR ${CKPTIO_PLUGIN_OUTPUT_DIR})
  endif()
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "ckptio-${target}"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(P_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${P_OUTPUT_DIR})
  endif()
  target_link_options(${target} PRIVATE
    -Wl,-z,defs -Wl,--version-script=${CKPTIO_SDK_CMAKE_DIR}/plugin.map)
  if(DEFINED CKPTIO_PLUGIN_INSTALL_DIR)
    install(TARGETS ${target} LIBRARY DESTINATION ${CKPTIO_PLUGIN_INSTALL_DIR})
  endif()
endfunction()
