# SPDX-License-Identifier: MIT
# Layer check (cmake -P): fails when the static library ARCHIVE references a function of namespace
# kvs outside ALLOWED_NAMESPACE that it does not define itself — for kvs_views, a call into core's
# library, which views may not make (they link kvs_core_api, core's headers, only). Inline
# functions of core's headers are compiled into the views and so are defined, not referenced.
foreach(var ARCHIVE NM ALLOWED_NAMESPACE)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "CheckLayer.cmake: ${var} is not set")
    endif()
endforeach()
execute_process(COMMAND ${NM} -C --defined-only ${ARCHIVE} OUTPUT_VARIABLE defined
                RESULT_VARIABLE rc1)
execute_process(COMMAND ${NM} -C --undefined-only ${ARCHIVE} OUTPUT_VARIABLE undefined
                RESULT_VARIABLE rc2)
if(NOT rc1 EQUAL 0 OR NOT rc2 EQUAL 0)
    message(FATAL_ERROR "CheckLayer.cmake: ${NM} could not read ${ARCHIVE}")
endif()
# Symbol names only ("<address> T name" / "U name"); semicolons would split CMake lists.
string(REPLACE ";" "," defined "${defined}")
string(REPLACE ";" "," undefined "${undefined}")
string(REGEX REPLACE "\n" ";" defined "${defined}")
string(REGEX REPLACE "\n" ";" undefined "${undefined}")
set(have "")
foreach(line IN LISTS defined)
    if(line MATCHES "^[0-9a-fA-F]+ [A-Za-z] (kvs::.*)$")
        list(APPEND have "${CMAKE_MATCH_1}")
    endif()
endforeach()
set(foreign "")
foreach(line IN LISTS undefined)
    if(line MATCHES "^ *U (kvs::.*)$")
        set(name "${CMAKE_MATCH_1}")
        string(FIND "${name}" "${ALLOWED_NAMESPACE}::" at)
        if(NOT at EQUAL 0)
            list(FIND have "${name}" known)
            if(known EQUAL -1)
                list(APPEND foreign "${name}")
            endif()
        endif()
    endif()
endforeach()
list(REMOVE_DUPLICATES foreign)
if(foreign)
    list(JOIN foreign "\n  " text)
    get_filename_component(name ${ARCHIVE} NAME)
    message(FATAL_ERROR "${name} calls into core's library (it may use core's headers only; "
                        "move the computation to core or app and hand the view its result):\n  ${text}")
endif()
