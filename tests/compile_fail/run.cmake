# Compiles one file that must not compile, and checks the diagnostics: the compiler fails, the
# library's sentence (SENTENCE, a regular expression) is there, and it is the only error (no
# cascade). -DCXX=... -DINCLUDES=a;b -DSOURCE=... -DSENTENCE=...
set(flags)
foreach(dir IN LISTS INCLUDES)
  list(APPEND flags -I${dir})
endforeach()
execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only ${flags} ${SOURCE}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled; it must not")
endif()
if(NOT err MATCHES "${SENTENCE}")
  message(FATAL_ERROR "the sentence '${SENTENCE}' is missing from:\n${err}")
endif()
string(REGEX MATCHALL "error:" errors "${err}")
list(LENGTH errors n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "${n} errors where the sentence alone was expected:\n${err}")
endif()
string(REGEX MATCHALL "\n" lines "${err}")
list(LENGTH lines nlines)
message(STATUS "one error, ${nlines} lines of diagnostics")
