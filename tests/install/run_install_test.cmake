# Installs the built slm into a fresh prefix, then configures, builds and runs
# an external project that uses find_package(slm). Run by CTest.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

run(${CMAKE_COMMAND} --install ${SLM_BUILD_DIR} --prefix ${prefix})
set(flags "")
if(SLM_SANITIZE)
  set(flags "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined" "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined")
endif()
run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build -DCMAKE_PREFIX_PATH=${prefix} ${flags})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer)
# Generation from a reference model, when the data is there (the text itself
# is checked against the reference in test_api and test_cli).
if(EXISTS "${TESTDATA_DIR}/models/phi3-tiny-vocab-q8_0.gguf")
  execute_process(COMMAND ${WORK_DIR}/build/consumer ${TESTDATA_DIR}/models/phi3-tiny-vocab-q8_0.gguf
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer failed (${rc}):\n${out}\n${err}")
  endif()
  if(NOT out MATCHES "\n16 tokens\n")
    message(FATAL_ERROR "consumer wrote:\n${out}\nexpected 16 generated tokens")
  endif()
  message(STATUS "consumer generated: ${out}")
else()
  message(STATUS "reference data not found in '${TESTDATA_DIR}': generation not checked")
endif()
if(NOT EXISTS ${prefix}/bin/slm)
  message(FATAL_ERROR "the slm program was not installed")
endif()
run(${prefix}/bin/slm synth --list)
