# ckptio_add_test(): one GoogleTest binary of tests/ and its CTest tests.
#
#   ckptio_add_test(<name>
#     SOURCES <file>...              relative to the calling CMakeLists.txt
#     [LIBS <target>...]             besides ckptio_test_support and GTest (gtest_main
#                                    unless OWN_MAIN)
#     [DEPENDS <target>...]          built first: the CLI and plugins the tests run
#     [DEFINES <def>...] [INCLUDES <dir>...]
#     [OWN_MAIN]                     the binary has its main() (interop::interop_main)
#     [PREFIX <prefix>]              prepended to the discovered test names
#     [DISCOVERY_TIMEOUT <s>]        default 60
#     [TIMEOUT <s>] [NO_PRETTY_VALUES]
#     [ENVIRONMENT <VAR=value>]      one variable in all, WORK_ENV's included
#     [TORCH_SUITE]                  label torch-version: scripts/test-torch113.sh runs these
#     [WORK <dir> [WORK_ENV <VAR>] [PREPARE_TIMEOUT <s>] [PREPARE_COMMAND <cmd>...]])
#
# WORK: the binary's slow part (Python, ckptio runs) happens once, in a '<name>.prepare' test
# that CTest runs as a fixture before the discovered tests, which find <dir> in WORK_ENV
# (default CKPTIO_INTEROP_WORK). PREPARE_COMMAND defaults to `<name> --prepare-to=<dir>`;
# PREPARE_TIMEOUT to 300 s.
function(ckptio_add_test name)
  cmake_parse_arguments(PARSE_ARGV 1 T "OWN_MAIN;NO_PRETTY_VALUES;TORCH_SUITE"
    "PREFIX;DISCOVERY_TIMEOUT;TIMEOUT;WORK;WORK_ENV;PREPARE_TIMEOUT"
    "SOURCES;LIBS;DEPENDS;DEFINES;INCLUDES;ENVIRONMENT;PREPARE_COMMAND")
  if(T_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "ckptio_add_test(${name}): unknown arguments ${T_UNPARSED_ARGUMENTS}")
  endif()

  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} ckptio_test_support)
  if(NOT T_OWN_MAIN)
    target_link_libraries(${name} PRIVATE GTest::gtest_main)
  endif()
  if(T_DEPENDS)
    add_dependencies(${name} ${T_DEPENDS})
  endif()
  if(T_DEFINES)
    target_compile_definitions(${name} PRIVATE ${T_DEFINES})
  endif()
  if(T_INCLUDES)
    target_include_directories(${name} PRIVATE ${T_INCLUDES})
  endif()

  set(labels)
  if(T_TORCH_SUITE)
    set(labels LABELS torch-version)
  endif()
  set(env ${T_ENVIRONMENT})
  set(props)
  if(T_WORK)
    if(NOT T_WORK_ENV)
      set(T_WORK_ENV CKPTIO_INTEROP_WORK)
    endif()
    if(NOT T_PREPARE_COMMAND)
      set(T_PREPARE_COMMAND ${name} --prepare-to=${T_WORK})
    endif()
    if(NOT T_PREPARE_TIMEOUT)
      set(T_PREPARE_TIMEOUT 300)
    endif()
    add_test(NAME ${name}.prepare COMMAND ${T_PREPARE_COMMAND})
    set_tests_properties(${name}.prepare PROPERTIES FIXTURES_SETUP ${name}_work
      TIMEOUT ${T_PREPARE_TIMEOUT} ${labels})
    list(APPEND props FIXTURES_REQUIRED ${name}_work)
    list(APPEND env ${T_WORK_ENV}=${T_WORK})
  endif()
  list(LENGTH env n_env)
  if(n_env GREATER 1)  # a list inside PROPERTIES would reach CTest split into words
    message(FATAL_ERROR "ckptio_add_test(${name}): one ENVIRONMENT variable at most: ${env}")
  elseif(env)
    list(APPEND props ENVIRONMENT "${env}")
  endif()
  if(T_TIMEOUT)
    list(APPEND props TIMEOUT ${T_TIMEOUT})
  endif()
  list(APPEND props ${labels})

  if(NOT T_DISCOVERY_TIMEOUT)
    set(T_DISCOVERY_TIMEOUT 60)
  endif()
  set(discover DISCOVERY_TIMEOUT ${T_DISCOVERY_TIMEOUT})
  if(T_PREFIX)
    list(APPEND discover TEST_PREFIX ${T_PREFIX})
  endif()
  if(T_NO_PRETTY_VALUES)
    list(APPEND discover NO_PRETTY_VALUES)
  endif()
  if(props)
    list(APPEND discover PROPERTIES ${props})
  endif()
  gtest_discover_tests(${name} ${discover})
endfunction()
