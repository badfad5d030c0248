# yard_cc_library(NAME SRCS ... DEPS ...), yard_cc_binary(NAME OUTPUT ... SRCS ... DEPS ...),
# yard_cc_test(NAME SRCS ... DEPS ... [LABELS ...]): one place for warnings and include roots.
set(YARD_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
    -Wcast-align -Wunused -Woverloaded-virtual -Wimplicit-fallthrough)
# GCC 12 at -O3 reports impossible overlaps in std::string operator+ (GCC bug 105329) and
# uninitialized members inside a std::variant being moved from (GCC bug 105562, hit by
# StatusOr<T> passed through std::function in master/api).
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND YARD_WARNINGS -Wno-restrict -Wno-maybe-uninitialized)
endif()
if(YARD_WERROR)
  list(APPEND YARD_WARNINGS -Werror)
endif()

function(_yard_common target)
  target_compile_options(${target} PRIVATE ${YARD_WARNINGS})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
endfunction()

function(yard_cc_library name)
  cmake_parse_arguments(A "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} STATIC ${A_SRCS})
  _yard_common(${name})
  target_link_libraries(${name} PUBLIC ${A_DEPS})
endfunction()

function(yard_cc_binary name)
  cmake_parse_arguments(A "" "OUTPUT" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${A_SRCS})
  _yard_common(${name})
  target_link_libraries(${name} PRIVATE ${A_DEPS})
  if(A_OUTPUT)
    set_target_properties(${name} PROPERTIES OUTPUT_NAME ${A_OUTPUT})
  endif()
endfunction()

function(yard_cc_test name)
  cmake_parse_arguments(A "" "" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${A_SRCS})
  _yard_common(${name})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${A_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${A_LABELS}")
endfunction()
